//! The pre-allocated, lock-free buffer between the signal handler and the
//! drainer thread.
//!
//! The handler claims a slot with one `fetch_add`, fills it only if the
//! slot was free (otherwise the sample is dropped and counted), and
//! publishes it with a Release store; the drainer copies published slots
//! out and frees them. No lock, no allocation on the handler's side.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::*};

/// Deepest stack a CPU sample keeps (innermost frames).
pub(crate) const MAX_FRAMES: usize = 128;

const FREE: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

pub(crate) struct Slot {
    state: AtomicU8,
    tid: AtomicU64,
    weight_ns: AtomicU64,
    invocation: AtomicU64,
    owner: AtomicUsize,
    span_id: AtomicU64,
    trace_hi: AtomicU64,
    trace_lo: AtomicU64,
    depth: AtomicUsize,
    frames: [AtomicU64; MAX_FRAMES],
}

/// A sample as the handler records it.
#[derive(Clone, Debug)]
pub(crate) struct RawSample {
    pub(crate) tid: u64,
    pub(crate) weight_ns: u64,
    pub(crate) invocation: u64,
    /// [`Owner::key`](crate::thread::slot::Owner::key) of the invocation's
    /// row, 0 outside any invocation.
    pub(crate) owner: usize,
    /// OpenTelemetry ids of the invocation's span (0: none).
    pub(crate) span_id: u64,
    pub(crate) trace_id: u128,
    pub(crate) frames: Vec<u64>,
}

/// Who a sample belongs to, as the handler reads it from the slot.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SampleLabels {
    pub(crate) invocation: u64,
    pub(crate) owner: usize,
    pub(crate) span_id: u64,
    pub(crate) trace_id: u128,
}

pub(crate) struct SampleBuffer {
    slots: Box<[Slot]>,
    next: AtomicUsize,
    pub(crate) dropped_full: AtomicU64,
}

