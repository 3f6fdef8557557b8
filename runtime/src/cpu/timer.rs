//! The timers that deliver SIGPROF.
//!
//! Preferred: one POSIX timer per thread on that thread's CPU clock,
//! delivered to that thread (`SIGEV_THREAD_ID`), so each busy thread gets
//! its own samples (the process-wide `setitimer(ITIMER_PROF)` delivers to
//! whichever thread the kernel picks and loses samples once several threads
//! are busy). A watcher thread arms timers for threads created later and
//! deletes those of threads that exited. Where per-thread timers cannot be
//! created, `setitimer(ITIMER_PROF)` is used and [`TimerMode`] says so.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fork::StartedIn;
use crate::model::TimerMode;

/// How often the watcher looks for new threads.
const WATCH_INTERVAL: Duration = Duration::from_millis(20);

struct ThreadTimer(libc::timer_t);

// SAFETY: a timer_t is an opaque kernel timer id, usable from any thread.
unsafe impl Send for ThreadTimer {}

impl Drop for ThreadTimer {
    fn drop(&mut self) {
        // SAFETY: the id came from timer_create and is deleted once.
        unsafe { libc::timer_delete(self.0) };
    }
}

fn interval(period_ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (period_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (period_ns % 1_000_000_000) as libc::c_long,
    }
}

