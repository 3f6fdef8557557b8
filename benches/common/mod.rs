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
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let start = std::time::Instant::now();
                for i in 0..iters {
                    work(i, t);
                }
                start.elapsed()
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
