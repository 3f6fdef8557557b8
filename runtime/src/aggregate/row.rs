//! Aggregate rows: one per (function, agent) pair.
//!
//! A row's figures are split into per-thread shards, each behind its own
//! mutex, so threads finishing invocations of the same function do not
//! serialize on one lock; shards are merged only when a report is built.
//! Shard 0 exists from the start; another is created when a thread that
//! maps to it first drains into the row, within a byte budget shared by all
//! rows ([`EXTRA_SHARD_BUDGET`]); past it, such threads use shard 0.
//!
//! Memory is bounded: a shard is at most 218 KiB (its counters and seven
//! histograms of at most 31 KiB each), there are at most [`MAX_ROWS`] rows
//! plus one overflow row per agent, and extra shards stay within the
//! budget. Past the row cap, a new (function, agent) pair is charged to its
//! agent's overflow row (function `__overflow__`), so agent totals stay
//! whole, and counted. Rows are never freed.

use std::sync::atomic::{
    AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering, Ordering::Relaxed,
};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::histogram::{self, Histogram, SignedHistogram};
use super::labels::Labels;
use crate::model::Outcome;
use crate::thread::slot::{self, Owner};

/// Shards of each row and of the recent ring: threads that finish
/// invocations at once mostly land on different locks.
pub(super) const SHARDS: usize = 8;
/// (function, agent) rows at most, overflow rows aside.
pub(crate) const MAX_ROWS: usize = 2048;
/// The most one shard of a row takes: seven histograms at their largest
/// (31 KiB each) and its counters.
pub(crate) const SHARD_BYTES: usize = 7 * 31 * 1024 + 2048;
/// Bytes that shards beyond every row's first may take, all rows together.
pub(crate) const EXTRA_SHARD_BUDGET: usize = 64 << 20;
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
    /// Whether it was among its row's slowest of the window when it
    /// finished (see [`Row::is_exemplar`]).
    pub(crate) exemplar: bool,
    /// Whether calls ran inside it (directly or through propagation), so
    /// that its callee tree is looked for.
    pub(crate) had_callees: bool,
}

/// The trace ids an exemplar keeps: handed over apart from its [`Call`]
/// (which stays small: it is moved at every finish), and only when the
/// span has them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ExemplarIds {
    pub(crate) span_id: u64,
    pub(crate) trace_id: u128,
}

#[repr(align(128))]
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
    /// Agent-root calls by outcome: an agent's errors are its root calls
    /// that failed, so an `Err` propagated by `?` through two functions of
    /// one agent counts once.
    pub(crate) root_errors: u64,
    pub(crate) root_panics: u64,
    pub(crate) root_cancelled: u64,
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
    /// Largest net change (allocated minus freed) of one call, exact.
    pub(crate) net_bytes_max: Option<i64>,
    pub(crate) root_net_bytes_max: Option<i64>,
    /// Longest call and most CPU in one call, exact (the histograms stop
    /// resolving at 68 s).
    pub(crate) wall_ns_max: u64,
    pub(crate) cpu_ns_max: u64,
    pub(crate) histograms: Histograms,
}

/// Each call lands in exactly one pair, so it costs two histogram records:
/// nested calls here, agent roots below. A function's percentiles merge
/// both pairs; an agent's use the roots only.
#[derive(Clone, Debug, Default)]
pub(crate) struct Histograms {
    pub(crate) nested_wall: Option<Histogram>,
    pub(crate) nested_cpu: Option<Histogram>,
    pub(crate) root_wall: Option<Histogram>,
    pub(crate) root_cpu: Option<Histogram>,
    pub(crate) alloc_per_call: Option<Histogram>,
    /// Net memory change per call: of nested calls, and of agent roots.
    pub(crate) nested_net: SignedHistogram,
    pub(crate) root_net: SignedHistogram,
}

impl Histograms {
    fn each(&mut self) -> [&mut Option<Histogram>; 5] {
        [
            &mut self.nested_wall,
            &mut self.nested_cpu,
            &mut self.root_wall,
            &mut self.root_cpu,
            &mut self.alloc_per_call,
        ]
    }

