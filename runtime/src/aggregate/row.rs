//! Aggregate rows: one per (function, agent) pair.
//!
//! Each row is split into per-thread shards, each behind its own cache-line
//! padded mutex, so threads finishing invocations of the same function do
//! not serialize on one lock; shards are merged only when a report is
//! built. Rows are never freed: there is at most one per (callsite, agent)
//! pair, and both are `'static` names, so their number is bounded by the
//! program (plus the bounded set of run-time agent names).

use std::sync::atomic::{AtomicI64, AtomicPtr, Ordering, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

use hdrhistogram::Histogram;

use super::labels::Labels;
use crate::model::Outcome;
use crate::thread::slot::{self, Owner};

/// Shards of each row and of the recent ring: threads that finish
/// invocations at once mostly land on different locks.
pub(super) const SHARDS: usize = 8;
/// Two significant digits: percentiles within 1%, a few KiB per histogram.
const HISTOGRAM_SIGFIGS: u8 = 2;

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

#[repr(align(128))]
#[derive(Debug, Default)]
struct Shard {
    active: AtomicI64,
    stats: Mutex<Stats>,
}

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
    pub(crate) alloc_per_call: Option<Histogram<u64>>,
    /// Each call lands in exactly one pair, so it costs two histogram
    /// records: nested calls here, agent roots below. A function's
    /// percentiles merge both pairs; an agent's use the roots only.
    pub(crate) nested_wall: Option<Histogram<u64>>,
    pub(crate) nested_cpu: Option<Histogram<u64>>,
    pub(crate) root_wall: Option<Histogram<u64>>,
    pub(crate) root_cpu: Option<Histogram<u64>>,
}

fn record_into(histogram: &mut Option<Histogram<u64>>, value: u64) {
    let h = histogram.get_or_insert_with(|| {
        Histogram::new(HISTOGRAM_SIGFIGS).expect("2 significant figures is a valid precision")
    });
    // Auto-resizing histograms accept any u64; an error here would only mean
    // allocation failure inside the resize, which aborts anyway.
    let _ = h.record(value);
}

fn merge_into(target: &mut Option<Histogram<u64>>, source: &Option<Histogram<u64>>) {
    if let Some(source) = source {
        match target {
            Some(t) => {
                let _ = t.add(source);
            }
            None => *target = Some(source.clone()),
        }
    }
}

/// The value at quantile `q` of a histogram, 0 when nothing was recorded.
pub(crate) fn quantile(h: &Option<Histogram<u64>>, q: f64) -> u64 {
    h.as_ref().map_or(0, |h| h.value_at_quantile(q))
}

impl Stats {
    pub(crate) fn merge(&mut self, o: &Stats) {
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
        merge_into(&mut self.alloc_per_call, &o.alloc_per_call);
        merge_into(&mut self.nested_wall, &o.nested_wall);
        merge_into(&mut self.nested_cpu, &o.nested_cpu);
        merge_into(&mut self.root_wall, &o.root_wall);
        merge_into(&mut self.root_cpu, &o.root_cpu);
    }

    fn clear(&mut self) {
        let mut keep = [
            self.nested_wall.take(),
            self.nested_cpu.take(),
            self.root_wall.take(),
            self.root_cpu.take(),
            self.alloc_per_call.take(),
        ];
        for h in keep.iter_mut().flatten() {
            h.reset();
        }
        let [nested_wall, nested_cpu, root_wall, root_cpu, alloc_per_call] = keep;
        *self = Stats {
            lifetime: self.lifetime,
            alloc_per_call,
            nested_wall,
            nested_cpu,
            root_wall,
            root_cpu,
            ..Stats::default()
        };
    }

    pub(crate) fn memory_measured(&self) -> bool {
        self.memory_calls > 0
    }

    pub(crate) fn cpu_measured(&self) -> bool {
        self.calls == 0 || self.cpu_calls > 0
    }

    /// Per-call wall and CPU histograms over every call.
    pub(crate) fn all_calls(&self) -> (Option<Histogram<u64>>, Option<Histogram<u64>>) {
        let mut wall = self.nested_wall.clone();
        merge_into(&mut wall, &self.root_wall);
        let mut cpu = self.nested_cpu.clone();
        merge_into(&mut cpu, &self.root_cpu);
        (wall, cpu)
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
    shards: [Shard; SHARDS],
}

/// This thread's shard.
#[inline]
pub(super) fn my_shard() -> usize {
    slot::thread_index() as usize % SHARDS
}

impl Row {
    #[inline]
    pub(crate) fn started(&self) {
        self.shards[my_shard()].active.fetch_add(1, Relaxed);
    }

