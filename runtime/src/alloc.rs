//! The counting global allocator.
//!
//! `Allocator<A>` wraps any `GlobalAlloc` and, per allocation, adds to
//! thread-local counters (folded into the process totals every
//! [`FOLD_EVENTS`] events or [`FOLD_BYTES`] bytes, so threads do not contend
//! on one cache line), charges the invocation in the current-invocation
//! slot, and, when the heap profiler runs, counts down to its next sample.
//!
//! The hook never recurses: a per-thread guard is set while it runs, and an
//! allocation made inside it (by the unwinder, or by registering the
//! thread-exit flush) is only counted. It never blocks: no lock is taken.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::context;
use crate::heap;
use crate::invocation::Frame;
use crate::report::MemoryStats;

/// Counter deltas a thread keeps before folding them into the totals.
const FOLD_EVENTS: u64 = 256;
const FOLD_BYTES: u64 = 256 * 1024;

static INSTALLED: AtomicBool = AtomicBool::new(false);
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

/// Per-thread allocator state, part of the const-initialised thread slot.
///
/// Counters are cumulative and only ever grow, so the hot path is a few
/// adds. Invocations are charged by edges, as for CPU: at each transition
/// on the thread the frame that was current gets the difference since the
/// previous transition (see [`ThreadMemory::charge_edge`]); process totals
/// get the difference since the previous fold.
pub(crate) struct ThreadMemory {
    in_hook: Cell<bool>,
    /// Attributable: made while no hook or profiler work was running.
    allocated: Cell<u64>,
    freed: Cell<u64>,
    allocs: Cell<u64>,
    /// Made by the profiler itself (nested or `untracked`): process totals
    /// only.
    other_allocated: Cell<u64>,
    other_freed: Cell<u64>,
    other_allocs: Cell<u64>,
    frees: Cell<u64>,
    reallocs: Cell<u64>,
    /// Highest `allocated - freed` since the last edge (signed: a thread can
    /// free more than it allocated).
    high_water: Cell<i64>,
    /// Counter values at the last edge.
    edge_allocated: Cell<u64>,
    edge_freed: Cell<u64>,
    edge_allocs: Cell<u64>,
    /// Counter values at the last fold.
    folded: [Cell<u64>; 5],
    /// Events left before the next fold.
    until_fold: Cell<u32>,
    exit_flush_registered: Cell<bool>,
    /// Bytes left before the next heap sample, and the sampler's PRNG.
    pub(crate) until_sample: Cell<i64>,
    pub(crate) rng: Cell<u64>,
}

impl ThreadMemory {
    pub(crate) const fn new() -> Self {
        Self {
            in_hook: Cell::new(false),
            allocated: Cell::new(0),
            freed: Cell::new(0),
            allocs: Cell::new(0),
            other_allocated: Cell::new(0),
            other_freed: Cell::new(0),
            other_allocs: Cell::new(0),
            frees: Cell::new(0),
            reallocs: Cell::new(0),
            high_water: Cell::new(0),
            edge_allocated: Cell::new(0),
            edge_freed: Cell::new(0),
            edge_allocs: Cell::new(0),
            folded: [const { Cell::new(0) }; 5],
            until_fold: Cell::new(FOLD_EVENTS as u32),
            exit_flush_registered: Cell::new(false),
            until_sample: Cell::new(0),
            rng: Cell::new(0),
        }
    }

    #[cold]
    fn fold(&self) {
        let now = [
            self.allocated.get() + self.other_allocated.get(),
            self.freed.get() + self.other_freed.get(),
            self.allocs.get() + self.other_allocs.get(),
            self.frees.get(),
            self.reallocs.get(),
        ];
        let delta: [u64; 5] =
            std::array::from_fn(|i| now[i].wrapping_sub(self.folded[i].replace(now[i])));
        ALLOCS.fetch_add(delta[2], Relaxed);
        FREES.fetch_add(delta[3], Relaxed);
        REALLOCS.fetch_add(delta[4], Relaxed);
        let total_allocated = ALLOCATED.fetch_add(delta[0], Relaxed) + delta[0];
        let total_freed = FREED.fetch_add(delta[1], Relaxed) + delta[1];
        PEAK.fetch_max(total_allocated.saturating_sub(total_freed), Relaxed);
    }

