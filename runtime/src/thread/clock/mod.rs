//! The clocks an invocation is measured with.
//!
//! Hot path: [`thread_cpu_ns`] runs at every transition (two per call, two
//! per poll). Where the kernel allows it, it reads the thread's CPU time in
//! user space ([`perf`]: a perf_event task-clock page and the TSC, about
//! 10 ns) instead of `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` (a system call
//! on VMs without a vDSO path for thread clocks, 200–700 ns). Both give the
//! thread's CPU time since it started, so figures mix freely.
//!
//! The SIGPROF handler uses [`thread_cpu_ns_syscall`]: the user-space clock
//! keeps per-thread state that the interrupted code may be updating.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod perf;

/// Which thread CPU clock a thread reads.
pub(crate) use crate::model::CpuClock;

/// CPU time consumed by the calling thread, in nanoseconds, or `None` where
/// the platform has no per-thread CPU clock (the figure is then absent from
/// reports, never zero).
#[inline]
pub(crate) fn thread_cpu_ns() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        perf::thread_cpu_ns()
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        imp::thread_cpu_ns()
    }
}

// safe zone: no lock, no allocation (runtime/tests/layers.rs)
/// The thread CPU clock through the kernel, always: async-signal-safe.
#[inline]
pub(crate) fn thread_cpu_ns_syscall() -> Option<u64> {
    imp::thread_cpu_ns()
}
// end of safe zone

/// The clock new reads use in this process, and how many threads had to
/// fall back to the system call while the fast clock was in use.
pub(crate) fn cpu_clock() -> (CpuClock, u64) {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        perf::status()
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        (CpuClock::Syscall, 0)
    }
}

/// File descriptors (each with one mapped page) the user-space clock holds.
pub(crate) fn clock_fds() -> u64 {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        perf::open_threads()
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        0
    }
}

/// Makes every thread read the thread CPU clock through the system call
/// from now on (`telemetry.profiling.cpu.clock = "syscall"`).
pub(crate) fn force_syscall_clock() {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    perf::disable();
}

/// Switches the user-space clock on or off for every thread (benchmarks
/// measure both in one run). Returns whether the fast clock is in use.
#[doc(hidden)]
pub fn set_fast_cpu_clock(on: bool) -> bool {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        if on {
            perf::enable()
        } else {
            perf::disable();
            false
        }
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        let _ = on;
        false
    }
}

/// Monotonic wall-clock time, in nanoseconds from an arbitrary origin.
///
/// A plain integer rather than `Instant`, so a frame's duration is one
/// subtraction; read from the TSC where the user-space CPU clock is on (the
/// two sources agree: the TSC is the kernel's clocksource), from the vDSO
/// elsewhere.
#[inline]
pub(crate) fn monotonic_ns() -> u64 {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    if let Some(ns) = perf::monotonic_ns() {
        return ns;
    }
    imp::monotonic_ns()
}

/// Reads any clock by id (e.g. another thread's CPU clock), in ns.
#[cfg(unix)]
pub(crate) use imp::read as read_clock;

#[cfg(unix)]
mod imp {
    // safe zone: no lock, no allocation (runtime/tests/layers.rs)
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
    // end of safe zone

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

/// The thread CPU clock through the kernel: the reference benchmarks and
/// tests compare against.
#[doc(hidden)]
pub fn read_thread_cpu_clock() -> Option<u64> {
    thread_cpu_ns_syscall()
}

/// The thread CPU clock as invocations read it (user space where allowed).
#[doc(hidden)]
pub fn read_thread_cpu_clock_fast() -> Option<u64> {
    thread_cpu_ns()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_clock_advances_with_work_not_with_sleep() {
        for read in [thread_cpu_ns, thread_cpu_ns_syscall] {
            let a = read().expect("thread CPU clock");
            let mut x = 0u64;
            for i in 0..20_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            let b = read().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            let c = read().unwrap();
            assert!(b - a > 1_000_000, "busy loop charged {} ns", b - a);
            assert!(c - b < 5_000_000, "sleep charged {} ns", c - b);
        }
    }

    #[test]
    fn monotonic_time_tracks_the_kernel_clock() {
        let (k0, m0) = (imp::monotonic_ns(), monotonic_ns());
        std::thread::sleep(std::time::Duration::from_millis(200));
        let (k1, m1) = (imp::monotonic_ns(), monotonic_ns());
        let (kernel, ours) = ((k1 - k0) as f64, (m1 - m0) as f64);
        assert!(
            (ours - kernel).abs() < kernel * 0.001 + 20_000.0,
            "monotonic {ours} ns vs kernel {kernel} ns"
        );
        assert!(m0.abs_diff(k0) < 50_000_000, "same origin: {m0} vs {k0}");
    }

    #[test]
    fn fast_clock_tracks_the_kernel_clock() {
        let (k0, f0) = (thread_cpu_ns_syscall().unwrap(), thread_cpu_ns().unwrap());
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
            if i % 1_000_000 == 0 {
                std::thread::yield_now();
            }
        }
        std::hint::black_box(x);
        let (k1, f1) = (thread_cpu_ns_syscall().unwrap(), thread_cpu_ns().unwrap());
        let (kernel, fast) = ((k1 - k0) as f64, (f1 - f0) as f64);
        assert!(
            (fast - kernel).abs() / kernel < 0.01,
            "fast clock {fast} ns vs kernel {kernel} ns ({:?})",
            cpu_clock()
        );
    }
}
