//! Shared by the benches: reading this run's criterion estimates back, so
//! each bench can end with ratios computed from one run, and running a
//! workload on several threads at once.
// Each bench uses what it needs of this module.
#![allow(dead_code)]

/// Mean estimate of `group/name` from this run, in ns (NaN if absent).
pub fn mean_ns(group: &str, name: &str) -> f64 {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = dir
        .join("criterion")
        .join(group)
        .join(name)
        .join("new")
        .join("estimates.json");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|value| value["mean"]["point_estimate"].as_f64())
        .unwrap_or(f64::NAN)
}

/// Runs `work(iteration, thread)` `iters` times on each of `threads`
/// threads started together; returns the slowest thread's time, i.e. the
/// per-call cost as each thread saw it.
pub fn on_threads<W>(threads: usize, iters: u64, work: W) -> std::time::Duration
where
    W: Fn(u64, usize) + Copy + Send + 'static,
{
    run_on_threads(threads, iters, work, Clock::Wall)
}

/// [`on_threads`] timed by each thread's own CPU clock (the system call):
/// what the calls cost the threads that made them, without the time a
/// thread waited for a core. On a shared 2-core machine the wall figure
/// also measures who else ran; this one measures contention between the
/// threads (a shared cache line costs CPU time while it stalls).
pub fn on_threads_cpu<W>(threads: usize, iters: u64, work: W) -> std::time::Duration
where
    W: Fn(u64, usize) + Copy + Send + 'static,
{
    run_on_threads(threads, iters, work, Clock::ThreadCpu)
}

#[derive(Clone, Copy)]
enum Clock {
    Wall,
    ThreadCpu,
}

fn run_on_threads<W>(threads: usize, iters: u64, work: W, clock: Clock) -> std::time::Duration
where
    W: Fn(u64, usize) + Copy + Send + 'static,
{
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let cpu = || agentprof::__test_hooks::read_thread_cpu_clock().unwrap_or(0);
                let (start, start_cpu) = (std::time::Instant::now(), cpu());
                for i in 0..iters {
                    work(i, t);
                }
                match clock {
                    Clock::Wall => start.elapsed(),
                    Clock::ThreadCpu => std::time::Duration::from_nanos(cpu() - start_cpu),
                }
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap_or_default()
}

/// [`on_threads`] for a workload that takes a seed.
pub fn on_threads_with(threads: usize, iters: u64, work: fn(u64) -> usize) -> std::time::Duration {
    on_threads(threads, iters, move |i, t| {
        std::hint::black_box(work(i ^ t as u64));
    })
}
