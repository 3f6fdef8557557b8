//! Aggregate rows: one per (function, agent) pair.
//!
//! A row's figures sit behind one mutex: finished calls reach it in
//! per-thread batches, one lock per run of calls of the row per batch, so
//! threads rarely meet there. Only the running-invocation counter, touched
//! at every call, is split over padded per-thread shards.
//!
//! Memory is bounded: a row is at most 94 KiB (its counters, under 1 KiB,
//! and three histograms of at most 31 KiB each), and there are at most
//! [`MAX_ROWS`] of them, plus one overflow row per agent. Past
//! that, a new (function, agent) pair is charged to its agent's overflow row
//! (function `__overflow__`), so agent totals stay whole, and counted. Rows
//! are never freed.

use std::sync::atomic::{
    AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering, Ordering::Relaxed,
};
use std::sync::{Mutex, MutexGuard};

use hdrhistogram::Histogram;

use super::agents::{self, Root};
use super::histogram;
use super::labels::Labels;
use crate::model::Outcome;
use crate::thread::slot::{self, Owner};

/// Shards of the recent ring: threads that finish invocations at once
/// mostly land on different locks.
pub(super) const SHARDS: usize = 8;
/// Shards of a row's running-invocation counter.
const ACTIVE_SHARDS: usize = 4;
/// (function, agent) rows at most, overflow rows aside.
pub(crate) const MAX_ROWS: usize = 4096;
/// Function label of an agent's overflow row.
pub(crate) const OVERFLOW_FUNCTION: &str = "__overflow__";

/// What a finished invocation allocated (present when the counting
/// allocator is installed).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MemoryUsage {
    pub(crate) alloc_bytes: u64,
    pub(crate) allocs: u64,
    pub(crate) self_alloc_bytes: u64,
    pub(crate) self_allocs: u64,
    pub(crate) freed_bytes: u64,
    pub(crate) retained_bytes: i64,
    pub(crate) peak_bytes: u64,
}

/// One finished invocation, as the stores take it.
pub(crate) struct Call {
    pub(crate) row: &'static Row,
    pub(crate) id: u64,
    /// 0 for a root invocation.
    pub(crate) parent_id: u64,
    /// First invocation of its agent on the way down (no caller, or a
    /// caller of another agent).
    pub(crate) agent_root: bool,
    pub(crate) labels: Option<Labels>,
    pub(crate) outcome: Outcome,
    /// Monotonic time it ended, ns: orders the recent-invocation ring.
    pub(crate) end_ns: u64,
    pub(crate) wall_ns: u64,
    pub(crate) self_wall_ns: u64,
    pub(crate) cpu_ns: Option<u64>,
    pub(crate) self_cpu_ns: Option<u64>,
    pub(crate) polls: u64,
    pub(crate) memory: Option<MemoryUsage>,
}

#[repr(align(64))]
#[derive(Debug, Default)]
struct ActiveShard(AtomicI64);

/// A row's totals since start, which [`Row::clear`] keeps: continuous
/// windows are measured as their differences.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Lifetime {
    pub(crate) calls: u64,
    pub(crate) cpu_calls: u64,
    pub(crate) cpu_ns: u64,
    pub(crate) self_cpu_ns: u64,
}

impl Lifetime {
    fn add(&mut self, o: &Lifetime) {
        self.calls += o.calls;
        self.cpu_calls += o.cpu_calls;
        self.cpu_ns += o.cpu_ns;
        self.self_cpu_ns += o.self_cpu_ns;
    }
}

/// A row's counters and histograms.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) lifetime: Lifetime,
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) panics: u64,
    pub(crate) cancelled: u64,
    /// Calls whose CPU was measured; CPU figures are absent when it is 0
    /// while `calls` is not.
    pub(crate) cpu_calls: u64,
    pub(crate) cpu_ns: u64,
    pub(crate) self_cpu_ns: u64,
    pub(crate) wall_ns: u64,
    pub(crate) self_wall_ns: u64,
    pub(crate) polls: u64,
    pub(crate) root_calls: u64,
    pub(crate) root_wall_ns: u64,
    pub(crate) root_cpu_ns: u64,
    pub(crate) detached_cpu_ns: u64,
    /// Calls whose memory was measured (allocator installed).
    pub(crate) memory_calls: u64,
    pub(crate) alloc_bytes: u64,
    pub(crate) allocs: u64,
    pub(crate) self_alloc_bytes: u64,
    pub(crate) self_allocs: u64,
    pub(crate) freed_bytes: u64,
    pub(crate) retained_bytes: i64,
    pub(crate) peak_bytes: u64,
    pub(crate) root_retained_bytes: i64,
    pub(crate) root_peak_bytes: u64,
    /// Longest call and most CPU in one call, exact (the histograms stop
    /// resolving at 68 s).
    pub(crate) wall_ns_max: u64,
    pub(crate) cpu_ns_max: u64,
    /// Per-call wall, CPU and bytes allocated. Agents' root percentiles
    /// are kept per agent.
    pub(crate) wall: Option<Histogram<u64>>,
    pub(crate) cpu: Option<Histogram<u64>>,
    pub(crate) alloc_per_call: Option<Histogram<u64>>,
}

