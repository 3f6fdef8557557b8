//! The current-invocation slot of each thread.
//!
//! Hot path: read and written at every transition (entering or leaving an
//! invocation's call or poll), read by the SIGPROF handler and by the
//! allocator hook's heap sampler. It is a const-initialised thread-local
//! with no destructor and no lazy initialisation, so it can be touched at
//! any point of a thread's life, from a signal handler included: no lock,
//! no allocation, nothing that can fail.
//!
//! The slot only ever points at an [`Active`] that is live on this thread:
//! the invocation layer sets it on entry and restores the previous value on
//! exit, in LIFO order, also while unwinding.

use std::cell::Cell;
use std::sync::atomic::{compiler_fence, AtomicU32, AtomicU64, Ordering};

use super::clock;

/// The (function, agent) pair a CPU sample or a heap allocation is charged
/// to. Each lives for the program's life (one per aggregate row, never
/// freed), so its address is a stable key and its names can be read from
/// anywhere, a signal handler included.
#[derive(Debug)]
pub(crate) struct Owner {
    pub(crate) function: &'static str,
    pub(crate) agent: Option<&'static str>,
}

impl Owner {
    // safe zone: no lock, no allocation (runtime/tests/layers.rs)
    /// The owner as one machine word (its address; 0 stands for none), for
    /// lock-free tables and sample buffers.
    #[inline]
    pub(crate) fn key(&'static self) -> usize {
        self as *const Owner as usize
    }
    // end of safe zone

    /// The owner a key stands for.
    ///
    /// # Safety
    /// `key` must be 0 or a value [`Owner::key`] returned.
    #[inline]
    pub(crate) unsafe fn from_key(key: usize) -> Option<&'static Owner> {
        // SAFETY: per the contract, a non-zero key is the address of a
        // `&'static Owner`, and owners are never freed.
        unsafe { (key as *const Owner).as_ref() }
    }
}

/// The owner of the profiler's own work (its threads, and what it does on
/// the application's threads while `untracked`): its heap samples are
/// labelled `agent = "agentprof"`, apart from the application's.
pub(crate) static PROFILER_OWNER: Owner = Owner {
    function: "agentprof",
    agent: Some("agentprof"),
};

/// What the signal handler and the heap sampler know of the invocation
/// running on a thread: the invocation layer's frame starts with one.
#[derive(Debug)]
pub(crate) struct Active {
    pub(crate) id: u64,
    pub(crate) owner: &'static Owner,
    /// OpenTelemetry ids of the invocation's span (0: none).
    pub(crate) span_id: u64,
    pub(crate) trace_id: u128,
}

struct Slot {
    current: Cell<*const Active>,
    /// Thread CPU time at the last transition on this thread; the interval
    /// since then belongs to `current`.
    cpu_edge: Cell<u64>,
    /// The next invocation id this thread hands out, and the end of its
    /// block of ids; both 0 until first use.
    next_id: Cell<u64>,
    id_block_end: Cell<u64>,
    /// A small number per thread, from 1 (0: not yet taken).
    index: Cell<u32>,
}

/// Invocation ids come in blocks of 2^20 per thread: one shared atomic
/// increment per million invocations, and ids stay unique however many
/// threads come and go (2^44 blocks).
const ID_BLOCK_BITS: u32 = 20;
static NEXT_ID_BLOCK: AtomicU64 = AtomicU64::new(1);
static NEXT_THREAD_INDEX: AtomicU32 = AtomicU32::new(1);

thread_local! {
    static SLOT: Slot = const {
        Slot {
            current: Cell::new(std::ptr::null()),
            cpu_edge: Cell::new(0),
            next_id: Cell::new(0),
            id_block_end: Cell::new(0),
            index: Cell::new(0),
        }
    };
}

/// A small number per thread (shard index for shared stores); it wraps
/// after 2^32 threads, which only makes two threads share shards.
#[inline]
pub(crate) fn thread_index() -> u32 {
    SLOT.with(|s| {
        let index = s.index.get();
        if index != 0 {
            return index;
        }
        let index = NEXT_THREAD_INDEX.fetch_add(1, Ordering::Relaxed).max(1);
        s.index.set(index);
        index
    })
}

