//! The clocks an invocation is measured with.
//!
//! Everything that reads the thread CPU clock goes through [`thread_cpu_ns`],
//! so a cheaper exact source (a perf_event task-clock read from user space,
//! say) can replace `clock_gettime` without touching the accounting.

/// CPU time consumed by the calling thread, in nanoseconds, or `None` where
/// the platform has no per-thread CPU clock (the figure is then absent from
/// reports, never zero).
#[inline]
pub(crate) fn thread_cpu_ns() -> Option<u64> {
    imp::thread_cpu_ns()
}

/// Monotonic wall-clock time, in nanoseconds from an arbitrary origin.
///
/// A plain integer rather than `Instant`, so a frame's start costs one vDSO
/// read and its duration one subtraction.
#[inline]
pub(crate) fn monotonic_ns() -> u64 {
    imp::monotonic_ns()
}

/// Reads any clock by id (e.g. another thread's CPU clock), in ns.
#[cfg(unix)]
pub(crate) use imp::read as read_clock;

#[cfg(unix)]
mod imp {
    #[inline]
    pub(crate) fn read(clock: libc::clockid_t) -> Option<u64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the
        // call, and reading a clock needs no other state.
        let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
        if rc != 0 {
            return None;
        }
        Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }

    #[inline]
    pub(super) fn thread_cpu_ns() -> Option<u64> {
        read(libc::CLOCK_THREAD_CPUTIME_ID)
    }

    #[inline]
    pub(super) fn monotonic_ns() -> u64 {
        // CLOCK_MONOTONIC cannot fail with a valid timespec; 0 would only
        // make one duration wrong, never panic.
        read(libc::CLOCK_MONOTONIC).unwrap_or(0)
    }
}

#[cfg(not(unix))]
mod imp {
    use std::sync::OnceLock;
    use std::time::Instant;

    #[inline]
    pub(super) fn thread_cpu_ns() -> Option<u64> {
        None
    }

    pub(super) fn monotonic_ns() -> u64 {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Benchmarks compare instrumentation overhead against this floor.
#[doc(hidden)]
pub fn read_thread_cpu_clock() -> Option<u64> {
    thread_cpu_ns()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_clock_advances_with_work_not_with_sleep() {
        let a = thread_cpu_ns().expect("thread CPU clock");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = thread_cpu_ns().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let c = thread_cpu_ns().unwrap();
        assert!(b - a > 1_000_000, "busy loop charged {} ns", b - a);
        assert!(c - b < 5_000_000, "sleep charged {} ns", c - b);
    }
}
