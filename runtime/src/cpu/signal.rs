//! The SIGPROF handler and its installation.
//!
//! The handler follows the rules of async-signal safety: it takes no lock,
//! allocates nothing, keeps `errno`, reads only atomics, its own thread's
//! const thread-local slot, the thread CPU clock and the interrupted
//! registers, and calls only `clock_gettime`, `gettid`, `getpid` and
//! `process_vm_readv`. What it cannot store it drops and counts.

use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::*};

use super::buffer::{SampleLabels, MAX_FRAMES};
use super::Session;
use crate::error::{Error, Result};
use crate::thread::clock;
use crate::thread::slot;
use crate::unwind::Registers;

/// Per thread: the profiling session of the thread's last sample, and its
/// CPU time then. Const-initialised, no destructor: readable in the handler.
struct LastSample {
    generation: Cell<u64>,
    cpu_ns: Cell<u64>,
}

thread_local! {
    static LAST_SAMPLE: LastSample = const {
        LastSample {
            generation: Cell::new(0),
            cpu_ns: Cell::new(0),
        }
    };
}

/// The CPU time this thread's new sample stands for: the thread CPU time
/// since its previous sample in the same session; for its first, since
/// `baseline` (its CPU when sampling of it began) or else one period.
/// Async-signal-safe: a const thread-local and `clock_gettime`.
fn sample_weight(generation: u64, period_ns: u64, baseline: Option<u64>) -> u64 {
    let now = clock::thread_cpu_ns_syscall();
    LAST_SAMPLE.with(|last| {
        let previous = if last.generation.get() == generation {
            Some(last.cpu_ns.get())
        } else {
            baseline
        };
        last.generation.set(generation);
        match now {
            Some(now) => {
                last.cpu_ns.set(now);
                match previous {
                    Some(prev) if now > prev => now - prev,
                    _ => period_ns,
                }
            }
            None => period_ns,
        }
    })
}

/// The session the handler feeds; null when none runs.
pub(super) static SESSION: AtomicPtr<Session> = AtomicPtr::new(std::ptr::null_mut());
/// Handlers currently running, so a session is freed only after they end.
pub(super) static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Keeps `errno` across the handler: the interrupted code may be between a
/// failing call and its read of `errno`.
struct ErrnoGuard(libc::c_int);

impl ErrnoGuard {
    fn save() -> Self {
        // SAFETY: __errno_location returns this thread's errno slot.
        Self(unsafe { *libc::__errno_location() })
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

extern "C" fn on_sigprof(
    _signal: libc::c_int,
    _info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let _errno = ErrnoGuard::save();
    RUNNING.fetch_add(1, SeqCst);
    // SAFETY: a non-null SESSION is a live Box that `stop` frees only after
    // unpublishing it and seeing RUNNING reach zero.
    if let Some(session) = unsafe { SESSION.load(SeqCst).as_ref() } {
        // SAFETY: the kernel passes the interrupted context as a ucontext_t.
        let registers = unsafe { registers(context) };
        sample(session, registers);
    }
    RUNNING.fetch_sub(1, SeqCst);
}

/// # Safety
/// `context` must be the `ucontext_t` the kernel passed to a SA_SIGINFO
/// handler.
unsafe fn registers(context: *mut libc::c_void) -> Registers {
    // SAFETY: per the function's contract.
    let gregs = unsafe { &(*(context as *const libc::ucontext_t)).uc_mcontext.gregs };
    Registers {
        ip: gregs[libc::REG_RIP as usize] as u64,
        sp: gregs[libc::REG_RSP as usize] as u64,
        bp: gregs[libc::REG_RBP as usize] as u64,
    }
}

fn sample(session: &Session, registers: Registers) {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
    let weight = sample_weight(
        session.generation,
        session.period_ns,
        session.baselines.get(tid),
    );
    // SAFETY: the slot points at an `Active` that stays live until this
    // thread leaves it, which it cannot do while this handler runs on it.
    let labels =
        unsafe { slot::current().as_ref() }.map_or_else(SampleLabels::default, |a| SampleLabels {
            invocation: a.id,
            owner: a.owner.key(),
            span_id: a.span_id,
            trace_id: a.trace_id,
        });
    let mut frames = [0u64; MAX_FRAMES];
    let Some(depth) = session.unwinder.unwind(registers, &mut frames) else {
        session.dropped_busy.fetch_add(1, Relaxed);
        return;
    };
    session
        .buffer
        .push(tid as u64, weight, labels, &frames[..depth]);
}

/// The disposition that was in place before ours.
pub(super) struct Installed {
    previous: libc::sigaction,
}

pub(super) fn install() -> Result<Installed> {
    // SAFETY: a zeroed sigaction is a valid starting point; we set the
    // handler, flags and an empty mask before use.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigprof as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: valid pointers to our locals.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGPROF, &action, &mut previous)
    };
    if rc != 0 {
        return Err(Error::Unsupported {
            key: "SIGPROF".to_owned(),
            what: format!("a SIGPROF handler ({})", std::io::Error::last_os_error()),
            hint: None,
        });
    }
    Ok(Installed { previous })
}

impl Installed {
    /// Puts the previous disposition back.
    pub(super) fn restore(self) {
        // SAFETY: `previous` came from sigaction and is valid to reinstall.
        unsafe { libc::sigaction(libc::SIGPROF, &self.previous, std::ptr::null_mut()) };
    }
}
