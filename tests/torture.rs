//! The edges where a profiler can hurt its host: stopping with signals
//! still pending, a host's own SIGPROF handler and `ITIMER_PROF`. Signal
//! dispositions are process-wide, so these run one at a time.
//!
//! The longest test is `#[ignore]`d for a quick local run; CI runs it with
//! `--include-ignored`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use agentprof::{CpuProfiler, TimerMode};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

static HOST_CALLS: AtomicU64 = AtomicU64::new(0);

extern "C" fn host_handler(_: libc::c_int) {
    HOST_CALLS.fetch_add(1, SeqCst);
}

fn set_host_handler() {
    // SAFETY: a plain one-argument handler that only touches an atomic.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = host_handler as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGPROF, &action, std::ptr::null_mut()),
            0
        );
    }
}

fn current_handler() -> usize {
    // SAFETY: a null new action only queries.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        assert_eq!(
            libc::sigaction(libc::SIGPROF, std::ptr::null(), &mut current),
            0
        );
        current.sa_sigaction
    }
}

fn raise_sigprof() {
    // SAFETY: raise has no preconditions; a handler is installed.
    assert_eq!(unsafe { libc::raise(libc::SIGPROF) }, 0);
}

fn set_sigprof_blocked(blocked: bool) {
    // SAFETY: valid signal set on the stack.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPROF);
        let how = if blocked {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        assert_eq!(libc::pthread_sigmask(how, &set, std::ptr::null_mut()), 0);
    }
}

/// Starts and stops the profiler `rounds` times while a busy thread keeps
/// SIGPROF blocked during each session and unblocks it after the stop, so
/// the signals our timers raised for it arrive after sampling ended. With
/// the default disposition back in place, the first would kill the
/// process ("Profiling timer expired").
fn stop_start_with_pending_signals(rounds: u32, process_wide: bool) {
    // The host has the default disposition, whose action is to terminate.
    // SAFETY: SIG_DFL is a valid disposition.
    unsafe { libc::signal(libc::SIGPROF, libc::SIG_DFL) };
    agentprof::__private::force_process_timer(process_wide);
    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(AtomicU64::new(0));
    let unblocked = Arc::new(AtomicU64::new(0));
    let busy = {
        let (stop, phase, unblocked) = (stop.clone(), phase.clone(), unblocked.clone());
        std::thread::spawn(move || {
            let mut seen = 0;
            set_sigprof_blocked(true);
            while !stop.load(SeqCst) {
                let now = phase.load(SeqCst);
                if now != seen && now % 2 == 0 {
                    // The session ended: let its pending signals in.
                    set_sigprof_blocked(false);
                    set_sigprof_blocked(true);
                    unblocked.fetch_add(1, SeqCst);
                }
                seen = now;
                common::burn_cpu_ns(200_000);
            }
        })
    };
    for round in 0..rounds {
        let mut profiler = CpuProfiler::with_frequency(1000).unwrap();
        profiler.start().unwrap();
        let expected = if process_wide {
            TimerMode::ProcessWide
        } else {
            TimerMode::PerThread
        };
        assert_eq!(profiler.mode(), Some(expected));
        phase.store(2 * round as u64 + 1, SeqCst);
        common::burn_cpu_ns(2_000_000);
        profiler.stop_and_collect().unwrap();
        // A SIGPROF arriving now (of the stopped session, or anyone's) is
        // dropped, never the default action.
        assert_ne!(current_handler(), libc::SIG_DFL);
        raise_sigprof();
        phase.store(2 * round as u64 + 2, SeqCst);
        while unblocked.load(SeqCst) < round as u64 + 1 {
            std::thread::yield_now();
        }
    }
    stop.store(true, SeqCst);
    busy.join().unwrap();
    agentprof::__private::force_process_timer(false);
    assert_eq!(unblocked.load(SeqCst), rounds as u64);
}

#[test]
fn signals_pending_at_stop_never_kill_the_process() {
    let _serial = serial();
    stop_start_with_pending_signals(30, false);
    stop_start_with_pending_signals(30, true);
}

#[test]
#[ignore = "long (a thousand sessions per timer mode): CI runs it with --include-ignored"]
fn a_thousand_stops_with_pending_signals_in_both_timer_modes() {
    let _serial = serial();
    stop_start_with_pending_signals(1000, false);
    stop_start_with_pending_signals(1000, true);
}

#[test]
fn a_host_handler_installed_before_start_keeps_getting_its_signals() {
    let _serial = serial();
    set_host_handler();
    let before = HOST_CALLS.load(SeqCst);
    let mut profiler = CpuProfiler::with_frequency(500).unwrap();
    profiler.start().unwrap();
    assert_ne!(current_handler(), host_handler as *const () as usize);
    raise_sigprof();
    assert_eq!(
        HOST_CALLS.load(SeqCst),
        before + 1,
        "chained while sampling"
    );
    common::burn_cpu_ns(40_000_000);
    let report = profiler.stop_and_collect().unwrap();
    assert!(report.sample_count() > 0, "our own signals were sampled");
    // Our timers' signals went to us only.
    assert_eq!(HOST_CALLS.load(SeqCst), before + 1);
    raise_sigprof();
    assert_eq!(HOST_CALLS.load(SeqCst), before + 2, "chained after stop");
}

#[test]
fn a_host_handler_installed_while_sampling_survives_stop() {
    let _serial = serial();
    let mut profiler = CpuProfiler::with_frequency(250).unwrap();
    profiler.start().unwrap();
    set_host_handler();
    profiler.stop_and_collect().unwrap();
    assert_eq!(current_handler(), host_handler as *const () as usize);
    let before = HOST_CALLS.load(SeqCst);
    raise_sigprof();
    assert_eq!(HOST_CALLS.load(SeqCst), before + 1);
    // A new session takes over again and passes the host's signals on.
    profiler.start().unwrap();
    raise_sigprof();
    assert_eq!(HOST_CALLS.load(SeqCst), before + 2);
    profiler.stop_and_collect().unwrap();
}

#[test]
fn the_hosts_itimer_prof_is_restored() {
    let _serial = serial();
    // A host timer far enough out that it never fires here.
    let host = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 100,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: 100,
            tv_usec: 0,
        },
    };
    // SAFETY: valid pointers.
    assert_eq!(
        unsafe { libc::setitimer(libc::ITIMER_PROF, &host, std::ptr::null_mut()) },
        0
    );
    agentprof::__private::force_process_timer(true);
    let mut profiler = CpuProfiler::with_frequency(250).unwrap();
    profiler.start().unwrap();
    agentprof::__private::force_process_timer(false);
    assert_eq!(profiler.mode(), Some(TimerMode::ProcessWide));
    common::burn_cpu_ns(20_000_000);
    assert!(profiler.stop_and_collect().unwrap().sample_count() > 0);
    // SAFETY: valid pointers.
    let mut now: libc::itimerval = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getitimer(libc::ITIMER_PROF, &mut now) }, 0);
    assert_eq!(now.it_interval.tv_sec, 100, "the host's interval is back");
    assert!(now.it_value.tv_sec > 90, "and its timer still runs");
    let off: libc::itimerval = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers.
    unsafe { libc::setitimer(libc::ITIMER_PROF, &off, std::ptr::null_mut()) };
}