impl SampleBuffer {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            slots: (0..capacity.max(1))
                .map(|_| Slot {
                    state: AtomicU8::new(FREE),
                    tid: AtomicU64::new(0),
                    weight_ns: AtomicU64::new(0),
                    invocation: AtomicU64::new(0),
                    owner: AtomicUsize::new(0),
                    span_id: AtomicU64::new(0),
                    trace_hi: AtomicU64::new(0),
                    trace_lo: AtomicU64::new(0),
                    depth: AtomicUsize::new(0),
                    frames: std::array::from_fn(|_| AtomicU64::new(0)),
                })
                .collect(),
            next: AtomicUsize::new(0),
            dropped_full: AtomicU64::new(0),
        }
    }

    pub(crate) fn reserved_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    // safe zone: no lock, no allocation (runtime/tests/layers.rs)
    /// Async-signal-safe: atomics only.
    pub(crate) fn push(
        &self,
        tid: u64,
        weight_ns: u64,
        labels: SampleLabels,
        frames: &[u64],
    ) -> bool {
        let index = self.next.fetch_add(1, Relaxed) % self.slots.len();
        let slot = &self.slots[index];
        if slot
            .state
            .compare_exchange(FREE, WRITING, Acquire, Relaxed)
            .is_err()
        {
            self.dropped_full.fetch_add(1, Relaxed);
            return false;
        }
        slot.tid.store(tid, Relaxed);
        slot.weight_ns.store(weight_ns, Relaxed);
        slot.invocation.store(labels.invocation, Relaxed);
        slot.owner.store(labels.owner, Relaxed);
        slot.span_id.store(labels.span_id, Relaxed);
        slot.trace_hi.store((labels.trace_id >> 64) as u64, Relaxed);
        slot.trace_lo.store(labels.trace_id as u64, Relaxed);
        let depth = frames.len().min(MAX_FRAMES);
        for (dst, &src) in slot.frames.iter().zip(&frames[..depth]) {
            dst.store(src, Relaxed);
        }
        slot.depth.store(depth, Relaxed);
        slot.state.store(READY, Release);
        true
    }
    // end of safe zone

    /// Moves every published sample into `out`.
    pub(crate) fn drain(&self, out: &mut Vec<RawSample>) {
        for slot in self.slots.iter() {
            if slot.state.load(Acquire) != READY {
                continue;
            }
            let depth = slot.depth.load(Relaxed).min(MAX_FRAMES);
            out.push(RawSample {
                tid: slot.tid.load(Relaxed),
                weight_ns: slot.weight_ns.load(Relaxed),
                invocation: slot.invocation.load(Relaxed),
                owner: slot.owner.load(Relaxed),
                span_id: slot.span_id.load(Relaxed),
                trace_id: (u128::from(slot.trace_hi.load(Relaxed)) << 64)
                    | u128::from(slot.trace_lo.load(Relaxed)),
                frames: slot.frames[..depth]
                    .iter()
                    .map(|f| f.load(Relaxed))
                    .collect(),
            });
            slot.state.store(FREE, Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    fn labels(v: u64) -> SampleLabels {
        SampleLabels {
            invocation: v,
            owner: v as usize,
            span_id: v,
            trace_id: (u128::from(v) << 64) | u128::from(v),
        }
    }

    /// Every field of a drained sample comes from one push: a torn slot
    /// would mix two.
    fn assert_whole(sample: &RawSample) {
        let v = sample.weight_ns;
        assert_eq!(
            (sample.invocation, sample.owner, sample.span_id),
            (v, v as usize, v),
            "{sample:?}"
        );
        assert_eq!(sample.trace_id, (u128::from(v) << 64) | u128::from(v));
        assert_eq!(sample.frames.len() as u64, v % 7 + 1, "{sample:?}");
        assert!(sample.frames.iter().all(|&f| f == v), "{sample:?}");
    }

    fn push_value(buffer: &SampleBuffer, tid: u64, v: u64) -> bool {
        let frames = vec![v; (v % 7 + 1) as usize];
        buffer.push(tid, v, labels(v), &frames)
    }

    #[test]
    fn pushed_samples_drain_once_and_a_full_buffer_counts_what_it_drops() {
        let buffer = SampleBuffer::new(4);
        for v in 1..=4 {
            assert!(push_value(&buffer, 9, v));
        }
        assert!(!push_value(&buffer, 9, 5), "no free slot");
        assert_eq!(buffer.dropped_full.load(Relaxed), 1);
        let mut out = Vec::new();
        buffer.drain(&mut out);
        let mut values: Vec<u64> = out.iter().map(|s| s.weight_ns).collect();
        values.sort();
        assert_eq!(values, [1, 2, 3, 4]);
        out.iter().for_each(assert_whole);
        out.clear();
        buffer.drain(&mut out);
        assert!(out.is_empty(), "drained once");
        assert!(push_value(&buffer, 9, 6), "slots are free again");
        // A deeper stack keeps its innermost frames.
        let deep: Vec<u64> = (0..MAX_FRAMES as u64 + 50).collect();
        assert!(buffer.push(9, 1, labels(1), &deep));
        out.clear();
        buffer.drain(&mut out);
        let kept = out.iter().find(|s| s.frames.len() == MAX_FRAMES).unwrap();
        assert_eq!(kept.frames, deep[..MAX_FRAMES]);
    }

    #[test]
    fn producers_racing_a_drainer_lose_nothing_uncounted_and_never_tear() {
        const PRODUCERS: u64 = 4;
        const EACH: u64 = 20_000;
        let buffer = Arc::new(SampleBuffer::new(64));
        let done = Arc::new(AtomicBool::new(false));
        let drainer = {
            let (buffer, done) = (buffer.clone(), done.clone());
            std::thread::spawn(move || {
                let mut drained = Vec::new();
                while !done.load(Acquire) {
                    buffer.drain(&mut drained);
                    std::thread::yield_now();
                }
                buffer.drain(&mut drained);
                drained
            })
        };
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let buffer = buffer.clone();
                std::thread::spawn(move || {
                    (0..EACH)
                        .filter(|i| push_value(&buffer, p, p * EACH + i + 1))
                        .count() as u64
                })
            })
            .collect();
        let stored: u64 = producers.into_iter().map(|p| p.join().unwrap()).sum();
        done.store(true, Release);
        let drained = drainer.join().unwrap();
        let dropped = buffer.dropped_full.load(Relaxed);
        assert_eq!(stored + dropped, PRODUCERS * EACH);
        assert_eq!(drained.len() as u64, stored, "every stored sample drained");
        let mut seen = std::collections::HashSet::new();
        for sample in &drained {
            assert_whole(sample);
            assert_eq!(sample.tid, (sample.weight_ns - 1) / EACH);
            assert!(seen.insert(sample.weight_ns), "drained twice: {sample:?}");
        }
    }
}