/// A row's per-call percentiles: wall and CPU at p50, p90, p99; bytes
/// allocated at p50, p99.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Percentiles {
    pub(crate) wall: [u64; 3],
    pub(crate) cpu: [u64; 3],
    pub(crate) alloc: [u64; 2],
}

impl Stats {
    /// Adds `o`'s counters, not its histograms.
    pub(crate) fn add_counters(&mut self, o: &Stats) {
        self.lifetime.add(&o.lifetime);
        self.calls += o.calls;
        self.errors += o.errors;
        self.panics += o.panics;
        self.cancelled += o.cancelled;
        self.cpu_calls += o.cpu_calls;
        self.cpu_ns += o.cpu_ns;
        self.self_cpu_ns += o.self_cpu_ns;
        self.wall_ns += o.wall_ns;
        self.self_wall_ns += o.self_wall_ns;
        self.polls += o.polls;
        self.root_calls += o.root_calls;
        self.root_wall_ns += o.root_wall_ns;
        self.root_cpu_ns += o.root_cpu_ns;
        self.detached_cpu_ns += o.detached_cpu_ns;
        self.memory_calls += o.memory_calls;
        self.alloc_bytes += o.alloc_bytes;
        self.allocs += o.allocs;
        self.self_alloc_bytes += o.self_alloc_bytes;
        self.self_allocs += o.self_allocs;
        self.freed_bytes += o.freed_bytes;
        self.retained_bytes += o.retained_bytes;
        self.peak_bytes = self.peak_bytes.max(o.peak_bytes);
        self.root_retained_bytes += o.root_retained_bytes;
        self.root_peak_bytes = self.root_peak_bytes.max(o.root_peak_bytes);
        self.wall_ns_max = self.wall_ns_max.max(o.wall_ns_max);
        self.cpu_ns_max = self.cpu_ns_max.max(o.cpu_ns_max);
    }

    fn clear(&mut self) {
        let (mut wall, mut cpu, mut alloc_per_call) = (
            self.wall.take(),
            self.cpu.take(),
            self.alloc_per_call.take(),
        );
        for h in [&mut wall, &mut cpu, &mut alloc_per_call] {
            histogram::reset(h);
        }
        *self = Stats {
            lifetime: self.lifetime,
            wall,
            cpu,
            alloc_per_call,
            ..Stats::default()
        };
    }

    pub(crate) fn memory_measured(&self) -> bool {
        self.memory_calls > 0
    }

