//! The SIGPROF handler and its installation.
//!
//! The handler follows the rules of async-signal safety: it takes no lock,
//! allocates nothing, keeps `errno`, reads only atomics, its own thread's
//! const thread-local slot, the thread CPU clock and the interrupted
//! registers, and calls only `clock_gettime`, `gettid`, `getpid` and
//! `process_vm_readv`. What it cannot store it drops and counts. Signals
//! that are not from our timers go to the host's handler, if it had one.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Mutex;

use super::buffer::SampleLabels;
use super::Session;
use crate::error::{Error, Result};
use crate::thread::clock;
use crate::thread::slot;
use crate::unwind::Registers;

// safe zone: no lock, no allocation (runtime/tests/layers.rs)
/// Per thread: the profiling session of the thread's last sample, and its
/// CPU time then. Const-initialised, no destructor: readable in the handler.
struct LastSample {
    generation: Cell<u64>,
    /// Atomic only so that the thread itself may read it outside the
    /// handler ([`this_thread_sampled_cpu_ns`]) while a signal lands.
    cpu_ns: AtomicU64,
    /// CPU of this thread's samples that could not be stored, carried into
    /// its next stored one so that none is lost.
    carried_ns: Cell<u64>,
}

thread_local! {
    static LAST_SAMPLE: LastSample = const {
        LastSample {
            generation: Cell::new(0),
            cpu_ns: AtomicU64::new(0),
            carried_ns: Cell::new(0),
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
            Some(last.cpu_ns.load(Relaxed))
        } else {
            // A new session: nothing carried from the previous one.
            last.carried_ns.set(0);
            baseline
        };
        last.generation.set(generation);
        match now {
            Some(now) => {
                last.cpu_ns.store(now, Relaxed);
                match previous {
                    Some(prev) if now > prev => now - prev,
                    _ => period_ns,
                }
            }
            None => period_ns,
        }
    })
}

/// This thread's CPU time when its last sample was taken (0 before any):
/// what the samples of this thread account for so far. Tests wait on it
/// instead of on time, since a busy machine delivers CPU timer signals
/// late (the kernel checks CPU timers at the scheduler tick).
#[doc(hidden)]
pub fn this_thread_sampled_cpu_ns() -> u64 {
    LAST_SAMPLE.with(|last| last.cpu_ns.load(Relaxed))
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

/// What our timers put in `si_value`, so the handler tells their signals
/// from a host's (its own `ITIMER_PROF`, `kill`, `raise`).
pub(super) static TIMER_COOKIE: u8 = 0;
/// Set while our process-wide `ITIMER_PROF` is armed: the kernel's
/// SIGPROFs (`SI_KERNEL`) are then ours.
pub(super) static PROCESS_TIMER_OURS: AtomicBool = AtomicBool::new(false);

fn cookie() -> *mut libc::c_void {
    std::ptr::addr_of!(TIMER_COOKIE) as *mut libc::c_void
}

/// Whether a signal came from one of our timers.
///
/// # Safety
/// `info` must be the `siginfo_t` the kernel passed to a SA_SIGINFO handler.
unsafe fn from_our_timer(info: *const libc::siginfo_t) -> bool {
    // SAFETY: per the contract; `si_value` is meaningful for SI_TIMER.
    let info = unsafe { &*info };
    match info.si_code {
        libc::SI_TIMER => unsafe { info.si_value() }.sival_ptr == cookie(),
        libc::SI_KERNEL => PROCESS_TIMER_OURS.load(SeqCst),
        _ => false,
    }
}

extern "C" fn on_sigprof(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let _errno = ErrnoGuard::save();
    // SAFETY: the kernel passes a valid siginfo_t to a SA_SIGINFO handler.
    if !unsafe { from_our_timer(info) } {
        chain_to_host(signal, info, context);
        return;
    }
    RUNNING.fetch_add(1, SeqCst);
    // SAFETY: a non-null SESSION is a live Box that `stop` frees only after
    // unpublishing it and seeing RUNNING reach zero. With no session (a
    // signal of a stopped session landing late) the signal is dropped.
    if let Some(session) = unsafe { SESSION.load(SeqCst).as_ref() } {
        // SAFETY: the kernel passes the interrupted context as a ucontext_t.
        let registers = unsafe { registers(context) };
        sample(session, registers);
    }
    RUNNING.fetch_sub(1, SeqCst);
}

/// Hands a signal that is not ours to the handler the host had installed
/// before ours, as the kernel would have.
fn chain_to_host(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: HOST holds null or a leaked, never-freed sigaction.
    let Some(host) = (unsafe { HOST.load(SeqCst).as_ref() }) else {
        return;
    };
    if host.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with SA_SIGINFO the host registered a three-argument
        // handler at this address; we pass it what the kernel gave us.
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(host.sa_sigaction) };
        handler(signal, info, context);
    } else {
        // SAFETY: without SA_SIGINFO it is a one-argument handler.
        let handler: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(host.sa_sigaction) };
        handler(signal);
    }
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
    let weight = weight + LAST_SAMPLE.with(|last| last.carried_ns.replace(0));
    // The frames stay in the unwinder's scratch: the interrupted thread's
    // stack may be small and nearly full.
    let stored = session
        .unwinder
        .unwind_with(registers, |frames| {
            session.buffer.push(tid as u64, weight, labels, frames)
        })
        .unwrap_or_else(|| {
            session.dropped_busy.fetch_add(1, Relaxed);
            false
        });
    if !stored {
        LAST_SAMPLE.with(|last| last.carried_ns.set(weight));
    }
}
// end of safe zone

/// The host's SIGPROF handler, which signals that are not ours go to; null
/// when the host had none (or `SIG_DFL` / `SIG_IGN`: such signals are then
/// ignored, never allowed to terminate the process).
static HOST: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());
static INSTALLING: Mutex<()> = Mutex::new(());

/// Makes our handler SIGPROF's disposition, for the rest of the process's
/// life.
///
/// It is never taken down: a SIGPROF of ours can still be pending when
/// sampling stops (a thread that blocks the signal, a stopped or starved
/// thread), and the default disposition would terminate the process. With
/// no session running the handler drops our signals and passes any other
/// to the host's handler. If the host installed its own handler since, this
/// takes over again and chains to it.
pub(super) fn install() -> Result<()> {
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: a null new action only queries; `current` is a valid out
    // pointer.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    if unsafe { libc::sigaction(libc::SIGPROF, std::ptr::null(), &mut current) } != 0 {
        return Err(install_error());
    }
    if current.sa_sigaction == on_sigprof as *const () as usize {
        return Ok(());
    }
    let host_handler =
        current.sa_sigaction != libc::SIG_DFL && current.sa_sigaction != libc::SIG_IGN;
    // Leaked: at most once per time the host replaces our handler, and the
    // handler may read it at any later time.
    let host = if host_handler {
        Box::into_raw(Box::new(current))
    } else {
        std::ptr::null_mut()
    };
    HOST.store(host, SeqCst);
    // SAFETY: a zeroed sigaction is a valid starting point; we set the
    // handler, flags and an empty mask before use.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigprof as *const () as usize;
    // Not SA_ONSTACK: the alternate stacks Rust gives its threads are a
    // few KiB, too small for an unwind (a debug build overflowed them).
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: valid pointers to our locals.
    let rc = unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGPROF, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(install_error());
    }
    Ok(())
}

fn install_error() -> Error {
    Error::Resource {
        what: "a SIGPROF handler".to_owned(),
        source: std::io::Error::last_os_error(),
    }
}
