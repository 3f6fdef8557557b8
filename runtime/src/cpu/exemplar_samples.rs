//! The CPU samples of exemplars: what each of the slowest invocations (and
//! everything it called) ran, kept for its own flamegraph after the fact.
//!
//! A sample is taken before anyone knows whether its invocation will be an
//! exemplar (that is decided when the invocation finishes), so drained
//! samples wait in a bounded ring of the most recent ones. A sample leaving
//! the ring is pinned to every kept exemplar whose callee tree holds its
//! invocation; a reader takes an exemplar's pinned samples and those still
//! in the ring. Pinned samples of exemplars no longer kept are freed at the
//! next delivery.
//!
//! Bounded: [`RECENT_SAMPLES`] samples in the ring (at 100 Hz per busy
//! thread, eight busy threads fill it in about five seconds: an exemplar's
//! profile covers at most that much of its run before it finished), and
//! [`MAX_KEYS_PER_EXEMPLAR`] distinct stacks per exemplar.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::buffer::RawSample;
use super::samples::{CpuReport, Meta};
use super::{tap, Aggregate};
use crate::aggregate::exemplars;

/// Drained samples waiting to learn whether their invocation is kept.
pub(crate) const RECENT_SAMPLES: usize = 4096;
/// Distinct (stack, invocation, thread) keys kept per exemplar.
pub(crate) const MAX_KEYS_PER_EXEMPLAR: usize = 4096;

#[derive(Default)]
struct Store {
    recent: VecDeque<RawSample>,
    pinned: HashMap<u64, Aggregate>,
    /// The last sampler's rate and mode, for the profiles' headers.
    sampler: Option<tap::Sampler>,
}

static STORE: Mutex<Option<Store>> = Mutex::new(None);

fn store() -> MutexGuard<'static, Option<Store>> {
    STORE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes a delivery of drained samples (those inside an invocation).
pub(super) fn deliver(raw: &[RawSample]) {
    if !exemplars::enabled() {
        return;
    }
    let mut guard = store();
    let store = guard.get_or_insert_with(Store::default);
    if let Some(sampler) = tap::sampler() {
        store.sampler = Some(sampler);
    }
    store
        .recent
        .extend(raw.iter().filter(|s| s.invocation != 0).cloned());
    let excess = store.recent.len().saturating_sub(RECENT_SAMPLES);
    if excess == 0 && store.pinned.is_empty() {
        // Nothing leaves the ring and nothing pinned may need freeing: no
        // reason to ask the exemplar store anything.
        return;
    }
    let leaving: Vec<RawSample> = store.recent.drain(..excess).collect();
    let invocations: Vec<u64> = leaving.iter().map(|s| s.invocation).collect();
    let (owners, kept) = exemplars::containing(&invocations);
    let kept: HashSet<u64> = kept.into_iter().collect();
    store.pinned.retain(|exemplar, _| kept.contains(exemplar));
    for (sample, owners) in leaving.iter().zip(owners) {
        for exemplar in owners {
            let pinned = store.pinned.entry(exemplar).or_default();
            pinned.add_bounded(std::iter::once(sample), MAX_KEYS_PER_EXEMPLAR);
        }
    }
}

/// The CPU profile of exemplar `exemplar`: the samples of `invocations`
/// (it and its descendants) that were kept. `None` when no sampler ever
/// delivered samples.
pub(crate) fn profile(
    exemplar: u64,
    invocations: &[u64],
    started_at: SystemTime,
    duration: Duration,
) -> Option<CpuReport> {
    let guard = store();
    let store = guard.as_ref()?;
    let sampler = store.sampler?;
    let wanted: HashSet<u64> = invocations.iter().copied().collect();
    let mut aggregate = Aggregate::default();
    if let Some(pinned) = store.pinned.get(&exemplar) {
        aggregate.samples = pinned.samples.clone();
        aggregate.dropped_keys = pinned.dropped_keys;
    }
    aggregate.add_bounded(
        store
            .recent
            .iter()
            .filter(|s| wanted.contains(&s.invocation)),
        MAX_KEYS_PER_EXEMPLAR,
    );
    let dropped_keys = aggregate.dropped_keys;
    Some(CpuReport::new(
        aggregate.samples,
        Meta {
            requested_hz: sampler.hz,
            period_ns: 1_000_000_000 / u64::from(sampler.hz.max(1)),
            started_at,
            duration,
            mode: sampler.mode,
            modules: 0,
            dropped_buffer_full: 0,
            dropped_unwinder_busy: 0,
            dropped_keys,
        },
    ))
}

/// Forgets every sample (with the exemplars, on reset).
pub(crate) fn clear() {
    *store() = None;
}
