//! The user-space CPU clock takes one file descriptor per thread that runs
//! instrumented code; it must never starve the application of them. With a
//! soft limit of 256 and 300 threads inside invocations at once, the
//! application still opens its files. Its own process: it lowers the
//! process's descriptor limit.

use std::sync::{Arc, Barrier};

#[agentprof::profiled(agent = "worker")]
fn hold(barrier: &Barrier) {
    // Inside an invocation: this thread has read the CPU clock.
    barrier.wait();
    barrier.wait();
}

#[test]
fn hundreds_of_threads_leave_the_application_its_descriptors() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out pointer.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit.rlim_cur = 256.min(limit.rlim_max);
    // SAFETY: lowering the soft limit of this test's own process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);

    const THREADS: usize = 300;
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || hold(&barrier))
                .expect("a thread")
        })
        .collect();
    // Every thread is inside its invocation, clock opened or refused.
    barrier.wait();
    let opened: Vec<_> = (0..64).map(|_| std::fs::File::open("/dev/null")).collect();
    let failed = opened.iter().filter(|f| f.is_err()).count();
    let report = agentprof::report();
    let clock_fds = report.profiler.as_ref().map_or(0, |p| p.clock_fds);
    drop(opened);
    barrier.wait();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        failed, 0,
        "the application could not open {failed} of 64 files"
    );
    // An eighth of the limit at most; the rest read through the system call.
    assert!(clock_fds <= 32, "{clock_fds} clock descriptors");
    if report.cpu_clock == Some(agentprof::report::CpuClock::PerfMmap) {
        assert!(
            report.dropped.cpu_clock_fallback_threads >= (THREADS - 32) as u64,
            "{:?}",
            report.dropped
        );
    }
    let report = agentprof::report();
    let worker = report.agent(Some("worker")).unwrap();
    assert_eq!(worker.calls, THREADS as u64);
    assert!(worker.cpu_ns.is_some());
}
