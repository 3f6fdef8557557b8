//! The bounded ring of recent invocations.
//!
//! Sharded by thread like the rows: fixed slots written round-robin, so a
//! push is a lock of this thread's shard, a move into a slot and an index
//! bump. What a full ring overwrites is counted.

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
pub(super) struct Ring {
    slots: Vec<Option<Call>>,
    next: usize,
    /// Calls this shard overwrote (counted under its lock, so threads
    /// finishing calls do not share a counter).
    evicted: u64,
}

impl Ring {
    const fn new() -> Self {
        Self {
            slots: Vec::new(),
            next: 0,
            evicted: 0,
        }
    }

    fn resize(&mut self, capacity: usize) {
        let mut kept: Vec<Call> = self.drain_oldest_first();
        let excess = kept.len().saturating_sub(capacity);
        kept.drain(..excess);
        self.slots = Vec::with_capacity(capacity);
        self.slots.extend(kept.into_iter().map(Some));
        self.next = self.slots.len() % capacity.max(1);
        self.slots.resize_with(capacity, || None);
    }

    fn drain_oldest_first(&mut self) -> Vec<Call> {
        let (newer, older) = self.slots.split_at_mut(self.next);
        older
            .iter_mut()
            .chain(newer.iter_mut())
            .filter_map(Option::take)
            .collect()
    }

    fn iter(&self) -> impl Iterator<Item = &Call> {
        self.slots.iter().flatten()
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
    push_locked(&mut lock_ring(), call);
}

/// Keeps `call` in `ring`, a locked shard, overwriting the oldest.
pub(super) fn push_locked(ring: &mut Ring, call: Call) {
    if ring.slots.is_empty() {
        let capacity = RECENT_CAPACITY.load(Relaxed);
        if capacity == 0 {
            return;
        }
        ring.resize(capacity.div_ceil(SHARDS));
    }
    let next = ring.next;
    // Assigned in place (the evicted call dropped where it lies), not
    // swapped out through a copy: this runs once per finished call.
    let slot = &mut ring.slots[next];
    ring.evicted += u64::from(slot.is_some());
    *slot = Some(call);
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
        let mut ring = lock(&shard.0);
        ring.slots.iter_mut().for_each(|slot| *slot = None);
        ring.next = 0;
        ring.evicted = 0;
    }
}