/// A process-unique invocation id, without a shared atomic per call.
#[inline]
pub(crate) fn next_invocation_id() -> u64 {
    SLOT.with(|s| {
        let mut id = s.next_id.get();
        if id == s.id_block_end.get() {
            let block = NEXT_ID_BLOCK.fetch_add(1, Ordering::Relaxed);
            id = block << ID_BLOCK_BITS;
            s.id_block_end.set(id + (1 << ID_BLOCK_BITS));
        }
        s.next_id.set(id + 1);
        id
    })
}

// safe zone: no lock, no allocation (runtime/tests/layers.rs)
/// The invocation running on this thread (null outside any). The pointee is
/// live until this thread leaves it; see the module docs.
#[inline]
pub(crate) fn current() -> *const Active {
    SLOT.with(|s| s.current.get())
}
// end of safe zone

/// What a transition found: the invocation that was current, and the
/// thread CPU time it consumed since the previous transition (`None` when
/// the clock could not measure it).
pub(crate) struct Transition {
    pub(crate) previous: *const Active,
    pub(crate) cpu_ns: Option<u64>,
}

/// Makes `next` current and returns what was current before, with the CPU
/// it is owed. One thread CPU clock read.
#[inline]
pub(crate) fn switch_to(next: *const Active) -> Transition {
    let now = clock::thread_cpu_ns();
    SLOT.with(|s| {
        let previous = s.current.get();
        let edge = s.cpu_edge.get();
        let cpu_ns = match now {
            Some(now) if edge != 0 => Some(now.saturating_sub(edge)),
            _ => None,
        };
        s.cpu_edge.set(now.unwrap_or(0));
        // The signal handler reads the slot on this thread: the frame it
        // points to must be complete before the pointer is visible.
        compiler_fence(Ordering::Release);
        s.current.set(next);
        Transition { previous, cpu_ns }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    static TEST_OWNER: Owner = Owner {
        function: "slot::tests",
        agent: Some("test"),
    };

    #[test]
    fn invocation_ids_are_unique_across_threads_and_blocks() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    // Past the end of each thread's first block of ids.
                    (0..(1 << ID_BLOCK_BITS) + 10)
                        .map(|_| next_invocation_id())
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for ids in threads.into_iter().map(|t| t.join().unwrap()) {
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "increasing per thread");
            all.extend(ids);
        }
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "no id twice");
        assert!(all[0] != 0);
    }

    #[test]
    fn threads_alive_at_once_have_their_own_index() {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let indexes: Vec<u32> = (0..8)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let index = thread_index();
                    assert_eq!(thread_index(), index, "stable on a thread");
                    barrier.wait();
                    index
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(indexes.iter().all(|&i| i != 0));
        assert_eq!(indexes.iter().collect::<HashSet<_>>().len(), 8);
    }

    #[test]
    fn a_transition_returns_what_was_current_and_the_cpu_it_is_owed() {
        std::thread::spawn(|| {
            let active = Active {
                id: 7,
                owner: &TEST_OWNER,
                span_id: 0,
                trace_id: 0,
            };
            let bracket_start = clock::thread_cpu_ns_syscall().unwrap();
            let first = switch_to(&active);
            assert!(
                first.previous.is_null() && first.cpu_ns.is_none(),
                "no edge yet"
            );
            assert_eq!(current(), &active as *const Active);
            let before = clock::thread_cpu_ns_syscall().unwrap();
            let mut x = 0u64;
            while clock::thread_cpu_ns_syscall().unwrap() - before < 2_000_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            let back = switch_to(std::ptr::null());
            let bracket = clock::thread_cpu_ns_syscall().unwrap() - bracket_start;
            assert_eq!(back.previous, &active as *const Active);
            let owed = back.cpu_ns.unwrap();
            // At least what was burned while current, at most what the
            // thread spent around both transitions (the two clocks agree
            // within a few parts per million).
            assert!(
                owed >= 2_000_000 && owed <= bracket + bracket / 1000,
                "owed {owed} ns, bracket {bracket} ns"
            );
            assert!(current().is_null());
        })
        .join()
        .unwrap();
    }
}