    pub(crate) fn cpu_measured(&self) -> bool {
        self.calls == 0 || self.cpu_calls > 0
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a stats lock leaves plain counters behind;
    // they are still the best figures there are.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The aggregate row of one callsite under one agent.
#[derive(Debug)]
pub(crate) struct Row {
    /// Names the row; CPU samples and heap samples point here.
    pub(crate) owner: Owner,
    pub(crate) file: &'static str,
    pub(crate) line: u32,
    next: Option<&'static Row>,
    active: [ActiveShard; ACTIVE_SHARDS],
    stats: Mutex<Stats>,
}

/// This thread's shard of the recent ring.
#[inline]
pub(super) fn my_shard() -> usize {
    slot::thread_index() as usize % SHARDS
}

#[inline]
fn my_active_shard() -> usize {
    slot::thread_index() as usize % ACTIVE_SHARDS
}

impl Row {
    fn new(owner: Owner, file: &'static str, line: u32, next: Option<&'static Row>) -> Self {
        Row {
            owner,
            file,
            line,
            next,
            active: Default::default(),
            stats: Mutex::default(),
        }
    }

    #[inline]
    pub(crate) fn started(&self) {
        self.active[my_active_shard()].0.fetch_add(1, Relaxed);
    }

    /// The row's figures, locked.
    pub(super) fn lock_stats(&'static self) -> MutexGuard<'static, Stats> {
        lock(&self.stats)
    }

    pub(super) fn record(&'static self, f: &Call) {
        let root = self.record_locked(&mut self.lock_stats(), f);
        agents::record(&[root]);
    }

    /// Adds a finished call to `s`, this row's locked figures; returns it
    /// as an agent root for [`agents::record`] when it is one.
    pub(super) fn record_locked(&self, s: &mut Stats, f: &Call) -> Option<Root> {
        self.active[my_active_shard()].0.fetch_sub(1, Relaxed);
        s.calls += 1;
        s.lifetime.calls += 1;
        match f.outcome {
            Outcome::Ok => {}
            Outcome::Error => s.errors += 1,
            Outcome::Panicked => s.panics += 1,
            Outcome::Cancelled => s.cancelled += 1,
        }
        s.wall_ns += f.wall_ns;
        s.self_wall_ns += f.self_wall_ns;
        s.polls += f.polls;
        if let (Some(cpu), Some(self_cpu)) = (f.cpu_ns, f.self_cpu_ns) {
            s.cpu_calls += 1;
            s.cpu_ns += cpu;
            s.self_cpu_ns += self_cpu;
            s.lifetime.cpu_calls += 1;
            s.lifetime.cpu_ns += cpu;
            s.lifetime.self_cpu_ns += self_cpu;
        }
        if let Some(m) = &f.memory {
            s.memory_calls += 1;
            s.alloc_bytes += m.alloc_bytes;
            s.allocs += m.allocs;
            s.self_alloc_bytes += m.self_alloc_bytes;
            s.self_allocs += m.self_allocs;
            s.freed_bytes += m.freed_bytes;
            s.retained_bytes += m.retained_bytes;
            s.peak_bytes = s.peak_bytes.max(m.peak_bytes);
            if f.agent_root {
                s.root_retained_bytes += m.retained_bytes;
                s.root_peak_bytes = s.root_peak_bytes.max(m.peak_bytes);
            }
            histogram::record(&mut s.alloc_per_call, m.alloc_bytes);
        }
        s.wall_ns_max = s.wall_ns_max.max(f.wall_ns);
        histogram::record(&mut s.wall, f.wall_ns);
        if let Some(cpu) = f.cpu_ns {
            s.cpu_ns_max = s.cpu_ns_max.max(cpu);
            histogram::record(&mut s.cpu, cpu);
        }
        f.agent_root.then(|| {
            s.root_calls += 1;
            s.root_wall_ns += f.wall_ns;
            s.root_cpu_ns += f.cpu_ns.unwrap_or(0);
            Root {
                agent: self.owner.agent,
                wall_ns: f.wall_ns,
                cpu_ns: f.cpu_ns,
            }
        })
    }

    /// CPU of propagated work that arrived after its invocation ended.
    pub(crate) fn add_detached_cpu(&self, own: u64, children: u64) {
        let mut s = lock(&self.stats);
        s.cpu_ns += own + children;
        s.self_cpu_ns += own;
        s.detached_cpu_ns += own + children;
        s.lifetime.cpu_ns += own + children;
        s.lifetime.self_cpu_ns += own;
    }

    /// The row's totals since start.
    pub(crate) fn lifetime(&self) -> Lifetime {
        lock(&self.stats).lifetime
    }

    /// Invocations of the row running now.
    pub(crate) fn active(&self) -> u64 {
        let active: i64 = self.active.iter().map(|s| s.0.load(Relaxed)).sum();
        active.max(0) as u64
    }

    /// A copy of the row's counters (histograms left out: a report of
    /// thousands of rows must not copy them all), its percentiles, and its
    /// running invocations.
    pub(crate) fn snapshot(&self) -> (Stats, Percentiles, u64) {
        let stats = lock(&self.stats);
        let percentiles = Percentiles {
            wall: [0.5, 0.9, 0.99].map(|q| histogram::quantile(&stats.wall, q)),
            cpu: [0.5, 0.9, 0.99].map(|q| histogram::quantile(&stats.cpu, q)),
            alloc: [0.5, 0.99].map(|q| histogram::quantile(&stats.alloc_per_call, q)),
        };
        let mut copy = Stats::default();
        copy.add_counters(&stats);
        drop(stats);
        (copy, percentiles, self.active())
    }

    /// Forgets the row's figures (running invocations still finish into it).
    pub(crate) fn clear(&self) {
        lock(&self.stats).clear();
    }
}

static ROWS: Mutex<Vec<&'static Row>> = Mutex::new(Vec::new());
/// Rows created or being created: reserved before a row is built, so
/// threads creating rows at once cannot pass the cap together.
static ROWS_RESERVED: AtomicUsize = AtomicUsize::new(0);
/// Each agent's overflow row, created when the row cap is first hit.
static OVERFLOW_ROWS: Mutex<Vec<&'static Row>> = Mutex::new(Vec::new());
/// (function, agent) pairs charged to an overflow row.
static OVERFLOWED: AtomicU64 = AtomicU64::new(0);

/// Every row created so far, overflow rows included.
pub(crate) fn rows() -> Vec<&'static Row> {
    let mut all = lock(&ROWS).clone();
    all.extend(lock(&OVERFLOW_ROWS).iter());
    all
}

/// The owner key of every row: what a key stored by the signal handler or
/// the allocator hook must be one of before it is turned back into names.
pub(crate) fn owner_keys() -> std::collections::HashSet<usize> {
    rows().iter().map(|r| r.owner.key()).collect()
}

/// (function, agent) pairs that found the row cap reached.
pub(crate) fn rows_overflowed() -> u64 {
    OVERFLOWED.load(Relaxed)
}

/// `agent`'s overflow row.
fn overflow_row(agent: Option<&'static str>) -> &'static Row {
    let mut rows = lock(&OVERFLOW_ROWS);
    if let Some(row) = rows.iter().find(|r| same_agent(r.owner.agent, agent)) {
        return row;
    }
    let row: &'static Row = Box::leak(Box::new(Row::new(
        Owner {
            function: OVERFLOW_FUNCTION,
            agent,
        },
        "",
        0,
        None,
    )));
    rows.push(row);
    row
}

