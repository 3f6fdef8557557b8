//! The counting global allocator.
//!
//! Hot path: the hook runs on every allocation, free and resize in the
//! process. It never blocks (no lock), never recurses into itself (the
//! thread's `in_hook` flag is set while it runs, and an allocation made
//! inside it, by the unwinder or by registering the thread-exit flush, is
//! only counted), and touches only the thread layer's counters, process
//! atomics and the heap sampler's lock-free tables.
//!
//! Per allocation it adds to the thread's cumulative counters (folded into
//! the process totals every [`FOLD_EVENTS`] events or [`FOLD_BYTES`]
//! bytes, so threads do not contend on one cache line) and, when the heap
//! profiler runs, counts down to its next sample. Invocations are charged
//! from the same counters at their transitions, never here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::heap;
use crate::model::MemoryStats;
use crate::thread::memory::{self, ThreadMemory, FOLD_EVENTS};

/// Bytes after which a thread folds at once, so the peak sees large
/// allocations.
const FOLD_BYTES: u64 = 256 * 1024;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

/// Adds what this thread counted since its last fold to the process totals.
#[cold]
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
}

/// Folds every [`FOLD_EVENTS`] events, and at once after an event of
/// [`FOLD_BYTES`] or more.
#[inline(always)]
fn maybe_fold(m: &ThreadMemory, size: usize) {
    let left = m.until_fold.get().saturating_sub(1);
    if left == 0 || size as u64 >= FOLD_BYTES {
        m.until_fold.set(FOLD_EVENTS);
        fold(m);
        if !m.exit_flush_registered.replace(true) {
            register_exit_flush();
        }
    } else {
        m.until_fold.set(left);
    }
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

/// Runs `f` with the hook guard set; `nested` tells it the hook (or
/// `untracked` profiler work) is already running on this thread.
#[inline(always)]
fn hooked(f: impl FnOnce(&ThreadMemory, bool)) {
    memory::with_memory(|m| {
        let nested = m.in_hook.replace(true);
        f(m, nested);
        if !nested {
            m.in_hook.set(false);
        }
    });
}

#[inline]
fn on_alloc(ptr: *mut u8, size: usize) {
    memory::mark_installed();
    hooked(|m, nested| {
        if nested {
            m.other_allocated.set(m.other_allocated.get() + size as u64);
            m.other_allocs.set(m.other_allocs.get() + 1);
            return;
        }
        m.grew(size as u64);
        m.allocs.set(m.allocs.get() + 1);
        heap::on_alloc(m, ptr, size);
        maybe_fold(m, size);
    });
}

#[inline]
fn on_free(ptr: *mut u8, size: usize) {
    hooked(|m, nested| {
        m.frees.set(m.frees.get() + 1);
        // Always matched: a sampled pointer left in the side table would
        // take the free of the next allocation at its address.
        heap::on_free(ptr);
        if nested {
            m.other_freed.set(m.other_freed.get() + size as u64);
            return;
        }
        m.freed.set(m.freed.get() + size as u64);
        maybe_fold(m, size);
    });
}

#[inline]
fn on_realloc(old: *mut u8, old_size: usize, new: *mut u8, new_size: usize) {
    hooked(|m, nested| {
        m.reallocs.set(m.reallocs.get() + 1);
        heap::on_free(old);
        // One resize, counted by how much it grew or shrank.
        let (grown, shrunk) = (
            new_size.saturating_sub(old_size) as u64,
            old_size.saturating_sub(new_size) as u64,
        );
        if nested {
            m.other_allocated.set(m.other_allocated.get() + grown);
            m.other_freed.set(m.other_freed.get() + shrunk);
            return;
        }
        m.grew(grown);
        m.freed.set(m.freed.get() + shrunk);
        heap::on_alloc(m, new, new_size);
        maybe_fold(m, new_size.abs_diff(old_size));
    });
}

/// A global allocator that counts what it allocates, per process and per
/// invocation, and feeds the sampled heap profiler. Wraps any allocator
/// (re-exported as `agentprof::Allocator`):
///
/// ```
/// #[global_allocator]
/// static ALLOC: agentprof_runtime::Allocator = agentprof_runtime::Allocator::system();
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
        if !ptr.is_null() {
            on_alloc(ptr, layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees about `layout`.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if !ptr.is_null() {
            on_alloc(ptr, layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(ptr, layout.size());
        // SAFETY: forwarded; the caller guarantees `ptr` came from this
        // allocator with `layout`.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            on_realloc(ptr, layout.size(), new, new_size);
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
        if !m.in_hook.get() {
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