    /// This thread's shard of the row's figures.
    pub(super) fn lock_stats(&'static self) -> MutexGuard<'static, Stats> {
        lock(&self.shards[my_shard()].stats)
    }

    pub(super) fn record(&'static self, f: &Call) {
        self.record_locked(&mut self.lock_stats(), f);
    }

    /// Adds a finished call to `s`, a locked shard of this row.
    pub(super) fn record_locked(&self, s: &mut Stats, f: &Call) {
        self.shards[my_shard()].active.fetch_sub(1, Relaxed);
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
            record_into(&mut s.alloc_per_call, m.alloc_bytes);
        }
        let (wall_histogram, cpu_histogram) = if f.agent_root {
            s.root_calls += 1;
            s.root_wall_ns += f.wall_ns;
            s.root_cpu_ns += f.cpu_ns.unwrap_or(0);
            (&mut s.root_wall, &mut s.root_cpu)
        } else {
            (&mut s.nested_wall, &mut s.nested_cpu)
        };
        record_into(wall_histogram, f.wall_ns);
        if let Some(cpu) = f.cpu_ns {
            record_into(cpu_histogram, cpu);
        }
    }

    /// CPU of propagated work that arrived after its invocation ended.
    pub(crate) fn add_detached_cpu(&self, own: u64, children: u64) {
        let mut s = lock(&self.shards[my_shard()].stats);
        s.cpu_ns += own + children;
        s.self_cpu_ns += own;
        s.detached_cpu_ns += own + children;
        s.lifetime.cpu_ns += own + children;
        s.lifetime.self_cpu_ns += own;
    }

    /// The row's totals since start.
    pub(crate) fn lifetime(&self) -> Lifetime {
        let mut total = Lifetime::default();
        for shard in &self.shards {
            total.add(&lock(&shard.stats).lifetime);
        }
        total
    }

    /// Invocations of the row running now.
    pub(crate) fn active(&self) -> u64 {
        let active: i64 = self.shards.iter().map(|s| s.active.load(Relaxed)).sum();
        active.max(0) as u64
    }

    /// The row's figures over every shard, and its running invocations.
    pub(crate) fn merged(&self) -> (Stats, u64) {
        let mut total = Stats::default();
        let mut active = 0i64;
        for shard in &self.shards {
            total.merge(&lock(&shard.stats));
            active += shard.active.load(Relaxed);
        }
        (total, active.max(0) as u64)
    }

    /// Forgets the row's figures (running invocations still finish into it).
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            lock(&shard.stats).clear();
        }
    }
}

static ROWS: Mutex<Vec<&'static Row>> = Mutex::new(Vec::new());

/// Every row created so far.
pub(crate) fn rows() -> Vec<&'static Row> {
    lock(&ROWS).clone()
}

/// The rows of one callsite, one per agent it ran under: a lock-free list
/// whose lookup compares pointers, so finding a row costs no hashing.
#[derive(Debug)]
pub(crate) struct RowList {
    head: AtomicPtr<Row>,
}

impl RowList {
    pub(crate) const fn new() -> Self {
        Self {
            head: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The row of `function` under `agent`, created on first use (the
    /// name is computed only when a row is created).
    pub(crate) fn row_for(
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
            // The name is needed (and, for a fn, computed) only here.
            let row = Box::into_raw(Box::new(Row {
                owner: Owner {
                    function: function(),
                    agent,
                },
                file,
                line,
                next: published(head),
                shards: Default::default(),
            }));
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

/// Turns the list head into a reference.
fn published(ptr: *mut Row) -> Option<&'static Row> {
    // SAFETY: the only non-null values ever stored in `head` are leaked
    // boxes published with Release after full initialisation and never
    // freed; every load pairs with Acquire.
    unsafe { ptr.as_ref() }
}

fn same_agent(a: Option<&'static str>, b: Option<&'static str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => std::ptr::eq(a, b) || a == b,
        _ => false,
    }
}
