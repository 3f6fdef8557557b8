//! The CPU sampler: labels per invocation, honest weights, readable output.
//! CPU profiling is process-wide, so the tests here run one at a time.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use agentprof::{cpu::CpuProfiler, profiled};
use common::{burn_cpu_ns, rel_diff, setup, thread_cpu_ns};

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Threads that each burn `each_ns`, then go on in 1 ms steps until a
/// sample has accounted for it: a busy machine delivers CPU timer signals
/// late, and the CPU after a thread's last sample has no stack to go to.
/// Returns the CPU they used.
fn busy_threads(threads: usize, each_ns: u64) -> u64 {
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let start = thread_cpu_ns();
                burn_cpu_ns(each_ns);
                while agentprof::__test_hooks::this_thread_sampled_cpu_ns() < start + each_ns {
                    burn_cpu_ns(1_000_000);
                }
                thread_cpu_ns() - start
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

fn total_matches_consumed(hz: u32) {
    let mut profiler = CpuProfiler::with_frequency(hz).unwrap();
    profiler.start().unwrap();
    assert_eq!(profiler.mode(), Some(agentprof::cpu::TimerMode::PerThread));
    let consumed = busy_threads(2, 600_000_000);
    let report = profiler.stop_and_collect().unwrap();
    let busy: u64 = report
        .samples
        .iter()
        .filter(|s| s.function_names().iter().any(|n| n.contains("burn_cpu_ns")))
        .map(|s| s.cpu_ns)
        .sum();
    eprintln!(
        "{hz} Hz: {} samples, delivered {:.0} Hz per CPU second, profile {} ns (burn frames {busy} ns), consumed {consumed} ns, dropped {}/{}/{}",
        report.sample_count(),
        report.delivered_hz(),
        report.total_cpu_ns(),
        report.dropped_buffer_full,
        report.dropped_unwinder_busy,
        report.dropped_keys
    );
    assert!(
        rel_diff(busy, consumed) < 0.10,
        "{hz} Hz: profile has {busy} ns in the busy loops, threads used {consumed} ns"
    );
}

#[test]
fn profile_cpu_adds_up_to_consumed_cpu_at_100_and_1000_hz() {
    setup();
    let _serial = serial();
    total_matches_consumed(100);
    total_matches_consumed(1000);
}

#[profiled(agent = "alpha")]
async fn alpha_step(rounds: u32) -> u64 {
    let mut used = 0;
    for _ in 0..rounds {
        used += burn_cpu_ns(1_000_000);
        tokio::task::yield_now().await;
    }
    used
}

#[profiled(agent = "beta")]
async fn beta_step(rounds: u32) -> u64 {
    let mut used = 0;
    for _ in 0..rounds {
        used += burn_cpu_ns(1_000_000);
        tokio::task::yield_now().await;
    }
    used
}

#[test]
fn samples_carry_the_agent_of_interleaved_async_tasks() {
    setup();
    let _serial = serial();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut profiler = CpuProfiler::with_frequency(100).unwrap();
    profiler.start().unwrap();
    let (alpha, beta) = runtime.block_on(async {
        // Three alpha tasks and one beta task, all the same shape, share the
        // two workers: a 3:1 CPU split, interleaved at 1 ms.
        let alphas: Vec<_> = (0..3).map(|_| tokio::spawn(alpha_step(1500))).collect();
        let beta = tokio::spawn(beta_step(1500));
        let mut alpha = 0;
        for a in alphas {
            alpha += a.await.unwrap();
        }
        (alpha, beta.await.unwrap())
    });
    let report = profiler.stop_and_collect().unwrap();
    let by_agent = report.cpu_by("agent");
    let (a, b) = (by_agent["alpha"] as f64, by_agent["beta"] as f64);
    let sampled = 100.0 * a / (a + b);
    let measured = 100.0 * alpha as f64 / (alpha + beta) as f64;
    eprintln!(
        "alpha share: sampled {sampled:.1}%, measured {measured:.1}%, {} samples",
        report.sample_count()
    );
    // Four standard errors of a 75% share over this many samples (at
    // least 3 points): mislabelled samples would show as ~50% or ~100%.
    let n = report.sample_count() as f64;
    let tolerance = (400.0 * (0.75 * 0.25 / n).sqrt()).max(3.0);
    assert!(
        (sampled - 75.0).abs() <= tolerance,
        "sampled alpha share {sampled:.1}% (measured {measured:.1}%, tolerance {tolerance:.1} points)"
    );

    let row = agentprof::report();
    let alpha_row = row.agent(Some("alpha")).unwrap();
    let sampled_ns = alpha_row
        .sampled_cpu_ns
        .expect("sampled CPU next to measured");
    assert!(
        rel_diff(sampled_ns, alpha_row.cpu_ns.unwrap()) < 0.15,
        "sampled {sampled_ns} vs measured {:?}",
        alpha_row.cpu_ns
    );

    let alpha_only = report.filter_label("agent", "alpha");
    assert!(alpha_only.samples.iter().all(|s| s.agent == Some("alpha")));
    let sample = alpha_only
        .samples
        .iter()
        .find(|s| s.invocation_id.is_some())
        .unwrap();
    assert_eq!(
        sample.function,
        Some(&*format!("{}::alpha_step", module_path!()))
    );

    let dir = common::TempDir::new("cpu");
    let file = dir.0.join("cpu.pb.gz");
    std::fs::write(&file, report.pprof_gzip()).unwrap();
    let decoded = agentprof::pprof::Profile::decode(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(decoded.string(decoded.sample_type[1].r#type), "cpu");
    assert_eq!(decoded.string(decoded.sample_type[1].unit), "nanoseconds");
    let total: i64 = decoded.sample.iter().map(|s| s.value[1]).sum();
    assert_eq!(total as u64, report.total_cpu_ns());
    let labelled = decoded
        .sample
        .iter()
        .find(|s| decoded.label(s, "agent") == Some("beta"))
        .unwrap();
    // Without OpenTelemetry there is no span id to label with.
    assert_eq!(decoded.label(labelled, "span_id"), None);
    let id = decoded.label(labelled, "invocation_id").unwrap();
    assert!(
        id.parse::<u64>().is_ok(),
        "invocation ids are decimal, as in logs and JSON: {id}"
    );
    // The thread's name, bounded however many threads there are.
    let thread = decoded.label(labelled, "thread").unwrap();
    assert!(
        thread.parse::<u64>().is_err(),
        "a name, not an id: {thread}"
    );
    if let Some(tags) = common::go_pprof(&["-tags"], &file) {
        assert!(
            tags.contains("alpha") && tags.contains("beta"),
            "go tool pprof -tags:\n{tags}"
        );
    }
    if let Some(top) = common::go_pprof(&["-tagfocus", "agent=beta", "-top"], &file) {
        assert!(
            top.contains("beta_step") && !top.contains("alpha_step"),
            "-tagfocus agent=beta:\n{top}"
        );
    }
    let svg = String::from_utf8(
        report
            .filter_label("agent", "beta")
            .flamegraph_svg()
            .unwrap(),
    )
    .unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("beta_step") && !svg.contains("alpha_step"));
    let diff = agentprof::cpu::CpuReport::differential_flamegraph(
        &report.filter_label("agent", "beta"),
        &report,
    )
    .unwrap();
    assert!(String::from_utf8(diff).unwrap().contains("alpha_step"));
}

#[test]
fn the_sigprof_handler_stays_after_stop_and_the_profiler_restarts() {
    setup();
    let _serial = serial();
    for _ in 0..3 {
        let mut profiler = CpuProfiler::with_frequency(250).unwrap();
        profiler.start().unwrap();
        assert_eq!(sigprof_handler(), 1);
        let mut second = CpuProfiler::with_frequency(100).unwrap();
        let refused = second.start().unwrap_err().to_string();
        assert!(
            refused.contains("already running") && refused.contains("second CPU profiler"),
            "{refused}"
        );
        // However late the machine delivers the signals, CPU spent brings
        // them.
        let sampled_before = agentprof::__test_hooks::this_thread_sampled_cpu_ns();
        burn_cpu_ns(50_000_000);
        while agentprof::__test_hooks::this_thread_sampled_cpu_ns() == sampled_before {
            burn_cpu_ns(1_000_000);
        }
        let report = profiler.stop_and_collect().unwrap();
        assert!(report.sample_count() > 0);
        // A signal still pending must not meet the default disposition,
        // which terminates the process.
        assert_eq!(sigprof_handler(), 1);
    }
}

fn sigprof_handler() -> usize {
    // Read through /proc rather than sigaction, to keep this test free of
    // unsafe code: SigCgt lists the caught signals as a hex mask.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let caught = status.lines().find(|l| l.starts_with("SigCgt:")).unwrap();
    let mask = u64::from_str_radix(caught.split_whitespace().nth(1).unwrap(), 16).unwrap();
    ((mask >> 26) & 1) as usize // SIGPROF is 27
}

#[test]
fn soak_sampling_at_1000_hz_through_allocation_panics_and_backtraces() {
    setup();
    let _serial = serial();
    let seconds: u64 = std::env::var("AGENTPROF_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut profiler = CpuProfiler::with_frequency(1000).unwrap();
    profiler.start().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                while std::time::Instant::now() < deadline {
                    let mut kept: Vec<Vec<u8>> = Vec::new();
                    for i in 0..500 {
                        kept.push(vec![t as u8; 16 + (i * 37) % 4000]);
                    }
                    drop(kept);
                    let _ = std::panic::catch_unwind(|| {
                        let v: Vec<u32> = Vec::new();
                        v[rounds as usize % 3]
                    });
                    if rounds % 50 == 0 {
                        let trace = std::backtrace::Backtrace::force_capture();
                        std::hint::black_box(trace.to_string().len());
                    }
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    let rounds: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    std::panic::set_hook(previous_hook);
    let report = profiler.stop_and_collect().unwrap();
    eprintln!(
        "soak: {rounds} rounds, {} samples, dropped {}/{}/{}",
        report.sample_count(),
        report.dropped_buffer_full,
        report.dropped_unwinder_busy,
        report.dropped_keys
    );
    assert!(rounds > 0 && report.sample_count() > 100);
}

/// Values passed in code are named as the caller passed them, not as a
/// configuration key the program never wrote; a configuration's keys are
/// named where the file is read.
#[test]
fn errors_name_what_the_caller_passed() {
    let cpu = agentprof::cpu::CpuProfiler::with_frequency(0)
        .err()
        .expect("0 Hz is refused")
        .to_string();
    assert!(cpu.contains("the CPU profiler's frequency"), "{cpu}");
    assert!(cpu.contains("1 to 10000"), "{cpu}");
    assert!(!cpu.contains("telemetry."), "{cpu}");
    let timeline =
        agentprof::memory::start_memory_timeline(std::time::Duration::from_millis(10), 0)
            .unwrap_err()
            .to_string();
    assert!(
        timeline.contains("start_memory_timeline's capacity"),
        "{timeline}"
    );
    assert!(!timeline.contains("telemetry."), "{timeline}");
    let config = agentprof::Config::from_toml_str("[telemetry.profiling.cpu]\nfrequency = 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        config.contains("telemetry.profiling.cpu.frequency"),
        "{config}"
    );
}
