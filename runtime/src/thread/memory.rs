//! Each thread's allocation counters and the guard that keeps the
//! profiler's own allocations out of them.
//!
//! Hot path: the counting allocator's hook adds to these cells on every
//! allocation and free; the invocation layer reads them at every
//! transition. A const-initialised thread-local with no destructor, so the
//! hook can use it at any point of a thread's life (teardown included)
//! without allocating or recursing.
//!
//! Counters are cumulative and only ever grow. Invocations are charged by
//! edges, as for CPU: at each transition the invocation that was current
//! gets what changed since the previous transition ([`take_edge`]).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

// safe zone: no lock, no allocation (runtime/tests/layers.rs)

/// [`ThreadMemory::guard`]: the hook's cold path is running.
pub(crate) const IN_HOOK: u8 = 1;
/// [`ThreadMemory::guard`]: profiler work (`untracked`) is running.
pub(crate) const UNTRACKED: u8 = 2;

/// Per-thread allocator state.
pub(crate) struct ThreadMemory {
    /// [`IN_HOOK`] while the hook's cold path runs on this thread (its own
    /// allocations are only counted), [`UNTRACKED`] while profiler work does
    /// (counted apart from invocations, and heap-sampled as the
    /// profiler's). One cell, so the hook's common path tests one byte.
    pub(crate) guard: Cell<u8>,
    /// Attributable: made while no hook or profiler work was running.
    pub(crate) allocated: Cell<u64>,
    pub(crate) freed: Cell<u64>,
    pub(crate) allocs: Cell<u64>,
    /// Made by the profiler itself (nested or `untracked`): process totals
    /// only.
    pub(crate) other_allocated: Cell<u64>,
    pub(crate) other_freed: Cell<u64>,
    pub(crate) other_allocs: Cell<u64>,
    pub(crate) frees: Cell<u64>,
    pub(crate) reallocs: Cell<u64>,
    /// Highest `allocated - freed` since the last edge (signed: a thread can
    /// free more than it allocated).
    pub(crate) high_water: Cell<i64>,
    /// Counter values at the last edge.
    edge_allocated: Cell<u64>,
    edge_freed: Cell<u64>,
    edge_allocs: Cell<u64>,
    /// Counter values at the last fold into the process totals.
    pub(crate) folded: [Cell<u64>; 5],
    /// Allocated bytes left before the hook's cold path runs (the nearer of
    /// the next fold and the next heap sample), and its value when armed.
    pub(crate) countdown: Cell<i64>,
    pub(crate) armed: Cell<i64>,
    /// Freed bytes left before the next fold.
    pub(crate) free_countdown: Cell<i64>,
    /// Allocated bytes left before the next fold, and the next heap sample
    /// (valid while `sampling`), as of the last arming.
    pub(crate) fold_left: Cell<i64>,
    pub(crate) sample_left: Cell<i64>,
    pub(crate) sampling: Cell<bool>,
    pub(crate) exit_flush_registered: Cell<bool>,
    /// The heap sampler's PRNG state (0 until seeded).
    pub(crate) rng: Cell<u64>,
    /// One of the profiler's own threads (collector, exporter, drainer,
    /// endpoint, agents): its heap samples are the profiler's.
    pub(crate) profiler_thread: Cell<bool>,
}

thread_local! {
    static MEMORY: ThreadMemory = const {
        ThreadMemory {
            guard: Cell::new(0),
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
            // Zero: a thread's first allocation takes the cold path, which
            // marks the allocator installed and arms the countdowns.
            countdown: Cell::new(0),
            armed: Cell::new(0),
            free_countdown: Cell::new(0),
            fold_left: Cell::new(0),
            sample_left: Cell::new(0),
            sampling: Cell::new(false),
            exit_flush_registered: Cell::new(false),
            rng: Cell::new(0),
            profiler_thread: Cell::new(false),
        }
    };
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether the counting allocator is the global allocator (it has seen an
/// allocation).
#[inline]
pub(crate) fn allocator_installed() -> bool {
    INSTALLED.load(Relaxed)
}

#[cold]
pub(crate) fn mark_installed() {
    if !INSTALLED.load(Relaxed) {
        INSTALLED.store(true, Relaxed);
    }
}

/// Marks this thread as one of the profiler's own: what it allocates is
/// labelled `agent = "agentprof"` in heap profiles, apart from the
/// application's. Called first thing in each thread the profiler starts.
pub(crate) fn mark_profiler_thread() {
    let _ = MEMORY.try_with(|m| m.profiler_thread.set(true));
}

/// This thread's counters.
#[inline(always)]
pub(crate) fn with_memory<R>(f: impl FnOnce(&ThreadMemory) -> R) -> R {
    MEMORY.with(f)
}

impl ThreadMemory {
    #[inline(always)]
    pub(crate) fn grew(&self, bytes: u64) {
        let allocated = self.allocated.get() + bytes;
        self.allocated.set(allocated);
        let live = allocated.wrapping_sub(self.freed.get()) as i64;
        // Branch-free: a max, not a test.
        self.high_water.set(self.high_water.get().max(live));
    }
}

/// What a thread allocated and freed between two transitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MemoryDelta {
    pub(crate) bytes: u64,
    pub(crate) count: u64,
    pub(crate) freed: u64,
    /// How far live bytes rose above their level at the previous edge.
    pub(crate) rise: i64,
}

impl MemoryDelta {
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes == 0 && self.freed == 0 && self.rise <= 0
    }
}

/// What this thread allocated and freed since the previous edge; starts a
/// new edge.
#[inline]
pub(crate) fn take_edge() -> MemoryDelta {
    MEMORY.with(|m| {
        let (allocated, freed, allocs) = (m.allocated.get(), m.freed.get(), m.allocs.get());
        let edge_live = m.edge_allocated.get().wrapping_sub(m.edge_freed.get()) as i64;
        let delta = MemoryDelta {
            bytes: allocated.wrapping_sub(m.edge_allocated.get()),
            count: allocs.wrapping_sub(m.edge_allocs.get()),
            freed: freed.wrapping_sub(m.edge_freed.get()),
            rise: m.high_water.get().wrapping_sub(edge_live).max(0),
        };
        m.edge_allocated.set(allocated);
        m.edge_freed.set(freed);
        m.edge_allocs.set(allocs);
        m.high_water.set(allocated.wrapping_sub(freed) as i64);
        delta
    })
}

/// Runs `f` with its allocations kept out of invocations and heap samples
/// (they still count in the process totals): for the profiler's own work
/// inside a user's invocation.
#[inline]
pub(crate) fn untracked<R>(f: impl FnOnce() -> R) -> R {
    let _untracked = Untracked::enter();
    f()
}

/// Keeps this thread's allocations out of invocations until dropped (the
/// scope form of [`untracked`], for code that moves large values).
pub(crate) struct Untracked(u8);

impl Untracked {
    #[inline]
    pub(crate) fn enter() -> Self {
        Self(MEMORY.with(|m| m.guard.replace(m.guard.get() | UNTRACKED)))
    }
}

impl Drop for Untracked {
    #[inline]
    fn drop(&mut self) {
        let was = self.0;
        MEMORY.with(|m| m.guard.set(was));
    }
}
// end of safe zone