    /// Folds every [`FOLD_EVENTS`] events, and at once after an event of
    /// [`FOLD_BYTES`] or more, so the peak sees large allocations.
    #[inline(always)]
    fn maybe_fold(&self, size: usize) {
        let left = self.until_fold.get().saturating_sub(1);
        if left == 0 || size as u64 >= FOLD_BYTES {
            self.until_fold.set(FOLD_EVENTS as u32);
            self.fold();
            if !self.exit_flush_registered.replace(true) {
                register_exit_flush();
            }
        } else {
            self.until_fold.set(left);
        }
    }

    #[inline(always)]
    fn grew(&self, bytes: u64) {
        let allocated = self.allocated.get() + bytes;
        self.allocated.set(allocated);
        let live = allocated.wrapping_sub(self.freed.get()) as i64;
        if live > self.high_water.get() {
            self.high_water.set(live);
        }
    }

    /// Charges `frame` (the frame current until now) with what this thread
    /// allocated and freed since the previous edge, and starts a new edge.
    #[inline]
    pub(crate) fn charge_edge(&self, frame: Option<&Frame>) {
        let (allocated, freed, allocs) =
            (self.allocated.get(), self.freed.get(), self.allocs.get());
        if let Some(frame) = frame {
            let bytes = allocated.wrapping_sub(self.edge_allocated.get());
            let freed_bytes = freed.wrapping_sub(self.edge_freed.get());
            let edge_live = self
                .edge_allocated
                .get()
                .wrapping_sub(self.edge_freed.get()) as i64;
            // How far live bytes rose above the edge's level in between.
            let rise = self.high_water.get().wrapping_sub(edge_live);
            if bytes != 0 || freed_bytes != 0 || rise > 0 {
                frame.charge_memory(
                    bytes,
                    allocs.wrapping_sub(self.edge_allocs.get()),
                    freed_bytes,
                    rise.max(0),
                );
            }
        }
        self.edge_allocated.set(allocated);
        self.edge_freed.set(freed);
        self.edge_allocs.set(allocs);
        self.high_water.set(allocated.wrapping_sub(freed) as i64);
    }
}

/// Folds what a thread still holds when it exits.
struct ExitFlush;

impl Drop for ExitFlush {
    fn drop(&mut self) {
        context::with_memory(ThreadMemory::fold);
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

/// Runs `f` with its allocations kept out of invocations and heap samples
/// (they still count in the process totals): for the profiler's own work
/// inside a user's invocation.
#[inline]
pub(crate) fn untracked<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let was = self.0;
            context::with_memory(|m| m.in_hook.set(was));
        }
    }
    let mut was = false;
    context::with_memory(|m| was = m.in_hook.replace(true));
    let _restore = Restore(was);
    f()
}

/// Runs `f` with the hook guard set; `nested` tells it the hook (or
/// `untracked` profiler work) is already running on this thread.
#[inline(always)]
fn hooked(f: impl FnOnce(&ThreadMemory, bool)) {
    context::with_memory(|m| {
        let nested = m.in_hook.replace(true);
        f(m, nested);
        if !nested {
            m.in_hook.set(false);
        }
    });
}

#[inline]
fn on_alloc(ptr: *mut u8, size: usize) {
    if !INSTALLED.load(Relaxed) {
        INSTALLED.store(true, Relaxed);
    }
    hooked(|m, nested| {
        if nested {
            m.other_allocated.set(m.other_allocated.get() + size as u64);
            m.other_allocs.set(m.other_allocs.get() + 1);
            return;
        }
        m.grew(size as u64);
        m.allocs.set(m.allocs.get() + 1);
        heap::on_alloc(m, ptr, size);
        m.maybe_fold(size);
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
        m.maybe_fold(size);
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
        m.maybe_fold(new_size.abs_diff(old_size));
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
    INSTALLED.load(Relaxed)
}

/// Process totals, or `None` when `Allocator` is not installed.
pub fn memory_stats() -> Option<MemoryStats> {
    if !allocator_installed() {
        return None;
    }
    // Fold this thread's pending counts so a thread reading its own work
    // sees it.
    context::with_memory(|m| {
        if !m.in_hook.get() {
            m.fold();
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

/// How to get memory figures, for reports made without the allocator.
pub const INSTALL_HINT: &str =
    "memory figures need the counting allocator: #[global_allocator] static ALLOC: agentprof::Allocator = agentprof::Allocator::system();";
