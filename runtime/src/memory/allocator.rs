//! The counting global allocator.
//!
//! Hot path: the hook runs on every allocation, free and resize in the
//! process. The common path is one thread-local access, plain adds to the
//! thread's cumulative counters, a branch-free high-water mark and one
//! countdown of allocated bytes; nothing else. When the countdown runs out,
//! a cold path folds the thread's counts into the process totals (every
//! [`FOLD_BYTES`] allocated, and every [`FOLD_BYTES`] freed, on a second
//! countdown), takes a heap sample when one is due, and re-arms. Only the
//! cold path can allocate, and only once per thread (registering the
//! thread-exit flush; a sampled stack is unwound over tables prepared at
//! start, which `tests/safe_zone.rs` checks under an allocation tripwire),
//! so only it sets the thread's `in_hook` flag; an
//! allocation made while the flag is set (by the cold path or by `untracked`
//! profiler work) counts in the process totals only. The hook never blocks:
//! no lock is taken. Invocations are charged from the same counters at
//! their transitions, never here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::heap;
use crate::built_in::RECORDING;
use crate::model::MemoryStats;
use crate::thread::memory::{self, ThreadMemory, IN_HOOK, UNTRACKED};

// safe zone: no lock, no allocation (runtime/tests/layers.rs)

/// Bytes a thread allocates (or frees) between two folds into the process
/// totals: how far a reading of the totals can lag, per thread.
const FOLD_BYTES: i64 = 256 * 1024;

/// Allocated bytes after which a thread notices that the heap profiler
/// started (sampling is memoryless, so starting anywhere is unbiased).
const SAMPLER_START_BYTES: i64 = 16 * 1024;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

/// Adds what this thread counted since its last fold to the process totals.
fn fold(m: &ThreadMemory) {
    let now = [
        m.allocated.get() + m.other_allocated.get(),
        m.freed.get() + m.other_freed.get(),
        m.allocs.get() + m.other_allocs.get(),
        m.frees.get(),
        m.reallocs.get(),
    ];
    let delta: [u64; 5] = std::array::from_fn(|i| now[i].wrapping_sub(m.folded[i].replace(now[i])));
    ALLOCS.fetch_add(delta[2], Relaxed);
    FREES.fetch_add(delta[3], Relaxed);
    REALLOCS.fetch_add(delta[4], Relaxed);
    let total_allocated = ALLOCATED.fetch_add(delta[0], Relaxed) + delta[0];
    let total_freed = FREED.fetch_add(delta[1], Relaxed) + delta[1];
    PEAK.fetch_max(total_allocated.saturating_sub(total_freed), Relaxed);
    if !m.exit_flush_registered.replace(true) {
        register_exit_flush();
    }
}

/// The allocation countdown ran out (or this is the thread's first
/// allocation): fold and sample as due, then re-arm.
#[cold]
#[inline(never)]
fn allocation_countdown_expired(m: &ThreadMemory, ptr: *mut u8, size: usize) {
    let guard = m.guard.replace(m.guard.get() | IN_HOOK);
    memory::mark_installed();
    let consumed = m.armed.get() - m.countdown.get();
    let active = heap::active();
    if active {
        if !m.sampling.replace(true) {
            m.sample_left.set(heap::next_interval(m) + consumed);
        }
        let left = m.sample_left.get() - consumed;
        if left <= 0 {
            let profiler_own = m.profiler_thread.get() || guard & UNTRACKED != 0;
            heap::record(ptr as usize, size as u64, profiler_own);
            m.sample_left.set(heap::next_interval(m));
        } else {
            m.sample_left.set(left);
        }
    } else {
        m.sampling.set(false);
    }
    let fold_left = m.fold_left.get() - consumed;
    if fold_left <= 0 {
        fold(m);
        m.fold_left.set(FOLD_BYTES);
    } else {
        m.fold_left.set(fold_left);
    }
    // While sampling is off, come back every SAMPLER_START_BYTES anyway,
    // so a heap profiler started later samples this thread soon.
    let next = if active {
        m.fold_left.get().min(m.sample_left.get())
    } else {
        m.fold_left.get().min(SAMPLER_START_BYTES)
    };
    m.armed.set(next);
    m.countdown.set(next);
    m.guard.set(guard);
}

#[cold]
#[inline(never)]
fn free_countdown_expired(m: &ThreadMemory) {
    let guard = m.guard.replace(m.guard.get() | IN_HOOK);
    fold(m);
    m.free_countdown.set(FOLD_BYTES);
    m.guard.set(guard);
}

/// Folds what a thread still holds when it exits.
struct ExitFlush;

impl Drop for ExitFlush {
    fn drop(&mut self) {
        memory::with_memory(fold);
    }
}

thread_local! {
    static EXIT_FLUSH: ExitFlush = const { ExitFlush };
}

fn register_exit_flush() {
    // Touching a thread-local with a destructor registers it; `try_with`
    // because the thread may already be tearing down.
    let _ = EXIT_FLUSH.try_with(|_| ());
}

