//! The heap profiler's two fixed, pre-allocated, lock-free tables:
//! stack buckets (one per distinct stack and invocation labels) and the
//! side table of live sampled pointers. Both are open-addressed with linear
//! probing; what does not fit is dropped and counted, never a crash.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};

use crate::thread::slot::Owner;

/// Deepest stack recorded; deeper stacks keep their innermost frames.
pub(crate) const MAX_DEPTH: usize = 64;
/// Probes before an insert gives up.
const MAX_PROBE: usize = 128;

pub(crate) struct Bucket {
    key: AtomicU64,
    ready: AtomicBool,
    depth: AtomicUsize,
    frames: [AtomicUsize; MAX_DEPTH],
    /// [`Owner::key`] of the invocation's row, 0 for none.
    owner: AtomicUsize,
    /// Estimated allocations (in 1/1024ths) and bytes, each sample weighted
    /// by the interval in force when it was taken, so changing the interval
    /// does not re-weight older samples.
    pub(crate) alloc_objects_milli: AtomicU64,
    pub(crate) alloc_bytes: AtomicU64,
    pub(crate) free_objects_milli: AtomicU64,
    pub(crate) free_bytes: AtomicU64,
    /// Raw sample count.
    pub(crate) samples: AtomicU64,
}

impl Bucket {
    fn new() -> Self {
        Self {
            key: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            depth: AtomicUsize::new(0),
            frames: std::array::from_fn(|_| AtomicUsize::new(0)),
            owner: AtomicUsize::new(0),
            alloc_objects_milli: AtomicU64::new(0),
            alloc_bytes: AtomicU64::new(0),
            free_objects_milli: AtomicU64::new(0),
            free_bytes: AtomicU64::new(0),
            samples: AtomicU64::new(0),
        }
    }

    /// The stack (leaf first) and labels, once the bucket is complete.
    /// `known`: the owner keys of every row; another stored value is not
    /// dereferenced.
    pub(crate) fn contents(
        &self,
        known: &std::collections::HashSet<usize>,
    ) -> Option<(Vec<usize>, Option<&'static Owner>)> {
        if !self.ready.load(Acquire) {
            return None;
        }
        let depth = self.depth.load(Relaxed).min(MAX_DEPTH);
        let frames = self.frames[..depth]
            .iter()
            .map(|f| f.load(Relaxed))
            .collect();
        let key = self.owner.load(Relaxed);
        // SAFETY: a key of a row that exists is an `Owner::key` value (rows
        // are never freed).
        let owner = known
            .contains(&key)
            .then(|| unsafe { Owner::from_key(key) })
            .flatten();
        Some((frames, owner))
    }
}

struct LiveSlot {
    ptr: AtomicUsize,
    bucket: AtomicU32,
    objects_milli: AtomicU32,
    bytes: AtomicU64,
}

/// A sampled allocation's estimated weight: (objects in 1/1024ths, bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Weight {
    pub(crate) objects_milli: u32,
    pub(crate) bytes: u64,
}

const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;

/// Counters in front of the side table: a free whose counter is 0 was
/// never sampled, which settles almost every free with one load from a
/// 64 KiB array instead of a probe of the much larger table. Counters
/// saturate and then stay (a saturated one only costs a probe).
const FILTER_SLOTS: usize = 1 << 16;