    /// Adds `o`'s histograms into these.
    pub(crate) fn add(&mut self, o: &Histograms) {
        histogram::add(&mut self.nested_wall, &o.nested_wall);
        histogram::add(&mut self.nested_cpu, &o.nested_cpu);
        histogram::add(&mut self.root_wall, &o.root_wall);
        histogram::add(&mut self.root_cpu, &o.root_cpu);
        histogram::add(&mut self.alloc_per_call, &o.alloc_per_call);
        self.nested_net.add(&o.nested_net);
        self.root_net.add(&o.root_net);
    }
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
        self.root_errors += o.root_errors;
        self.root_panics += o.root_panics;
        self.root_cancelled += o.root_cancelled;
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
        // `None` orders below any value: the larger of two maxima that may
        // not exist yet.
        self.net_bytes_max = self.net_bytes_max.max(o.net_bytes_max);
        self.root_net_bytes_max = self.root_net_bytes_max.max(o.root_net_bytes_max);
        self.wall_ns_max = self.wall_ns_max.max(o.wall_ns_max);
        self.cpu_ns_max = self.cpu_ns_max.max(o.cpu_ns_max);
    }

    fn clear(&mut self) {
        let mut histograms = std::mem::take(&mut self.histograms);
        for h in histograms.each() {
            histogram::reset(h);
        }
        histograms.nested_net.reset();
        histograms.root_net.reset();
        *self = Stats {
            lifetime: self.lifetime,
            histograms,
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

/// Bytes reserved by shards beyond rows' first.
static EXTRA_SHARD_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The aggregate row of one callsite under one agent.
#[derive(Debug)]
pub(crate) struct Row {
    /// Names the row; CPU samples and heap samples point here.
    pub(crate) owner: Owner,
    pub(crate) file: &'static str,
    pub(crate) line: u32,
    next: Option<&'static Row>,
    active: [ActiveShard; ACTIVE_SHARDS],
    /// The CPU and wall a call must exceed to be one of the row's
    /// exemplars this window (the K-th slowest kept so far; 0 until K are
    /// kept; `u64::MAX` when exemplars are off). Raised as calls drain.
    exemplar_floor: [AtomicU64; 2],
    first: StatsShard,
    extra: [OnceLock<Box<StatsShard>>; SHARDS - 1],
}

/// One thread shard of a row's figures, on cache lines of its own: the
/// drain writes a score of its counters per call, and a shard allocated
/// next to another thread's (or sharing a line with the row's floors,
/// which every finish reads) would make the two threads take turns
/// owning that line.
#[repr(align(128))]
#[derive(Debug, Default)]
struct StatsShard(Mutex<Stats>);

/// Shards of a row's running-invocation counter.
const ACTIVE_SHARDS: usize = 4;

/// This thread's shard.
#[inline]
pub(super) fn my_shard() -> usize {
    slot::thread_index() as usize % SHARDS
}

impl Row {
    fn new(owner: Owner, file: &'static str, line: u32, next: Option<&'static Row>) -> Self {
        Row {
            owner,
            file,
            line,
            next,
            active: Default::default(),
            exemplar_floor: [
                AtomicU64::new(super::exemplars::initial_floor()),
                AtomicU64::new(super::exemplars::initial_floor()),
            ],
            first: StatsShard::default(),
            extra: Default::default(),
        }
    }

    #[inline]
    pub(crate) fn started(&self) {
        self.active[my_shard() % ACTIVE_SHARDS]
            .0
            .fetch_add(1, Relaxed);
    }

    /// Whether a call that took `cpu_ns` and `wall_ns` is among this row's
    /// slowest of the window so far: two loads, on every finish.
    #[inline]
    pub(crate) fn is_exemplar(&self, cpu_ns: Option<u64>, wall_ns: u64) -> bool {
        wall_ns > self.exemplar_floor[1].load(Relaxed)
            || cpu_ns.is_some_and(|cpu| cpu > self.exemplar_floor[0].load(Relaxed))
    }

    /// Sets the CPU and wall a call must exceed to be an exemplar.
    pub(super) fn set_exemplar_floor(&self, cpu_ns: u64, wall_ns: u64) {
        self.exemplar_floor[0].store(cpu_ns, Relaxed);
        self.exemplar_floor[1].store(wall_ns, Relaxed);
    }

    /// This thread's shard of the row's figures: created on first use
    /// within the budget, else the first shard.
    fn shard(&self) -> &Mutex<Stats> {
        let index = my_shard();
        if index == 0 {
            return &self.first.0;
        }
        let slot = &self.extra[index - 1];
        if let Some(shard) = slot.get() {
            return &shard.0;
        }
        if EXTRA_SHARD_BYTES.fetch_add(SHARD_BYTES, Relaxed) + SHARD_BYTES > EXTRA_SHARD_BUDGET {
            EXTRA_SHARD_BYTES.fetch_sub(SHARD_BYTES, Relaxed);
            return &self.first.0;
        }
        let mut created = false;
        let shard = slot.get_or_init(|| {
            created = true;
            Box::default()
        });
        if !created {
            EXTRA_SHARD_BYTES.fetch_sub(SHARD_BYTES, Relaxed);
        }
        &shard.0
    }

    /// Every shard that exists.
    fn shards(&self) -> impl Iterator<Item = &Mutex<Stats>> {
        std::iter::once(&self.first.0).chain(
            self.extra
                .iter()
                .filter_map(|s| s.get().map(|shard| &shard.0)),
        )
    }

    /// This thread's shard of the row's figures, locked.
    pub(super) fn lock_stats(&'static self) -> MutexGuard<'static, Stats> {
        lock(self.shard())
    }

    /// `calls` invocations of this row are no longer running (their
    /// figures are recorded): one atomic step for a drained run of them.
    #[inline]
    pub(super) fn finished(&self, calls: usize) {
        self.active[my_shard() % ACTIVE_SHARDS]
            .0
            .fetch_sub(calls as _, Relaxed);
    }

    pub(super) fn record(&'static self, f: &Call) {
        self.record_locked(&mut self.lock_stats(), f);
        self.finished(1);
    }

    /// Adds a finished call to `s`, a locked shard of this row.
    /// The caller then counts the call [`finished`](Self::finished).
    pub(super) fn record_locked(&self, s: &mut Stats, f: &Call) {
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
            s.cpu_ns_max = s.cpu_ns_max.max(cpu);
        }
        s.wall_ns_max = s.wall_ns_max.max(f.wall_ns);
        let h = &mut s.histograms;
        if let Some(m) = &f.memory {
            s.memory_calls += 1;
            s.alloc_bytes += m.alloc_bytes;
            s.allocs += m.allocs;
            s.self_alloc_bytes += m.self_alloc_bytes;
            s.self_allocs += m.self_allocs;
            s.freed_bytes += m.freed_bytes;
            s.retained_bytes += m.retained_bytes;
            s.peak_bytes = s.peak_bytes.max(m.peak_bytes);
            s.net_bytes_max = s.net_bytes_max.max(Some(m.retained_bytes));
            if f.agent_root {
                s.root_retained_bytes += m.retained_bytes;
                s.root_peak_bytes = s.root_peak_bytes.max(m.peak_bytes);
                s.root_net_bytes_max = s.root_net_bytes_max.max(Some(m.retained_bytes));
                h.root_net.record(m.retained_bytes);
            } else {
                h.nested_net.record(m.retained_bytes);
            }
            histogram::record(&mut h.alloc_per_call, m.alloc_bytes);
        }
        let (wall_histogram, cpu_histogram) = if f.agent_root {
            s.root_calls += 1;
            match f.outcome {
                Outcome::Ok => {}
                Outcome::Error => s.root_errors += 1,
                Outcome::Panicked => s.root_panics += 1,
                Outcome::Cancelled => s.root_cancelled += 1,
            }
            s.root_wall_ns += f.wall_ns;
            s.root_cpu_ns += f.cpu_ns.unwrap_or(0);
            (&mut h.root_wall, &mut h.root_cpu)
        } else {
            (&mut h.nested_wall, &mut h.nested_cpu)
        };
        histogram::record(wall_histogram, f.wall_ns);
        if let Some(cpu) = f.cpu_ns {
            histogram::record(cpu_histogram, cpu);
        }
    }

    /// CPU of propagated work that arrived after its invocation ended.
    pub(crate) fn add_detached_cpu(&self, own: u64, children: u64) {
        let mut s = lock(self.shard());
        s.cpu_ns += own + children;
        s.self_cpu_ns += own;
        s.detached_cpu_ns += own + children;
        s.lifetime.cpu_ns += own + children;
        s.lifetime.self_cpu_ns += own;
    }

    /// The row's totals since start.
    pub(crate) fn lifetime(&self) -> Lifetime {
        let mut total = Lifetime::default();
        for shard in self.shards() {
            total.add(&lock(shard).lifetime);
        }
        total
    }

    /// Invocations of the row running now.
    pub(crate) fn active(&self) -> u64 {
        let active: i64 = self.active.iter().map(|s| s.0.load(Relaxed)).sum();
        active.max(0) as u64
    }

    /// The row's counters over every shard, its histograms merged, and its
    /// running invocations.
    pub(crate) fn merged(&self) -> (Stats, u64) {
        let mut total = Stats::default();
        for shard in self.shards() {
            let shard = lock(shard);
            total.add_counters(&shard);
            total.histograms.add(&shard.histograms);
        }
        (total, self.active())
    }

    /// Forgets the row's figures (running invocations still finish into it).
    pub(crate) fn clear(&self) {
        for shard in self.shards() {
            lock(shard).clear();
        }
    }

    /// Forgets the row's figures and its lifetime totals too, so that not
    /// even a window's difference shows them: for the profiler's own
    /// measurements, which are not the application's calls.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn forget(&self) {
        for shard in self.shards() {
            let mut shard = lock(shard);
            shard.clear();
            shard.lifetime = Lifetime::default();
        }
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
    rows()
        .iter()
        .map(|r| r.owner.key())
        .chain([slot::PROFILER_OWNER.key()])
        .collect()
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

/// Whether two agent names are the same: by address first (a callee of
/// the same agent usually holds the very literal its caller's row does).
#[inline]
pub(crate) fn same_agent(a: Option<&'static str>, b: Option<&'static str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => std::ptr::eq(a, b) || a == b,
        _ => false,
    }
}

/// A row of its own, for unit tests of the stores.
#[cfg(test)]
pub(crate) fn test_row(function: &'static str) -> &'static Row {
    Box::leak(Box::new(Row::new(
        Owner {
            function,
            agent: Some("test"),
        },
        file!(),
        line!(),
        None,
    )))
}

#[cfg(test)]
impl Call {
    /// A finished call of `row` that took `cpu_ns` (and as much wall).
    pub(crate) fn test(row: &'static Row, id: u64, cpu_ns: u64) -> Call {
        Call {
            row,
            id,
            parent_id: 0,
            agent_root: true,
            labels: None,
            outcome: Outcome::Ok,
            end_ns: id * 1_000_000,
            wall_ns: cpu_ns,
            self_wall_ns: cpu_ns,
            cpu_ns: Some(cpu_ns),
            self_cpu_ns: Some(cpu_ns),
            polls: 0,
            memory: None,
            exemplar: false,
            had_callees: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_shards_stay_within_their_stated_sizes() {
        // A row's own memory (the histograms are on the heap, bounded by
        // `SHARD_BYTES` per shard).
        assert!(
            std::mem::size_of::<Row>() <= 2048,
            "{}",
            std::mem::size_of::<Row>()
        );
        assert!(std::mem::size_of::<Stats>() + 7 * 31 * 1024 <= SHARD_BYTES);
    }

    #[test]
    fn threads_racing_to_create_a_callsite_row_share_one_per_agent() {
        static LIST: RowList = RowList::new();
        let agents: [Option<&'static str>; 3] = [Some("rowlist-a"), Some("rowlist-b"), None];
        let start = std::sync::Barrier::new(8);
        let rows: Vec<Vec<usize>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        agents
                            .iter()
                            .map(|agent| {
                                let row =
                                    LIST.row_for(|| "rowlist::race", *agent, file!(), line!());
                                assert!(same_agent(row.owner.agent, *agent));
                                row as *const Row as usize
                            })
                            .collect()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert!(rows.windows(2).all(|w| w[0] == w[1]), "{rows:?}");
        assert_eq!(LIST.iter().count(), agents.len());
    }

    #[test]
    fn an_agent_name_built_at_run_time_finds_the_row_of_the_same_name() {
        static LIST: RowList = RowList::new();
        let literal = LIST.row_for(|| "rowlist::names", Some("planner"), file!(), line!());
        let built: &'static str = format!("plan{}", "ner").leak();
        let again = LIST.row_for(|| "rowlist::names", Some(built), file!(), line!());
        assert!(std::ptr::eq(literal, again));
        assert_eq!(LIST.iter().count(), 1);
    }

    #[test]
    fn agents_sharing_a_cache_slot_still_get_their_own_rows() {
        static LIST: RowList = RowList::new();
        // More agents than cache slots: some share one, and each lookup
        // must still check the agent it found there.
        let agents: Vec<&'static str> = (0..4 * CACHE_SLOTS)
            .map(|i| &*format!("rowlist-agent-{i}").leak())
            .collect();
        for _ in 0..3 {
            for agent in &agents {
                let row = LIST.row_for(|| "rowlist::slots", Some(agent), file!(), line!());
                assert_eq!(row.owner.agent, Some(*agent));
            }
        }
        assert_eq!(LIST.iter().count(), agents.len());
    }
}