/// Counts `size` allocated bytes down; the cold path when they run out.
#[inline(always)]
fn count_down(m: &ThreadMemory, ptr: *mut u8, size: usize) {
    let left = m.countdown.get() - size as i64;
    m.countdown.set(left);
    if left <= 0 {
        allocation_countdown_expired(m, ptr, size);
    }
}

#[inline(always)]
fn on_alloc(ptr: *mut u8, size: usize) {
    memory::with_memory(|m| {
        let guard = m.guard.get();
        if guard != 0 {
            m.other_allocated.set(m.other_allocated.get() + size as u64);
            m.other_allocs.set(m.other_allocs.get() + 1);
            // The profiler's own work is heap-sampled as its own; the hook's
            // cold path never is (it would recurse).
            if guard == UNTRACKED {
                count_down(m, ptr, size);
            }
            return;
        }
        m.grew(size as u64);
        m.allocs.set(m.allocs.get() + 1);
        count_down(m, ptr, size);
    });
}

#[inline(always)]
fn on_free(ptr: *mut u8, size: usize) {
    // Always matched while the heap profiler runs: a sampled pointer left
    // in the side table would take the free of the next allocation at its
    // address.
    heap::on_free(ptr);
    memory::with_memory(|m| {
        m.frees.set(m.frees.get() + 1);
        if m.guard.get() != 0 {
            m.other_freed.set(m.other_freed.get() + size as u64);
            return;
        }
        m.freed.set(m.freed.get() + size as u64);
        let left = m.free_countdown.get() - size as i64;
        m.free_countdown.set(left);
        if left <= 0 {
            free_countdown_expired(m);
        }
    });
}

#[inline(always)]
fn on_realloc(old_size: usize, new: *mut u8, new_size: usize) {
    memory::with_memory(|m| {
        m.reallocs.set(m.reallocs.get() + 1);
        // One resize, counted by how much it grew or shrank.
        let (grown, shrunk) = (
            new_size.saturating_sub(old_size) as u64,
            old_size.saturating_sub(new_size) as u64,
        );
        let guard = m.guard.get();
        if guard != 0 {
            m.other_allocated.set(m.other_allocated.get() + grown);
            m.other_freed.set(m.other_freed.get() + shrunk);
            if guard == UNTRACKED {
                count_down(m, new, new_size);
            }
            return;
        }
        m.grew(grown);
        m.freed.set(m.freed.get() + shrunk);
        // The heap profile counts a resize as an allocation of its new size.
        count_down(m, new, new_size);
    });
}

/// A global allocator that counts what it allocates, per process and per
/// invocation, and feeds the sampled heap profiler. Wraps any allocator
/// (re-exported as `agentprof::Allocator`):
///
/// ```
/// #[global_allocator]
/// static ALLOC: agentprof::Allocator = agentprof::Allocator::system();
/// ```
///
/// or `Allocator::new(tikv_jemallocator::Jemalloc)`.
#[derive(Debug, Default)]
pub struct Allocator<A = System> {
    inner: A,
}

impl Allocator<System> {
    /// Counting wrapper around the system allocator.
    pub const fn system() -> Self {
        Self { inner: System }
    }
}

impl<A> Allocator<A> {
    /// Counting wrapper around `inner`.
    pub const fn new(inner: A) -> Self {
        Self { inner }
    }
}

// SAFETY: every method forwards to the wrapped allocator with the caller's
// arguments unchanged and returns its result unchanged; the bookkeeping
// around it neither allocates through `self` re-entrantly (guarded) nor
// touches the returned memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Allocator<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees about `layout`.
        let ptr = unsafe { self.inner.alloc(layout) };
        if RECORDING && !ptr.is_null() {
            on_alloc(ptr, layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees about `layout`.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if RECORDING && !ptr.is_null() {
            on_alloc(ptr, layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if RECORDING {
            on_free(ptr, layout.size());
        }
        // SAFETY: forwarded; the caller guarantees `ptr` came from this
        // allocator with `layout`.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !RECORDING {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { self.inner.realloc(ptr, layout, new_size) };
        }
        let resizing = heap::before_resize(ptr);
        // SAFETY: forwarded with the caller's guarantees.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        heap::after_resize(ptr, resizing, !new.is_null());
        if !new.is_null() {
            on_realloc(layout.size(), new, new_size);
        }
        new
    }
}

/// Whether `Allocator` is the global allocator (it has seen an allocation).
pub fn allocator_installed() -> bool {
    memory::allocator_installed()
}

/// Process totals, or `None` when `Allocator` is not installed.
pub fn memory_stats() -> Option<MemoryStats> {
    if !allocator_installed() {
        return None;
    }
    // Fold this thread's pending counts so a thread reading its own work
    // sees it.
    memory::with_memory(|m| {
        if m.guard.get() == 0 {
            fold(m);
        }
    });
    let allocated = ALLOCATED.load(Relaxed);
    let freed = FREED.load(Relaxed);
    Some(MemoryStats {
        total_allocated: allocated,
        total_freed: freed,
        current_usage: allocated.saturating_sub(freed),
        peak_usage: PEAK.load(Relaxed),
        allocation_count: ALLOCS.load(Relaxed),
        deallocation_count: FREES.load(Relaxed),
        reallocation_count: REALLOCS.load(Relaxed),
    })
}
// end of safe zone
