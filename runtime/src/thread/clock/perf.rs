//! The thread CPU clock read in user space.
//!
//! Hot path (every transition). Per thread, on first use, a perf_event
//! software counter `PERF_COUNT_SW_TASK_CLOCK` is opened for the calling
//! thread (counting only: no sampling, no ring buffer) and its first page
//! mapped read-only. The kernel updates the page's `time_enabled` whenever
//! the thread is switched in or out. A read takes `time_enabled` and the TSC:
//!
//! - if `time_enabled` is what the previous read on this thread saw, the
//!   thread has not left the CPU in between, so the CPU time that passed is
//!   the TSC time that passed (converted with a rate calibrated against
//!   `CLOCK_MONOTONIC` once per process);
//! - otherwise one `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` resynchronises.
//!
//! (Where the page offers `cap_user_time`, the kernel's own conversion could
//! extrapolate across switches too; the VMs this was built on do not offer
//! it, and resynchronising once per context switch costs little.)
//!
//! The fast path is used only with an invariant TSC (`constant_tsc` and
//! `nonstop_tsc`) that is the kernel's clocksource, when `perf_event_open`
//! is allowed, and unless `AGENTPROF_CPU_CLOCK=syscall` or the configuration
//! asks for the system call. One descriptor and one mapped page per thread
//! that runs instrumented code, released when the thread exits; past the
//! descriptor budget ([`descriptor_budget`]: an eighth of the soft
//! `RLIMIT_NOFILE`, at most [`MAX_OPEN_THREADS`], never within
//! [`RESERVED_DESCRIPTORS`] of the limit), or when the kernel refuses one,
//! a thread reads through the system call, counted. The application keeps
//! the descriptors it needs however many threads it runs.
//!
//! Reads never go backwards: a value is never below the previous one on the
//! same thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use super::imp;
use crate::config::CpuClockConfig;
use crate::model::CpuClock;

/// Threads that may hold a counter and a page at once, whatever the limit.
const MAX_OPEN_THREADS: u64 = 4096;
/// Descriptors the user-space clock always leaves to the application,
/// below the soft limit.
const RESERVED_DESCRIPTORS: u64 = 64;

/// Counters the user-space clock may hold now: an eighth of the soft
/// `RLIMIT_NOFILE` (read at each thread's first use, so a limit changed at
/// run time counts), at most [`MAX_OPEN_THREADS`], and never so many that
/// fewer than [`RESERVED_DESCRIPTORS`] stay below the limit.
pub(super) fn descriptor_budget() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    let soft = limit.rlim_cur;
    (soft / 8)
        .min(soft.saturating_sub(RESERVED_DESCRIPTORS))
        .min(MAX_OPEN_THREADS)
}

/// `GATE` values: not decided yet, system call only, or the epoch of the
/// fast clock (bumped in a forked child, so that no thread reads a page
/// inherited from the parent).
const UNDECIDED: u32 = 0;
const DISABLED: u32 = 1;
const FIRST_EPOCH: u32 = 2;

static GATE: AtomicU32 = AtomicU32::new(UNDECIDED);
/// Nanoseconds per TSC tick, 32.32 fixed point.
static NS_PER_TICK: AtomicU64 = AtomicU64::new(0);
/// A (TSC, CLOCK_MONOTONIC) pair taken at calibration: monotonic time is
/// extrapolated from it while the fast path is on.
static BASE_TSC: AtomicU64 = AtomicU64::new(0);
static BASE_MONOTONIC_NS: AtomicU64 = AtomicU64::new(0);
static OPEN_THREADS: AtomicU64 = AtomicU64::new(0);
static FALLBACK_THREADS: AtomicU64 = AtomicU64::new(0);

/// Offset of `time_enabled` in `struct perf_event_mmap_page`.
const TIME_ENABLED_OFFSET: usize = 24;

/// Per-thread state: const-initialised, no destructor (see [`CloseOnExit`]).
struct ThreadClock {
    page: Cell<*const u8>,
    fd: Cell<i32>,
    /// `GATE` epoch the page was opened under; 0 with no page.
    epoch: Cell<u32>,
    /// Process that opened the page (a forked child inherits it).
    pid: Cell<i32>,
    /// This thread reads through the system call for good.
    refused: Cell<bool>,
    last_enabled: Cell<u64>,
    last_tsc: Cell<u64>,
    last_ns: Cell<u64>,
}

