//! The bounded ring of recent invocations.
//!
//! Sharded by thread like the rows: fixed slots written round-robin, so a
//! push is a lock of this thread's shard, a move into a slot and an index
//! bump. What a full ring overwrites is counted. The slots are raw so that
//! a call is copied once, from its batch slot into its ring slot.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

use super::labels::Labels;
use super::row::{lock, my_shard, Call, SHARDS};
use crate::model::InvocationRecord;

const DEFAULT_RECENT: usize = 1024;

/// A finished call as the ring keeps it.
pub(super) fn to_record(call: &Call) -> InvocationRecord {
    InvocationRecord {
        id: call.id,
        parent_id: (call.parent_id != 0).then_some(call.parent_id),
        agent: call.row.owner.agent.map(str::to_owned),
        function: call.row.owner.function.to_owned(),
        outcome: call.outcome,
        cpu_ns: call.cpu_ns,
        self_cpu_ns: call.self_cpu_ns,
        wall_ns: call.wall_ns,
        self_wall_ns: call.self_wall_ns,
        polls: call.polls,
        labels: call
            .labels
            .as_ref()
            .map(Labels::to_pairs)
            .unwrap_or_default(),
        alloc_bytes: call.memory.map(|m| m.alloc_bytes),
        allocs: call.memory.map(|m| m.allocs),
        freed_bytes: call.memory.map(|m| m.freed_bytes),
        retained_bytes: call.memory.map(|m| m.retained_bytes),
        peak_bytes: call.memory.map(|m| m.peak_bytes),
    }
}

/// One thread shard of the ring.
///
/// Slots are written round-robin from the first, so the ones holding a
/// call are always `slots[..filled]`; `filled` reaches the capacity once
/// and stays there.
pub(super) struct Ring {
    slots: Vec<MaybeUninit<Call>>,
    filled: usize,
    next: usize,
    /// Calls this shard overwrote (counted under its lock, so threads
    /// finishing calls do not share a counter).
    evicted: u64,
}

impl Ring {
    const fn new() -> Self {
        Self {
            slots: Vec::new(),
            filled: 0,
            next: 0,
            evicted: 0,
        }
    }

    fn resize(&mut self, capacity: usize) {
        let mut kept: Vec<Call> = self.drain_oldest_first();
        let excess = kept.len().saturating_sub(capacity);
        kept.drain(..excess);
        self.slots = Vec::with_capacity(capacity);
        self.filled = kept.len();
        self.slots.extend(kept.into_iter().map(MaybeUninit::new));
        self.next = self.filled % capacity.max(1);
        self.slots.resize_with(capacity, MaybeUninit::uninit);
    }

    /// Takes every call out, oldest first.
    fn drain_oldest_first(&mut self) -> Vec<Call> {
        let order: Vec<usize> = if self.filled < self.slots.len() {
            (0..self.filled).collect()
        } else {
            (self.next..self.filled).chain(0..self.next).collect()
        };
        self.filled = 0;
        self.next = 0;
        order
            .into_iter()
            // SAFETY: each index below the old `filled` held a call, read
            // once; `filled` is 0 now, so none is read or dropped again.
            .map(|i| unsafe { self.slots[i].assume_init_read() })
            .collect()
    }

    fn iter(&self) -> impl Iterator<Item = &Call> {
        self.slots[..self.filled]
            .iter()
            // SAFETY: `slots[..filled]` hold calls.
            .map(|slot| unsafe { slot.assume_init_ref() })
    }

    fn clear(&mut self) {
        drop(self.drain_oldest_first());
        self.evicted = 0;
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.clear();
    }
}

#[repr(align(128))]
struct RecentShard(Mutex<Ring>);

static RECENT: [RecentShard; SHARDS] = [const { RecentShard(Mutex::new(Ring::new())) }; SHARDS];
static RECENT_CAPACITY: AtomicUsize = AtomicUsize::new(DEFAULT_RECENT);

pub(crate) fn set_recent_capacity(capacity: usize) {
    RECENT_CAPACITY.store(capacity, Relaxed);
    for shard in &RECENT {
        lock(&shard.0).resize(capacity.div_ceil(SHARDS));
    }
}