pub(crate) struct Tables {
    pub(crate) buckets: Box<[Bucket]>,
    live: Box<[LiveSlot]>,
    filter: Box<[AtomicU8]>,
    pub(crate) stacks_dropped: AtomicU64,
    pub(crate) live_dropped: AtomicU64,
    /// Sampled pointers in `live` now: frees skip the filter while it is 0.
    live_count: AtomicUsize,
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Tables {
    pub(crate) fn new(buckets: usize, live: usize) -> Self {
        Self {
            buckets: (0..buckets.max(1)).map(|_| Bucket::new()).collect(),
            live: (0..live.max(1))
                .map(|_| LiveSlot {
                    ptr: AtomicUsize::new(EMPTY),
                    bucket: AtomicU32::new(0),
                    objects_milli: AtomicU32::new(0),
                    bytes: AtomicU64::new(0),
                })
                .collect(),
            filter: (0..FILTER_SLOTS).map(|_| AtomicU8::new(0)).collect(),
            stacks_dropped: AtomicU64::new(0),
            live_dropped: AtomicU64::new(0),
            live_count: AtomicUsize::new(0),
        }
    }

    // safe zone: no lock, no allocation (runtime/tests/layers.rs)
    /// False when `ptr` was certainly never sampled (the common case).
    #[inline]
    pub(crate) fn maybe_live(&self, ptr: usize) -> bool {
        // The count rises before a pointer is published (and so before the
        // program can free it), and falls only when an entry is taken.
        self.live_count.load(Relaxed) != 0 && self.filter_slot(ptr).load(Acquire) != 0
    }

    #[inline]
    fn filter_slot(&self, ptr: usize) -> &AtomicU8 {
        // Allocations are at least 8-aligned; fold the high bits in.
        let key = (ptr >> 4) ^ (ptr >> 20);
        &self.filter[key % FILTER_SLOTS]
    }
    // end of safe zone

    /// Bytes these tables occupy, reserved once at start.
    pub(crate) fn reserved_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets)
            + std::mem::size_of_val(&*self.live)
            + std::mem::size_of::<Self>()
    }

    // safe zone: no lock, no allocation (runtime/tests/layers.rs)
    /// The bucket of this stack and owner ([`Owner::key`], 0 for none),
    /// claimed if new.
    pub(crate) fn bucket(&self, frames: &[usize], owner: usize) -> Option<u32> {
        let mut hash = mix(owner as u64 ^ frames.len() as u64);
        for &f in frames {
            hash = mix(hash ^ f as u64);
        }
        let hash = hash | 1;
        let n = self.buckets.len();
        let mut index = hash as usize % n;
        for _ in 0..MAX_PROBE.min(n) {
            let bucket = &self.buckets[index];
            let key = bucket.key.load(Acquire);
            if key == hash && bucket.ready.load(Acquire) {
                return Some(index as u32);
            }
            if key == 0
                && bucket
                    .key
                    .compare_exchange(0, hash, AcqRel, Acquire)
                    .is_ok()
            {
                for (slot, &f) in bucket.frames.iter().zip(frames) {
                    slot.store(f, Relaxed);
                }
                bucket.depth.store(frames.len(), Relaxed);
                bucket.owner.store(owner, Relaxed);
                bucket.ready.store(true, Release);
                return Some(index as u32);
            }
            // Occupied by another stack, or by ours still being written by
            // another thread: a duplicate bucket is merged at snapshot.
            index = (index + 1) % n;
        }
        self.stacks_dropped.fetch_add(1, Relaxed);
        None
    }

    /// Remembers a sampled pointer until it is freed.
    pub(crate) fn insert_live(&self, ptr: usize, bucket: u32, weight: Weight) {
        // Before the slot is published, so a free cannot miss it.
        self.live_count.fetch_add(1, Relaxed);
        let _ = self
            .filter_slot(ptr)
            .fetch_update(AcqRel, Relaxed, |c| (c < u8::MAX).then_some(c + 1));
        let n = self.live.len();
        let mut index = mix(ptr as u64) as usize % n;
        for _ in 0..MAX_PROBE.min(n) {
            let slot = &self.live[index];
            let current = slot.ptr.load(Relaxed);
            // `current == ptr`: a free this table never saw (a realloc
            // raced it); the new allocation replaces the stale entry.
            if current == ptr
                || (current == EMPTY || current == TOMBSTONE)
                    && slot
                        .ptr
                        .compare_exchange(current, ptr, AcqRel, Relaxed)
                        .is_ok()
            {
                if current == ptr {
                    // Replaced, not added.
                    self.live_count.fetch_sub(1, Relaxed);
                }
                slot.bucket.store(bucket, Relaxed);
                slot.objects_milli.store(weight.objects_milli, Relaxed);
                slot.bytes.store(weight.bytes, Release);
                return;
            }
            index = (index + 1) % n;
        }
        self.live_count.fetch_sub(1, Relaxed);
        self.live_dropped.fetch_add(1, Relaxed);
    }

    /// If `ptr` was sampled, forgets it and returns its bucket and weight.
    #[inline]
    pub(crate) fn remove_live(&self, ptr: usize) -> Option<(u32, Weight)> {
        let filter = self.filter_slot(ptr);
        if filter.load(Acquire) == 0 {
            return None;
        }
        let found = self.take_live(ptr);
        if found.is_some() {
            self.live_count.fetch_sub(1, Relaxed);
            let _ = filter.fetch_update(AcqRel, Relaxed, |c| (c > 0 && c < u8::MAX).then(|| c - 1));
        }
        found
    }

    fn take_live(&self, ptr: usize) -> Option<(u32, Weight)> {
        let n = self.live.len();
        let mut index = mix(ptr as u64) as usize % n;
        for _ in 0..MAX_PROBE.min(n) {
            let slot = &self.live[index];
            match slot.ptr.load(Acquire) {
                EMPTY => return None,
                found if found == ptr => {
                    let weight = Weight {
                        bytes: slot.bytes.load(Acquire),
                        objects_milli: slot.objects_milli.load(Relaxed),
                    };
                    let bucket = slot.bucket.load(Relaxed);
                    if slot
                        .ptr
                        .compare_exchange(ptr, TOMBSTONE, AcqRel, Relaxed)
                        .is_ok()
                    {
                        return Some((bucket, weight));
                    }
                    return None;
                }
                _ => index = (index + 1) % n,
            }
        }
        None
    }
    // end of safe zone
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    fn weight(n: u64) -> Weight {
        Weight {
            objects_milli: n as u32,
            bytes: n * 8,
        }
    }

    #[test]
    fn one_bucket_per_stack_and_owner_and_a_full_table_counts_its_drops() {
        let tables = Tables::new(4, 16);
        let a = tables.bucket(&[1, 2, 3], 0).unwrap();
        assert_eq!(tables.bucket(&[1, 2, 3], 0), Some(a), "the same stack");
        let b = tables.bucket(&[1, 2, 4], 0).unwrap();
        let c = tables.bucket(&[1, 2, 3], 8).unwrap();
        assert_eq!(HashSet::from([a, b, c]).len(), 3);
        let (frames, owner) = tables.buckets[a as usize]
            .contents(&HashSet::new())
            .unwrap();
        assert_eq!((frames, owner.is_none()), (vec![1, 2, 3], true));
        tables.bucket(&[9], 0).unwrap();
        assert_eq!(tables.bucket(&[10], 0), None, "four buckets");
        assert_eq!(tables.stacks_dropped.load(Relaxed), 1);
    }

    #[test]
    fn a_sampled_pointer_is_found_once_at_its_free() {
        let tables = Tables::new(4, 8);
        assert!(!tables.maybe_live(0x1000), "nothing sampled yet");
        tables.insert_live(0x1000, 3, weight(5));
        assert!(tables.maybe_live(0x1000));
        assert_eq!(tables.remove_live(0x1000), Some((3, weight(5))));
        assert_eq!(tables.remove_live(0x1000), None, "freed once");
        assert!(!tables.maybe_live(0x1000));
        // A realloc the table never saw freed: the new entry replaces it.
        tables.insert_live(0x2000, 1, weight(1));
        tables.insert_live(0x2000, 2, weight(2));
        assert_eq!(tables.live_count.load(Relaxed), 1);
        assert_eq!(tables.remove_live(0x2000), Some((2, weight(2))));
        // Full: the ninth live pointer is dropped and counted.
        for i in 0..9 {
            tables.insert_live(0x10_000 + i * 16, 0, weight(i as u64));
        }
        assert_eq!(tables.live_dropped.load(Relaxed), 1);
        assert_eq!(tables.live_count.load(Relaxed), 8);
    }

    #[test]
    fn threads_inserting_and_freeing_at_once_find_exactly_their_own() {
        const THREADS: usize = 4;
        const EACH: usize = 5_000;
        let tables = Arc::new(Tables::new(64, THREADS * EACH * 2));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let tables = tables.clone();
                std::thread::spawn(move || {
                    let pointer = |i: usize| 0x100_0000 + (t * EACH + i) * 16;
                    for i in 0..EACH {
                        let bucket = tables.bucket(&[t, i % 8], 0).unwrap();
                        tables.insert_live(pointer(i), bucket, weight(i as u64));
                        if i % 2 == 1 {
                            // Free the previous one while others insert.
                            let found = tables.remove_live(pointer(i - 1));
                            assert_eq!(found.map(|f| f.1), Some(weight(i as u64 - 1)));
                        }
                    }
                    for i in (1..EACH).step_by(2) {
                        assert_eq!(
                            tables.remove_live(pointer(i)).map(|f| f.1),
                            Some(weight(i as u64))
                        );
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(tables.live_count.load(Relaxed), 0);
        assert_eq!(tables.live_dropped.load(Relaxed), 0);
        assert_eq!(tables.stacks_dropped.load(Relaxed), 0);
    }
}
