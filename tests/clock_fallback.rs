//! A thread that cannot get a descriptor for the user-space CPU clock
//! (RLIMIT_NOFILE reached) reads the system-call clock instead: its
//! invocations are still measured, and the fallback is counted. Its own
//! test binary: the descriptor limit is process-wide.

mod common;

use agentprof::profiled;
use common::{burn_cpu_ns, setup};

#[profiled(agent = "fallback")]
fn on_a_thread_without_descriptors() -> u64 {
    burn_cpu_ns(5_000_000)
}

#[profiled(agent = "fallback")]
fn warm_up() -> u64 {
    burn_cpu_ns(1_000)
}

/// The lowest free descriptor number: with the limit there, no descriptor
/// can be opened.
fn lowest_free_descriptor() -> u64 {
    // SAFETY: dup of stdin returns the lowest free descriptor, closed at once.
    unsafe {
        let fd = libc::dup(0);
        assert!(fd >= 0, "dup");
        libc::close(fd);
        fd as u64
    }
}

#[test]
fn a_thread_out_of_descriptors_falls_back_and_is_counted() {
    setup();
    warm_up(); // decides the clock while descriptors are available
    if agentprof::report().cpu_clock != Some(agentprof::report::CpuClock::PerfMmap) {
        // The system-call clock needs no descriptor: nothing to fall back from.
        assert_eq!(
            agentprof::report().cpu_clock,
            Some(agentprof::report::CpuClock::Syscall)
        );
        return;
    }
    let before = agentprof::report().dropped.cpu_clock_fallback_threads;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reading and setting this process's own limit with valid
    // pointers.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let lowered = libc::rlimit {
        rlim_cur: lowest_free_descriptor(),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
    let used = std::thread::spawn(on_a_thread_without_descriptors)
        .join()
        .unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);

    let report = agentprof::report();
    assert_eq!(report.dropped.cpu_clock_fallback_threads, before + 1);
    let row = report
        .functions_named("::on_a_thread_without_descriptors")
        .next()
        .unwrap();
    let cpu = row.cpu_ns.expect("measured through the system call");
    assert!(
        cpu >= used && cpu < used + 1_000_000,
        "{cpu} ns charged for {used} ns"
    );
    assert!(report.to_string().contains("threads on the system call"));
}
