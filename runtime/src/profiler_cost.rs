//! What the profiler itself spends, so that a report can show it beside
//! the application's figures: the CPU of its own threads (live ones read
//! through their CPU clocks, exited ones added when they end) and what the
//! collector's window cuts took.
//!
//! Each thread the profiler starts calls [`enter_profiler_thread`] first:
//! that also marks the thread so its heap samples are labelled
//! `agent = "agentprof"`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// CPU clocks of the profiler's live threads.
static LIVE: Mutex<Vec<libc::clockid_t>> = Mutex::new(Vec::new());
/// CPU of the profiler's threads that have ended, ns.
static ENDED_NS: AtomicU64 = AtomicU64::new(0);
/// Thread CPU the first window's cut took, and the last one's, ns (0: none
/// yet).
static FIRST_CUT_NS: AtomicU64 = AtomicU64::new(0);
static LAST_CUT_NS: AtomicU64 = AtomicU64::new(0);
/// The profiler threads' CPU at the last two cuts, ns.
static AT_CUT_NS: Mutex<(u64, u64)> = Mutex::new((0, 0));

fn clock_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out pointer; a clock of a thread that has
    // just ended makes the call fail, which is handled.
    let ok = unsafe { libc::clock_gettime(clock, &mut ts) } == 0;
    ok.then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

fn own_clock() -> Option<libc::clockid_t> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `pthread_self` is this live thread; `clock` is a valid out
    // pointer.
    let ok = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) } == 0;
    ok.then_some(clock)
}

/// Leaves the registry when its thread ends, adding the thread's CPU to
/// [`ENDED_NS`].
struct ProfilerThread(libc::clockid_t);

impl Drop for ProfilerThread {
    fn drop(&mut self) {
        if let Some(ns) = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID) {
            ENDED_NS.fetch_add(ns, Relaxed);
        }
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = live.iter().position(|c| *c == self.0) {
            live.swap_remove(at);
        }
    }
}

thread_local! {
    static THIS_THREAD: std::cell::OnceCell<ProfilerThread> = const { std::cell::OnceCell::new() };
}

/// Called first thing in each thread the profiler starts: counts its CPU
/// as the profiler's and labels its heap samples as the profiler's.
pub(crate) fn enter_profiler_thread() {
    crate::thread::memory::mark_profiler_thread();
    let Some(clock) = own_clock() else { return };
    let _ = THIS_THREAD.try_with(|this| {
        if this.set(ProfilerThread(clock)).is_ok() {
            LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(clock);
        }
    });
}

/// CPU the profiler's threads have used since the process started, ns.
pub(crate) fn threads_cpu_ns() -> u64 {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let running: u64 = live.iter().filter_map(|c| clock_ns(*c)).sum();
    running + ENDED_NS.load(Relaxed)
}

/// The profiler's threads running now.
pub(crate) fn threads() -> u32 {
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).len() as u32
}

/// The collector cut a window, which took `cut_ns` of its thread's CPU.
pub(crate) fn window_cut(cut_ns: u64) {
    let _ = FIRST_CUT_NS.compare_exchange(0, cut_ns.max(1), Relaxed, Relaxed);
    LAST_CUT_NS.store(cut_ns.max(1), Relaxed);
    let now = threads_cpu_ns();
    let mut at = AT_CUT_NS.lock().unwrap_or_else(|e| e.into_inner());
    *at = (at.1, now);
}

/// (first cut, last cut) CPU, ns, once a window was cut.
pub(crate) fn cuts_ns() -> Option<(u64, u64)> {
    let first = FIRST_CUT_NS.load(Relaxed);
    (first != 0).then(|| (first, LAST_CUT_NS.load(Relaxed)))
}

/// CPU of the profiler's threads between the last two cuts, ns.
pub(crate) fn last_window_cpu_ns() -> Option<u64> {
    let (before, last) = *AT_CUT_NS.lock().unwrap_or_else(|e| e.into_inner());
    (before != 0 || last != 0).then(|| last.saturating_sub(before))
}

/// The calling thread's CPU time, ns.
pub(crate) fn this_thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profiler_threads_cpu_counts_while_it_runs_and_after_it_ends() {
        let before = threads_cpu_ns();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            enter_profiler_thread();
            let start = this_thread_cpu_ns();
            while this_thread_cpu_ns() - start < 20_000_000 {
                std::hint::black_box(start);
            }
            tx.send(()).unwrap();
            done_rx.recv().ok();
        });
        rx.recv().unwrap();
        let running = threads_cpu_ns() - before;
        assert!(running >= 20_000_000, "{running}");
        assert!(threads() >= 1);
        done_tx.send(()).unwrap();
        thread.join().unwrap();
        let ended = threads_cpu_ns() - before;
        assert!(ended >= running, "{ended} < {running}");
    }
}