thread_local! {
    static CLOCK: ThreadClock = const {
        ThreadClock {
            page: Cell::new(std::ptr::null()),
            fd: Cell::new(-1),
            epoch: Cell::new(0),
            pid: Cell::new(0),
            refused: Cell::new(false),
            last_enabled: Cell::new(0),
            last_tsc: Cell::new(0),
            last_ns: Cell::new(0),
        }
    };
}

/// Releases the thread's counter and page when the thread exits.
struct CloseOnExit;

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        let _ = CLOCK.try_with(|c| {
            close(c);
            // Invocations finishing later in teardown use the system call.
            c.refused.set(true);
        });
    }
}

thread_local! {
    static CLOSE_ON_EXIT: CloseOnExit = const { CloseOnExit };
}

#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` has no preconditions on x86_64 (the fast path is
    // only enabled where the TSC is invariant).
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// # Safety
/// `page` must be the live mapping of this thread's counter.
#[inline(always)]
unsafe fn time_enabled(page: *const u8) -> u64 {
    // SAFETY: per the contract the page is mapped; the field is an aligned
    // u64 the kernel updates with single stores.
    unsafe { std::ptr::read_volatile(page.add(TIME_ENABLED_OFFSET).cast::<u64>()) }
}

#[inline(always)]
fn ticks_to_ns(ticks: u64) -> u64 {
    ((ticks as u128 * NS_PER_TICK.load(Relaxed) as u128) >> 32) as u64
}

#[inline]
pub(super) fn thread_cpu_ns() -> Option<u64> {
    let gate = GATE.load(Relaxed);
    CLOCK.with(|c| {
        if gate >= FIRST_EPOCH && c.epoch.get() == gate {
            let page = c.page.get();
            // SAFETY: a page is unmapped only after `epoch` is reset, and
            // only by this thread.
            let before = unsafe { time_enabled(page) };
            let tsc = rdtsc();
            // SAFETY: as above.
            let after = unsafe { time_enabled(page) };
            if before == after && before == c.last_enabled.get() {
                let ns = c.last_ns.get() + ticks_to_ns(tsc.wrapping_sub(c.last_tsc.get()));
                c.last_tsc.set(tsc);
                c.last_ns.set(ns);
                return Some(ns);
            }
            return resync(c, page);
        }
        slow(c, gate)
    })
}

/// One system call, and a new (TSC, CPU time) origin for the fast path.
#[cold]
fn resync(c: &ThreadClock, page: *const u8) -> Option<u64> {
    // SAFETY: called with this thread's live page.
    let enabled = unsafe { time_enabled(page) };
    let ns = imp::thread_cpu_ns()?.max(c.last_ns.get());
    c.last_tsc.set(rdtsc());
    c.last_ns.set(ns);
    // Read before the system call: a switch in between shows as a change
    // at the next read, which then resynchronises again.
    c.last_enabled.set(enabled);
    Some(ns)
}

#[cold]
fn slow(c: &ThreadClock, gate: u32) -> Option<u64> {
    let gate = if gate == UNDECIDED { decide() } else { gate };
    if c.epoch.get() != 0 && c.epoch.get() != gate {
        // Opened before the fast clock was turned off or on again, or
        // before a fork (then the page is the parent thread's).
        close(c);
    }
    if gate < FIRST_EPOCH || c.refused.get() {
        return imp::thread_cpu_ns();
    }
    match open() {
        Some((fd, page)) => {
            if CLOSE_ON_EXIT.try_with(|_| ()).is_err() {
                // The thread is exiting: nothing would release the page.
                release(fd, page, true);
                c.refused.set(true);
                return imp::thread_cpu_ns();
            }
            c.fd.set(fd);
            c.page.set(page);
            c.epoch.set(gate);
            c.pid.set(current_pid());
            resync(c, page)
        }
        None => {
            c.refused.set(true);
            FALLBACK_THREADS.fetch_add(1, Relaxed);
            imp::thread_cpu_ns()
        }
    }
}

