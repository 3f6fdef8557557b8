//! `fork()` copies every handle of the profiler's background threads into
//! the child, but none of the threads. Joining one there would block
//! forever (the copied thread never exits), and the process-wide "one
//! profiler at a time" flags would stay set, so the child could never
//! profile. Each background thread records the process it was started in;
//! stopping from a forked child forgets the copies instead of joining them.
//! And the background threads' lock-holding stretches never straddle a
//! fork ([`background_section`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Once;
use std::thread::JoinHandle;
use std::time::Duration;

/// The process a background thread was started in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StartedIn(u32);

impl StartedIn {
    pub(crate) fn this_process() -> Self {
        Self(std::process::id())
    }

    /// Whether we are still in that process (not in a forked child).
    pub(crate) fn is_current(self) -> bool {
        self.0 == std::process::id()
    }
}

/// Joins `handle`, or, in a forked child where the thread does not exist,
/// forgets it.
pub(crate) fn join<T>(handle: JoinHandle<T>, started: StartedIn) {
    if started.is_current() {
        let _ = handle.join();
    } else {
        std::mem::forget(handle);
    }
}

static FORKING: AtomicBool = AtomicBool::new(false);
static IN_SECTION: AtomicUsize = AtomicUsize::new(0);

/// Leaves a background section, also on unwind.
struct Leave;

impl Drop for Leave {
    fn drop(&mut self) {
        IN_SECTION.fetch_sub(1, SeqCst);
    }
}

/// Runs `f`, a stretch in which one of the profiler's own threads holds
/// the profiler's locks (a window cut, a sample drain), never across a
/// `fork()`: a fork waits for running sections to end, and no section
/// starts while one is under way. So a forked child never finds a lock
/// that one of the profiler's threads held. (An application thread inside
/// the profiler at that instant still can: see the README's reliability
/// section.)
pub(crate) fn background_section<R>(f: impl FnOnce() -> R) -> R {
    register();
    loop {
        while FORKING.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        IN_SECTION.fetch_add(1, SeqCst);
        if !FORKING.load(SeqCst) {
            break;
        }
        IN_SECTION.fetch_sub(1, SeqCst);
    }
    let _leave = Leave;
    f()
}

extern "C" fn before_fork() {
    FORKING.store(true, SeqCst);
    while IN_SECTION.load(SeqCst) != 0 {
        std::thread::yield_now();
    }
}

extern "C" fn after_fork_in_parent() {
    FORKING.store(false, SeqCst);
}

extern "C" fn after_fork_in_child() {
    // The sections' threads do not exist here.
    IN_SECTION.store(0, SeqCst);
    FORKING.store(false, SeqCst);
}

fn register() {
    static REGISTERED: Once = Once::new();
    // SAFETY: the handlers only touch atomics and yield, which is allowed
    // around fork in a multithreaded process.
    REGISTERED.call_once(|| unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_in_parent),
            Some(after_fork_in_child),
        );
    });
}