/// Slots of a callsite's row cache.
const CACHE_SLOTS: usize = 8;

/// The rows of one callsite, one per agent it ran under: a lock-free list,
/// and in front of it a small direct-mapped cache keyed by the agent name's
/// address, so that finding the row of a callsite that runs under many
/// agents stays one load and one comparison.
#[derive(Debug)]
pub(crate) struct RowList {
    head: AtomicPtr<Row>,
    cache: [AtomicPtr<Row>; CACHE_SLOTS],
}

fn cache_slot(agent: Option<&'static str>) -> usize {
    agent.map_or(0, |a| (a.as_ptr() as usize >> 3) % CACHE_SLOTS)
}

impl RowList {
    pub(crate) const fn new() -> Self {
        Self {
            head: AtomicPtr::new(std::ptr::null_mut()),
            cache: [const { AtomicPtr::new(std::ptr::null_mut()) }; CACHE_SLOTS],
        }
    }

    /// The row of `function` under `agent`, created on first use (the
    /// name is computed only when a row is created); the agent's overflow
    /// row once [`MAX_ROWS`] rows exist.
    #[inline]
    pub(crate) fn row_for(
        &self,
        function: impl Fn() -> &'static str,
        agent: Option<&'static str>,
        file: &'static str,
        line: u32,
    ) -> &'static Row {
        let slot = &self.cache[cache_slot(agent)];
        if let Some(row) = published(slot.load(Ordering::Acquire)) {
            if same_agent(row.owner.agent, agent) {
                return row;
            }
        }
        let row = self.find_or_create(function, agent, file, line);
        slot.store(row as *const Row as *mut Row, Ordering::Release);
        row
    }

    #[cold]
    fn find_or_create(
        &self,
        function: impl Fn() -> &'static str,
        agent: Option<&'static str>,
        file: &'static str,
        line: u32,
    ) -> &'static Row {
        loop {
            let head = self.head.load(Ordering::Acquire);
            let mut cursor = published(head);
            while let Some(row) = cursor {
                if same_agent(row.owner.agent, agent) {
                    return row;
                }
                cursor = row.next;
            }
            if ROWS_RESERVED.fetch_add(1, Relaxed) >= MAX_ROWS {
                ROWS_RESERVED.fetch_sub(1, Relaxed);
                OVERFLOWED.fetch_add(1, Relaxed);
                return overflow_row(agent);
            }
            // The name is needed (and, for a fn, computed) only here.
            let row = Box::into_raw(Box::new(Row::new(
                Owner {
                    function: function(),
                    agent,
                },
                file,
                line,
                published(head),
            )));
            match self
                .head
                .compare_exchange(head, row, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // SAFETY: just published; never freed.
                    let row: &'static Row = unsafe { &*row };
                    lock(&ROWS).push(row);
                    return row;
                }
                Err(_) => {
                    // Another thread pushed first; ours was never shared.
                    ROWS_RESERVED.fetch_sub(1, Relaxed);
                    // SAFETY: `row` came from Box::into_raw above and no
                    // other reference to it exists.
                    drop(unsafe { Box::from_raw(row) });
                }
            }
        }
    }

    /// Every row in the list.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'static Row> {
        let mut cursor = published(self.head.load(Ordering::Acquire));
        std::iter::from_fn(move || {
            let row = cursor?;
            cursor = row.next;
            Some(row)
        })
    }
}

/// Turns a list head or cache slot into a reference.
fn published(ptr: *mut Row) -> Option<&'static Row> {
    // SAFETY: the only non-null values ever stored in `head` or a cache
    // slot are leaked boxes published with Release after full
    // initialisation and never freed; every load pairs with Acquire.
    unsafe { ptr.as_ref() }
}

fn same_agent(a: Option<&'static str>, b: Option<&'static str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => std::ptr::eq(a, b) || a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rows_counters_stay_under_a_kibibyte() {
        assert!(
            std::mem::size_of::<Row>() <= 1024,
            "{}",
            std::mem::size_of::<Row>()
        );
    }
}
