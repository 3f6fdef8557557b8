//! `fork()` copies every handle of the profiler's background threads into
//! the child, but none of the threads. Joining one there would block
//! forever (the copied thread never exits), and the process-wide "one
//! profiler at a time" flags would stay set, so the child could never
//! profile. Each background thread records the process it was started in;
//! stopping from a forked child forgets the copies instead of joining them.

use std::thread::JoinHandle;

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