/// This thread's shard of the ring, for a batch of pushes.
pub(super) fn lock_ring() -> MutexGuard<'static, Ring> {
    lock(&RECENT[my_shard()].0)
}

pub(super) fn push(call: Call) {
    let call = std::mem::ManuallyDrop::new(call);
    // SAFETY: `call` is not used or dropped after it was moved out.
    unsafe { push_moved(&mut lock_ring(), &*call) };
}

/// Moves the call at `call` into `ring`, a locked shard, overwriting the
/// oldest: one copy, from wherever it lies into its slot (this runs once
/// per finished call).
///
/// # Safety
/// `call` is moved out: the caller must neither use nor drop it after.
pub(super) unsafe fn push_moved(ring: &mut Ring, call: *const Call) {
    if ring.slots.is_empty() {
        let capacity = RECENT_CAPACITY.load(Relaxed);
        if capacity == 0 {
            // SAFETY: the caller gave the call up; it is dropped here once.
            drop(unsafe { call.read() });
            return;
        }
        ring.resize(capacity.div_ceil(SHARDS));
    }
    let next = ring.next;
    let slot = &mut ring.slots[next];
    if next < ring.filled {
        ring.evicted += 1;
        // SAFETY: slots below `filled` hold a call; it is dropped once and
        // overwritten below.
        unsafe { slot.assume_init_drop() };
    } else {
        ring.filled += 1;
    }
    // SAFETY: the caller moves the call to us; the slot is free.
    unsafe { slot.as_mut_ptr().copy_from_nonoverlapping(call, 1) };
    ring.next = if next + 1 == ring.slots.len() {
        0
    } else {
        next + 1
    };
}

/// The most recent finished invocations (up to the configured capacity),
/// oldest first.
pub fn recent_invocations() -> Vec<InvocationRecord> {
    super::batch::drain_all();
    // Shards and wrapped rings are not in time order; the end times are.
    let mut all: Vec<(u64, InvocationRecord)> = RECENT
        .iter()
        .flat_map(|shard| {
            lock(&shard.0)
                .iter()
                .map(|c| (c.end_ns, to_record(c)))
                .collect::<Vec<_>>()
        })
        .collect();
    all.sort_by_key(|(end, _)| *end);
    all.into_iter().map(|(_, record)| record).collect()
}

/// A recent invocation by id, if it is still in the ring.
pub fn invocation(id: u64) -> Option<InvocationRecord> {
    super::batch::drain_all();
    RECENT
        .iter()
        .find_map(|shard| lock(&shard.0).iter().find(|c| c.id == id).map(to_record))
}

/// Invocations the full ring overwrote.
pub(crate) fn recent_evicted() -> u64 {
    RECENT.iter().map(|shard| lock(&shard.0).evicted).sum()
}

/// Empties the ring and its counter.
pub(crate) fn clear_recent() {
    for shard in &RECENT {
        lock(&shard.0).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::row::test_row;

    fn push_call(ring: &mut Ring, call: Call) {
        let call = std::mem::ManuallyDrop::new(call);
        // SAFETY: `call` is not used or dropped after.
        unsafe { push_moved(ring, &*call) };
    }

    fn ids(ring: &mut Ring) -> Vec<u64> {
        let calls = ring.drain_oldest_first();
        let ids = calls.iter().map(|c| c.id).collect();
        for call in calls {
            push_call(ring, call);
        }
        ids
    }

    #[test]
    fn a_full_ring_keeps_the_newest_calls_in_order_and_counts_the_rest() {
        let row = test_row("recent::ring");
        let mut ring = Ring::new();
        ring.resize(4);
        let labelled = |id| Call {
            // Calls that own heap memory: a double drop would abort.
            labels: Some(Labels::new(&[("k", &id as &dyn std::fmt::Display)])),
            ..Call::test(row, id, 1)
        };
        for id in 1..=10 {
            push_call(&mut ring, labelled(id));
        }
        assert_eq!(ring.evicted, 6);
        assert_eq!(ids(&mut ring), [7, 8, 9, 10]);
        ring.resize(2);
        assert_eq!(ids(&mut ring), [9, 10]);
        ring.resize(3);
        push_call(&mut ring, labelled(11));
        assert_eq!(ids(&mut ring), [9, 10, 11]);
        ring.clear();
        assert_eq!(ring.iter().count(), 0);
    }
}