fn close(c: &ThreadClock) {
    let page = c.page.replace(std::ptr::null());
    let fd = c.fd.replace(-1);
    c.epoch.set(0);
    if !page.is_null() {
        // A page inherited through fork was counted in the parent.
        release(fd, page, c.pid.get() == current_pid());
    }
}

fn current_pid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

fn release(fd: i32, page: *const u8, counted: bool) {
    // SAFETY: `page` is a one-page mapping made by `open` and no longer
    // reachable from the thread state; `fd` is the counter it maps.
    unsafe {
        libc::munmap(page as *mut libc::c_void, page_size());
        libc::close(fd);
    }
    if counted {
        let _ = OPEN_THREADS.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as usize
    } else {
        4096
    }
}

/// A task-clock counter for the calling thread and its mapped first page.
fn open() -> Option<(i32, *const u8)> {
    if OPEN_THREADS.fetch_add(1, Relaxed) >= descriptor_budget() {
        OPEN_THREADS.fetch_sub(1, Relaxed);
        return None;
    }
    let opened = open_counter().and_then(|fd| {
        // SAFETY: mapping the first page of a perf counter read-only is
        // how the kernel exposes its user page; failure is checked.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page_size(),
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            // SAFETY: `fd` is ours and unused elsewhere.
            unsafe { libc::close(fd) };
            return None;
        }
        Some((fd, page as *const u8))
    });
    if opened.is_none() {
        OPEN_THREADS.fetch_sub(1, Relaxed);
    }
    opened
}

fn open_counter() -> Option<i32> {
    const PERF_TYPE_SOFTWARE: u32 = 1;
    const PERF_COUNT_SW_TASK_CLOCK: u64 = 1;
    const PERF_ATTR_SIZE_VER0: u32 = 64;
    const EXCLUDE_KERNEL: u64 = 1 << 5;
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
    // `struct perf_event_attr` up to its first published size: type, size,
    // config, sample_period, sample_type, read_format, flags, wakeup/bp,
    // config1. Zero is "enabled, no sampling" for everything not set.
    for flags in [0, EXCLUDE_KERNEL] {
        let mut attr = [0u64; 8];
        attr[0] = PERF_TYPE_SOFTWARE as u64 | (PERF_ATTR_SIZE_VER0 as u64) << 32;
        attr[1] = PERF_COUNT_SW_TASK_CLOCK;
        attr[5] = flags;
        // SAFETY: `attr` is a valid, zero-padded perf_event_attr of the size
        // it declares; pid 0 / cpu -1 is "this thread, any CPU".
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                attr.as_ptr(),
                0,
                -1,
                -1,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd >= 0 {
            return Some(fd as i32);
        }
    }
    None
}

/// Decides, once per process, whether the fast path may be used.
#[cold]
fn decide() -> u32 {
    let decided = if fast_path_allowed() {
        calibrate();
        // SAFETY: registering a fork handler has no preconditions; the
        // handler only touches an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        FIRST_EPOCH
    } else {
        DISABLED
    };
    match GATE.compare_exchange(UNDECIDED, decided, Relaxed, Relaxed) {
        Ok(_) => decided,
        Err(other) => other,
    }
}

/// What `AGENTPROF_CPU_CLOCK` asks for. A value that is not a clock (a
/// typo such as `sycall`, `0`, an empty string) takes the safe side, the
/// system call, and says so: someone tried to turn perf events off.
fn clock_from_env(value: Option<String>) -> CpuClockConfig {
    let Some(value) = value else {
        return CpuClockConfig::Auto;
    };
    value.parse().unwrap_or_else(|message| {
        tracing::warn!(
            variable = "AGENTPROF_CPU_CLOCK",
            "{message}; reading the thread CPU clock through the system call"
        );
        CpuClockConfig::Syscall
    })
}