/// A timer on thread `tid`'s CPU clock that signals that thread.
fn thread_timer(tid: libc::pid_t, period_ns: u64) -> std::io::Result<ThreadTimer> {
    let clock = thread_clock(tid);
    // SAFETY: zeroed sigevent is valid; the fields SIGEV_THREAD_ID needs
    // are set below.
    let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
    event.sigev_notify = libc::SIGEV_THREAD_ID;
    event.sigev_signo = libc::SIGPROF;
    event.sigev_notify_thread_id = tid;
    // Marks the signal as ours for the handler (others go to the host).
    event.sigev_value = libc::sigval {
        sival_ptr: std::ptr::addr_of!(super::signal::TIMER_COOKIE) as *mut libc::c_void,
    };
    let mut timer: libc::timer_t = std::ptr::null_mut();
    // SAFETY: valid pointers to locals.
    if unsafe { libc::timer_create(clock, &mut event, &mut timer) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let timer = ThreadTimer(timer);
    let spec = libc::itimerspec {
        it_interval: interval(period_ns),
        it_value: interval(period_ns),
    };
    // SAFETY: `timer.0` is a live timer; `spec` is valid.
    if unsafe { libc::timer_settime(timer.0, 0, &spec, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(timer)
}

/// The process's threads; an error (e.g. no descriptor left to open the
/// directory) is not an empty process.
fn thread_ids() -> std::io::Result<HashSet<libc::pid_t>> {
    Ok(std::fs::read_dir("/proc/self/task")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

fn timeval(t: libc::timespec) -> libc::timeval {
    libc::timeval {
        tv_sec: t.tv_sec,
        tv_usec: (t.tv_nsec / 1000) as libc::suseconds_t,
    }
}

/// Arms the process-wide `ITIMER_PROF`; returns the host's timer it
/// replaced, to be put back at stop.
fn set_process_timer(period_ns: u64) -> std::io::Result<libc::itimerval> {
    let t = interval(period_ns);
    let mut first = timeval(t);
    first.tv_usec = first.tv_usec.max(1);
    let value = libc::itimerval {
        it_interval: timeval(t),
        it_value: first,
    };
    // SAFETY: zeroed itimerval is a valid out value.
    let mut host: libc::itimerval = unsafe { std::mem::zeroed() };
    super::signal::PROCESS_TIMER_OURS.store(true, Ordering::SeqCst);
    // SAFETY: valid pointers to locals.
    if unsafe { libc::setitimer(libc::ITIMER_PROF, &value, &mut host) } != 0 {
        super::signal::PROCESS_TIMER_OURS.store(false, Ordering::SeqCst);
        return Err(std::io::Error::last_os_error());
    }
    Ok(host)
}

/// Puts the host's `ITIMER_PROF` back (zero when it had none).
fn restore_process_timer(host: &libc::itimerval) {
    // SAFETY: valid pointer; the value came from setitimer.
    unsafe { libc::setitimer(libc::ITIMER_PROF, host, std::ptr::null_mut()) };
    super::signal::PROCESS_TIMER_OURS.store(false, Ordering::SeqCst);
}

/// Makes the next starts use the process-wide timer (tests of that mode).
static FORCE_PROCESS_TIMER: AtomicBool = AtomicBool::new(false);

#[doc(hidden)]
pub fn force_process_timer(on: bool) {
    FORCE_PROCESS_TIMER.store(on, Ordering::SeqCst);
}

/// Thread CPU time at the moment each thread's timer was armed (0 for
/// threads born after sampling started: all their CPU is in the session),
/// so a thread's first sample can stand for everything since. Fixed size,
/// open-addressed by tid; read by the signal handler.
pub(crate) struct Baselines {
    slots: Box<[(std::sync::atomic::AtomicI32, std::sync::atomic::AtomicU64)]>,
}

impl Baselines {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            slots: (0..capacity.max(1))
                .map(|_| {
                    (
                        std::sync::atomic::AtomicI32::new(0),
                        std::sync::atomic::AtomicU64::new(0),
                    )
                })
                .collect(),
        }
    }

    fn set(&self, tid: libc::pid_t, cpu_ns: u64) {
        let n = self.slots.len();
        for probe in 0..n.min(64) {
            let (key, value) = &self.slots[(tid as usize + probe) % n];
            let current = key.load(Ordering::Acquire);
            if current == tid
                || current == 0
                    && key
                        .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
            {
                value.store(cpu_ns, Ordering::Release);
                return;
            }
        }
    }

    // safe zone: no lock, no allocation (runtime/tests/layers.rs)
    /// Async-signal-safe lookup.
    pub(crate) fn get(&self, tid: libc::pid_t) -> Option<u64> {
        let n = self.slots.len();
        for probe in 0..n.min(64) {
            let (key, value) = &self.slots[(tid as usize + probe) % n];
            match key.load(Ordering::Acquire) {
                0 => return None,
                k if k == tid => return Some(value.load(Ordering::Acquire)),
                _ => {}
            }
        }
        None
    }
    // end of safe zone
}

/// CPU time thread `tid` has used so far.
fn thread_cpu_ns(tid: libc::pid_t) -> Option<u64> {
    crate::thread::clock::read_clock(thread_clock(tid))
}

/// The kernel's encoding of a per-thread CPU clock id:
/// MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED).
fn thread_clock(tid: libc::pid_t) -> libc::clockid_t {
    ((!tid) << 3) | 6
}

pub(super) struct Timers {
    pub(super) mode: TimerMode,
    stop: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
    per_thread: Arc<Mutex<HashMap<libc::pid_t, ThreadTimer>>>,
    /// The host's `ITIMER_PROF`, in process-wide mode.
    host_timer: Option<libc::itimerval>,
    started_in: StartedIn,
}

// SAFETY: `itimerval` is plain data.
unsafe impl Send for Timers {}

impl Timers {
    pub(super) fn start(period_ns: u64, baselines: &'static Baselines) -> Result<Timers> {
        let per_thread = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let armed = if FORCE_PROCESS_TIMER.load(Ordering::SeqCst) {
            Err(std::io::Error::other("process-wide timer asked for"))
        } else {
            arm_new_threads(&per_thread, period_ns, baselines, true)
        };
        if let Err(per_thread_error) = armed {
            let host = set_process_timer(period_ns).map_err(|e| Error::Resource {
                what: format!("a CPU timer (timer_create: {per_thread_error}; setitimer)"),
                source: e,
            })?;
            return Ok(Timers {
                mode: TimerMode::ProcessWide,
                stop,
                watcher: None,
                per_thread,
                host_timer: Some(host),
                started_in: StartedIn::this_process(),
            });
        }
        let watcher = {
            let (stop, per_thread) = (stop.clone(), per_thread.clone());
            std::thread::Builder::new()
                .name("agentprof-cpu-timers".to_owned())
                .spawn(move || {
                    crate::profiler_cost::enter_profiler_thread();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(WATCH_INTERVAL);
                        let _ = arm_new_threads(&per_thread, period_ns, baselines, false);
                    }
                })
        };
        let watcher = match watcher {
            Ok(watcher) => watcher,
            Err(e) => {
                per_thread.lock().unwrap_or_else(|e| e.into_inner()).clear();
                return Err(Error::Resource {
                    what: "the CPU timer watcher thread".to_owned(),
                    source: e,
                });
            }
        };
        Ok(Timers {
            mode: TimerMode::PerThread,
            stop,
            watcher: Some(watcher),
            per_thread,
            host_timer: None,
            started_in: StartedIn::this_process(),
        })
    }

    /// Stops every timer; no new signal is generated after this returns.
    pub(super) fn stop(mut self) {
        if !self.started_in.is_current() {
            // A forked child: the timers are not inherited, the watcher does
            // not exist, and deleting the copied ids could delete timers
            // the child created itself (ids are per process). Forget it all.
            std::mem::forget(self);
            return;
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(watcher) = self.watcher.take() {
            watcher.thread().unpark();
            let _ = watcher.join();
        }
        self.per_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        if let Some(host) = self.host_timer.take() {
            restore_process_timer(&host);
        }
    }
}

/// Arms a timer for every thread without one and drops those of exited
/// threads. Fails only if no timer at all can be created. `initial`: the
/// threads found at start, whose CPU before now is not the session's.
fn arm_new_threads(
    timers: &Mutex<HashMap<libc::pid_t, ThreadTimer>>,
    period_ns: u64,
    baselines: &Baselines,
    initial: bool,
) -> std::io::Result<()> {
    // Unreadable (no descriptor left): keep the timers there are and try
    // again next round.
    let tids = thread_ids()?;
    let mut timers = timers.lock().unwrap_or_else(|e| e.into_inner());
    timers.retain(|tid, _| tids.contains(tid));
    let mut last_error = None;
    for tid in tids {
        if timers.contains_key(&tid) {
            continue;
        }
        let baseline = if initial {
            thread_cpu_ns(tid).unwrap_or(0)
        } else {
            0
        };
        baselines.set(tid, baseline);
        match thread_timer(tid, period_ns) {
            Ok(timer) => {
                timers.insert(tid, timer);
            }
            // The thread may have exited since the listing.
            Err(e) => last_error = Some(e),
        }
    }
    match (timers.is_empty(), last_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(()),
    }
}