fn fast_path_allowed() -> bool {
    let asked = clock_from_env(std::env::var("AGENTPROF_CPU_CLOCK").ok());
    if asked == CpuClockConfig::Syscall {
        return false;
    }
    let clocksource =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or_default();
    let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
    if clocksource.trim() != "tsc" || !has("constant_tsc") || !has("nonstop_tsc") {
        return false;
    }
    // The counter must open here too (seccomp or perf_event_paranoid may
    // refuse it for every thread).
    match open() {
        Some((fd, page)) => {
            release(fd, page, true);
            true
        }
        None => false,
    }
}

/// TSC ticks against `CLOCK_MONOTONIC` over 2 ms.
fn calibrate() {
    let (t0, c0) = (imp::monotonic_ns(), rdtsc());
    let mut t1 = t0;
    while t1 - t0 < 2_000_000 {
        t1 = imp::monotonic_ns();
    }
    let c1 = rdtsc();
    let ticks = c1.wrapping_sub(c0).max(1);
    NS_PER_TICK.store(
        (((t1 - t0) as u128) << 32).div_euclid(ticks as u128) as u64,
        Relaxed,
    );
    BASE_TSC.store(c1, Relaxed);
    BASE_MONOTONIC_NS.store(t1, Relaxed);
}

/// `CLOCK_MONOTONIC` extrapolated from the TSC (invariant and the kernel's
/// clocksource, so the two advance together), or `None` while the fast
/// path is off.
#[inline]
pub(super) fn monotonic_ns() -> Option<u64> {
    if GATE.load(Relaxed) < FIRST_EPOCH {
        return None;
    }
    let ticks = rdtsc().wrapping_sub(BASE_TSC.load(Relaxed));
    Some(BASE_MONOTONIC_NS.load(Relaxed) + ticks_to_ns(ticks))
}

extern "C" fn after_fork_in_child() {
    let gate = GATE.load(Relaxed);
    if gate >= FIRST_EPOCH {
        // Only the forking thread exists in the child; its page, if any,
        // belongs to the parent and is closed (uncounted) at its next read.
        OPEN_THREADS.store(0, Relaxed);
        GATE.store(gate.checked_add(1).unwrap_or(FIRST_EPOCH), Relaxed);
    }
}

/// Makes every thread use the system call from its next read on.
pub(super) fn disable() {
    GATE.store(DISABLED, Relaxed);
}

/// Lets threads use the fast path again (where the process allows it);
/// returns whether it does.
pub(super) fn enable() -> bool {
    let decided = match GATE.load(Relaxed) {
        UNDECIDED => decide(),
        gate => gate,
    };
    if decided >= FIRST_EPOCH {
        return true;
    }
    if !fast_path_allowed() {
        return false;
    }
    if NS_PER_TICK.load(Relaxed) == 0 {
        calibrate();
    }
    // A new epoch: pages of the previous one are closed at their next read.
    let next = EPOCH_SEQUENCE.fetch_add(1, Relaxed) + 1;
    GATE.store(next, Relaxed);
    true
}

/// Epochs handed out by `enable` (after those a fork may take).
static EPOCH_SEQUENCE: AtomicU32 = AtomicU32::new(1 << 16);

/// Threads holding a perf_event descriptor and its mapped page now.
pub(super) fn open_threads() -> u64 {
    OPEN_THREADS.load(Relaxed)
}

pub(super) fn status() -> (CpuClock, u64) {
    let gate = match GATE.load(Relaxed) {
        UNDECIDED => decide(),
        gate => gate,
    };
    if gate >= FIRST_EPOCH {
        (CpuClock::PerfMmap, FALLBACK_THREADS.load(Relaxed))
    } else {
        (CpuClock::Syscall, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_variable_that_is_not_a_clock_takes_the_system_call() {
        assert_eq!(clock_from_env(None), CpuClockConfig::Auto);
        assert_eq!(clock_from_env(Some("auto".into())), CpuClockConfig::Auto);
        assert_eq!(
            clock_from_env(Some(" SYSCALL ".into())),
            CpuClockConfig::Syscall
        );
        for typo in ["sycall", "0", "", "perf"] {
            assert_eq!(
                clock_from_env(Some(typo.into())),
                CpuClockConfig::Syscall,
                "{typo:?}"
            );
        }
    }
}
