//! Aggregates per (function, agent), the ring of recent invocations, and the
//! report built from them.
//!
//! Each row is split into per-thread shards, each behind its own cache-line
//! padded mutex, so threads finishing invocations of the same function do
//! not serialize on one lock; shards are merged only when a report is built.
//! Memory is bounded by the number of rows (callsites x agents, both from
//! the program text) plus the fixed-capacity ring.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, RwLock};

use hdrhistogram::Histogram;

use crate::callsite::Callsite;
use crate::context;
use crate::invocation::{Finished, MemoryUsage};
use crate::labels::{self, Labels};
use crate::report::{
    AgentRow, Dropped, FunctionRow, InvocationRecord, Outcome, Report, SCHEMA_VERSION,
};

const SHARDS: usize = 8;
/// Two significant digits: percentiles within 1%, a few KiB per histogram.
const HISTOGRAM_SIGFIGS: u8 = 2;

#[repr(align(128))]
#[derive(Debug, Default)]
struct Shard {
    active: AtomicI64,
    stats: Mutex<Stats>,
}

#[derive(Debug, Default)]
struct Stats {
    calls: u64,
    errors: u64,
    panics: u64,
    cancelled: u64,
    /// Calls whose CPU was measured; CPU figures are absent when it is 0
    /// while `calls` is not.
    cpu_calls: u64,
    cpu_ns: u64,
    self_cpu_ns: u64,
    wall_ns: u64,
    self_wall_ns: u64,
    polls: u64,
    root_calls: u64,
    root_wall_ns: u64,
    root_cpu_ns: u64,
    detached_cpu_ns: u64,
    /// Calls whose memory was measured (allocator installed).
    memory_calls: u64,
    alloc_bytes: u64,
    allocs: u64,
    self_alloc_bytes: u64,
    self_allocs: u64,
    freed_bytes: u64,
    retained_bytes: i64,
    peak_bytes: u64,
    root_retained_bytes: i64,
    root_peak_bytes: u64,
    alloc_per_call: Option<Histogram<u64>>,
    /// Each call lands in exactly one pair, so it costs two histogram
    /// records: nested calls here, agent roots below. A function's
    /// percentiles merge both pairs; an agent's use the roots only.
    nested_wall: Option<Histogram<u64>>,
    nested_cpu: Option<Histogram<u64>>,
    root_wall: Option<Histogram<u64>>,
    root_cpu: Option<Histogram<u64>>,
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

impl Stats {
    fn merge(&mut self, o: &Stats) {
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
            alloc_per_call,
            nested_wall,
            nested_cpu,
            root_wall,
            root_cpu,
            ..Stats::default()
        };
    }

    fn memory_measured(&self) -> bool {
        self.memory_calls > 0
    }

    fn cpu_measured(&self) -> bool {
        self.calls == 0 || self.cpu_calls > 0
    }

    /// Per-call wall and CPU histograms over every call.
    fn all_calls(&self) -> (Option<Histogram<u64>>, Option<Histogram<u64>>) {
        let mut wall = self.nested_wall.clone();
        merge_into(&mut wall, &self.root_wall);
        let mut cpu = self.nested_cpu.clone();
        merge_into(&mut cpu, &self.root_cpu);
        (wall, cpu)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a stats lock leaves plain counters behind;
    // they are still the best figures there are.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The aggregate row of one callsite under one agent.
#[derive(Debug)]
pub(crate) struct AgentEntry {
    pub(crate) callsite: &'static Callsite,
    pub(crate) agent: Option<&'static str>,
    pub(crate) next: Option<&'static AgentEntry>,
    shards: [Shard; SHARDS],
    /// CPU the sampler attributed to this row, ns.
    sampled_cpu_ns: AtomicU64,
}

#[inline]
fn my_shard() -> usize {
    context::thread_index() as usize % SHARDS
}

impl AgentEntry {
    pub(crate) fn new(
        callsite: &'static Callsite,
        agent: Option<&'static str>,
        next: Option<&'static AgentEntry>,
    ) -> Self {
        Self {
            callsite,
            agent,
            next,
            shards: Default::default(),
            sampled_cpu_ns: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn started(&self) {
        self.shards[my_shard()].active.fetch_add(1, Relaxed);
    }

    pub(crate) fn record(&self, f: &Finished<'_>) {
        let shard = &self.shards[my_shard()];
        shard.active.fetch_sub(1, Relaxed);
        let mut s = lock(&shard.stats);
        s.calls += 1;
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
            if f.frame.agent_root {
                s.root_retained_bytes += m.retained_bytes;
                s.root_peak_bytes = s.root_peak_bytes.max(m.peak_bytes);
            }
            record_into(&mut s.alloc_per_call, m.alloc_bytes);
        }
        let s = &mut *s;
        let (wall_histogram, cpu_histogram) = if f.frame.agent_root {
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

    pub(crate) fn add_sampled_cpu(&self, ns: u64) {
        self.sampled_cpu_ns.fetch_add(ns, Relaxed);
    }

    /// CPU of propagated work that arrived after its invocation ended.
    pub(crate) fn add_detached_cpu(&self, own: u64, children: u64) {
        let mut s = lock(&self.shards[my_shard()].stats);
        s.cpu_ns += own + children;
        s.self_cpu_ns += own;
        s.detached_cpu_ns += own + children;
    }

    fn merged(&self) -> (Stats, u64) {
        let mut total = Stats::default();
        let mut active = 0i64;
        for shard in &self.shards {
            total.merge(&lock(&shard.stats));
            active += shard.active.load(Relaxed);
        }
        (total, active.max(0) as u64)
    }

    fn clear(&self) {
        for shard in &self.shards {
            lock(&shard.stats).clear();
        }
        self.sampled_cpu_ns.store(0, Relaxed);
    }
}

static CALLSITES: Mutex<Vec<&'static Callsite>> = Mutex::new(Vec::new());

pub(crate) fn register(callsite: &'static Callsite) {
    lock(&CALLSITES).push(callsite);
}

// ---- recent invocations ----------------------------------------------------

struct RecentEntry {
    end_ns: u64,
    id: u64,
    parent_id: u64,
    agent: Option<&'static str>,
    function: &'static str,
    outcome: Outcome,
    cpu_ns: Option<u64>,
    self_cpu_ns: Option<u64>,
    wall_ns: u64,
    self_wall_ns: u64,
    polls: u64,
    labels: Option<Labels>,
    memory: Option<MemoryUsage>,
}

impl RecentEntry {
    fn to_record(&self) -> InvocationRecord {
        InvocationRecord {
            id: self.id,
            parent_id: (self.parent_id != 0).then_some(self.parent_id),
            agent: self.agent.map(str::to_owned),
            function: self.function.to_owned(),
            outcome: self.outcome,
            cpu_ns: self.cpu_ns,
            self_cpu_ns: self.self_cpu_ns,
            wall_ns: self.wall_ns,
            self_wall_ns: self.self_wall_ns,
            polls: self.polls,
            labels: self
                .labels
                .iter()
                .flat_map(|l| l.iter())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            alloc_bytes: self.memory.map(|m| m.alloc_bytes),
            allocs: self.memory.map(|m| m.allocs),
            freed_bytes: self.memory.map(|m| m.freed_bytes),
            retained_bytes: self.memory.map(|m| m.retained_bytes),
            peak_bytes: self.memory.map(|m| m.peak_bytes),
        }
    }
}

/// One thread shard of the ring: fixed slots written round-robin, so a
/// push is a lock, a move into a slot and an index bump.
struct Ring {
    slots: Vec<Option<RecentEntry>>,
    next: usize,
}

impl Ring {
    const fn new() -> Self {
        Self {
            slots: Vec::new(),
            next: 0,
        }
    }

    fn resize(&mut self, capacity: usize) {
        let mut kept: Vec<RecentEntry> = self.drain_oldest_first();
        let excess = kept.len().saturating_sub(capacity);
        kept.drain(..excess);
        self.slots = Vec::with_capacity(capacity);
        self.slots.extend(kept.into_iter().map(Some));
        self.next = self.slots.len() % capacity.max(1);
        self.slots.resize_with(capacity, || None);
    }

    fn drain_oldest_first(&mut self) -> Vec<RecentEntry> {
        let (newer, older) = self.slots.split_at_mut(self.next);
        older
            .iter_mut()
            .chain(newer.iter_mut())
            .filter_map(Option::take)
            .collect()
    }

    fn iter(&self) -> impl Iterator<Item = &RecentEntry> {
        self.slots.iter().flatten()
    }
}

#[repr(align(128))]
struct RecentShard(Mutex<Ring>);

static RECENT: [RecentShard; SHARDS] = [const { RecentShard(Mutex::new(Ring::new())) }; SHARDS];
static RECENT_CAPACITY: AtomicUsize = AtomicUsize::new(DEFAULT_RECENT);
static RECENT_EVICTED: AtomicU64 = AtomicU64::new(0);
const DEFAULT_RECENT: usize = 1024;

pub(crate) fn set_recent_capacity(capacity: usize) {
    RECENT_CAPACITY.store(capacity, Relaxed);
    for shard in &RECENT {
        lock(&shard.0).resize(capacity.div_ceil(SHARDS));
    }
}

pub(crate) fn push_recent(f: &Finished<'_>) {
    let frame = f.frame;
    let entry = RecentEntry {
        end_ns: f.end_ns,
        id: frame.id,
        parent_id: frame.parent_id,
        agent: frame.agent,
        function: frame.callsite.function(),
        outcome: f.outcome,
        cpu_ns: f.cpu_ns,
        self_cpu_ns: f.self_cpu_ns,
        wall_ns: f.wall_ns,
        self_wall_ns: f.self_wall_ns,
        polls: f.polls,
        labels: frame.labels.clone(),
        memory: f.memory,
    };
    let mut ring = lock(&RECENT[my_shard()].0);
    if ring.slots.is_empty() {
        let capacity = RECENT_CAPACITY.load(Relaxed);
        if capacity == 0 {
            return;
        }
        ring.resize(capacity.div_ceil(SHARDS));
    }
    let next = ring.next;
    if ring.slots[next].replace(entry).is_some() {
        RECENT_EVICTED.fetch_add(1, Relaxed);
    }
    ring.next = if next + 1 == ring.slots.len() {
        0
    } else {
        next + 1
    };
}

/// The most recent finished invocations (up to the configured capacity),
/// oldest first.
pub fn recent_invocations() -> Vec<InvocationRecord> {
    // Shards and wrapped rings are not in time order; the end times are.
    let mut all: Vec<(u64, InvocationRecord)> = RECENT
        .iter()
        .flat_map(|shard| {
            lock(&shard.0)
                .iter()
                .map(|e| (e.end_ns, e.to_record()))
                .collect::<Vec<_>>()
        })
        .collect();
    all.sort_by_key(|(end, _)| *end);
    all.into_iter().map(|(_, record)| record).collect()
}

/// A recent invocation by id, if it is still in the ring.
pub fn invocation(id: u64) -> Option<InvocationRecord> {
    RECENT.iter().find_map(|shard| {
        lock(&shard.0)
            .iter()
            .find(|e| e.id == id)
            .map(RecentEntry::to_record)
    })
}

// ---- callsites for `.profiled(label)` --------------------------------------

const MAX_DYNAMIC_CALLSITES: usize = 1024;
static DYNAMIC: RwLock<Option<HashMap<&'static str, &'static Callsite>>> = RwLock::new(None);
static DYNAMIC_OVERFLOW: AtomicU64 = AtomicU64::new(0);
static OVERFLOW_CALLSITE: Callsite =
    Callsite::new("agentprof::__overflow__", None, file!(), line!());

pub(crate) fn dynamic_callsite(function: &'static str) -> &'static Callsite {
    if let Some(found) = DYNAMIC
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(function).copied())
    {
        return found;
    }
    let mut map = DYNAMIC.write().unwrap_or_else(|e| e.into_inner());
    let map = map.get_or_insert_with(HashMap::new);
    if let Some(found) = map.get(function) {
        return found;
    }
    if map.len() >= MAX_DYNAMIC_CALLSITES {
        DYNAMIC_OVERFLOW.fetch_add(1, Relaxed);
        return &OVERFLOW_CALLSITE;
    }
    let callsite: &'static Callsite =
        Box::leak(Box::new(Callsite::new(function, None, "<future>", 0)));
    map.insert(function, callsite);
    callsite
}

// ---- agent names from strings ------------------------------------------------

const MAX_AGENT_NAMES: usize = 1024;
static AGENT_NAMES: Mutex<BTreeMap<String, &'static str>> = Mutex::new(BTreeMap::new());

/// A `'static` agent name for a runtime string, interned within a bound.
pub(crate) fn agent_name(name: &str) -> &'static str {
    let mut names = lock(&AGENT_NAMES);
    if let Some(found) = names.get(name) {
        return found;
    }
    if names.len() >= MAX_AGENT_NAMES {
        labels::OVERFLOWED.fetch_add(1, Relaxed);
        return labels::OVERFLOW_VALUE;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(name.to_owned(), leaked);
    leaked
}

/// The callsite of invocations started through `ResourceAttribution` for
/// `agent`; one per interned agent name, so bounded like them.
pub(crate) fn explicit_callsite(agent: &'static str) -> &'static Callsite {
    static EXPLICIT: Mutex<BTreeMap<&'static str, &'static Callsite>> = Mutex::new(BTreeMap::new());
    lock(&EXPLICIT).entry(agent).or_insert_with(|| {
        Box::leak(Box::new(Callsite::new(
            "agentprof::invocation",
            Some(agent),
            file!(),
            line!(),
        )))
    })
}

// ---- report ----------------------------------------------------------------

fn quantile(h: &Option<Histogram<u64>>, q: f64) -> u64 {
    h.as_ref().map_or(0, |h| h.value_at_quantile(q))
}

/// The per-function and per-agent report of everything recorded since the
/// last [`reset`].
pub fn report() -> Report {
    let callsites: Vec<&'static Callsite> = lock(&CALLSITES).clone();
    let mut functions = Vec::new();
    let mut agents: BTreeMap<Option<&'static str>, (Stats, u64, Option<u64>)> = BTreeMap::new();
    let mut detached = 0;
    for callsite in callsites {
        for entry in callsite.entries() {
            let (s, active) = entry.merged();
            let sampled_cpu = entry.sampled_cpu_ns.load(Relaxed);
            if s.calls == 0 && active == 0 && s.detached_cpu_ns == 0 && sampled_cpu == 0 {
                continue;
            }
            let sampled = crate::cpu::SAMPLED.load(Relaxed).then_some(sampled_cpu);
            detached += s.detached_cpu_ns;
            let cpu = s.cpu_measured();
            let (wall_histogram, cpu_histogram) = s.all_calls();
            let mem = s.memory_measured();
            functions.push(FunctionRow {
                agent: entry.agent.map(str::to_owned),
                function: callsite.function().to_owned(),
                file: callsite.file().to_owned(),
                line: callsite.line(),
                calls: s.calls,
                active,
                errors: s.errors,
                panics: s.panics,
                cancelled: s.cancelled,
                cpu_ns: cpu.then_some(s.cpu_ns),
                self_cpu_ns: cpu.then_some(s.self_cpu_ns),
                wall_ns: s.wall_ns,
                self_wall_ns: s.self_wall_ns,
                wall_ns_p50: quantile(&wall_histogram, 0.5),
                wall_ns_p90: quantile(&wall_histogram, 0.9),
                wall_ns_p99: quantile(&wall_histogram, 0.99),
                wall_ns_max: wall_histogram.as_ref().map_or(0, |h| h.max()),
                cpu_ns_p50: cpu.then(|| quantile(&cpu_histogram, 0.5)),
                cpu_ns_p90: cpu.then(|| quantile(&cpu_histogram, 0.9)),
                cpu_ns_p99: cpu.then(|| quantile(&cpu_histogram, 0.99)),
                cpu_ns_max: cpu.then(|| cpu_histogram.as_ref().map_or(0, |h| h.max())),
                polls: s.polls,
                sampled_cpu_ns: sampled,
                alloc_bytes: mem.then_some(s.alloc_bytes),
                allocs: mem.then_some(s.allocs),
                freed_bytes: mem.then_some(s.freed_bytes),
                retained_bytes: mem.then_some(s.retained_bytes),
                peak_bytes: mem.then_some(s.peak_bytes),
                alloc_bytes_p50: mem.then(|| quantile(&s.alloc_per_call, 0.5)),
                alloc_bytes_p99: mem.then(|| quantile(&s.alloc_per_call, 0.99)),
            });
            let slot = agents.entry(entry.agent).or_default();
            slot.0.merge(&s);
            slot.1 += active;
            slot.2 = match (slot.2, sampled) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
        }
    }
    functions.sort_by(|a, b| {
        b.cpu_ns
            .unwrap_or(0)
            .cmp(&a.cpu_ns.unwrap_or(0))
            .then(b.wall_ns.cmp(&a.wall_ns))
            .then_with(|| a.function.cmp(&b.function))
    });
    let mut agent_rows: Vec<AgentRow> = agents
        .into_iter()
        .map(|(agent, (s, active, sampled))| {
            let cpu = s.cpu_measured();
            let mem = s.memory_measured();
            AgentRow {
                agent: agent.map(str::to_owned),
                calls: s.calls,
                root_calls: s.root_calls,
                active,
                errors: s.errors,
                panics: s.panics,
                cancelled: s.cancelled,
                cpu_ns: cpu.then_some(s.self_cpu_ns),
                wall_ns: s.root_wall_ns,
                wall_ns_p50: quantile(&s.root_wall, 0.5),
                wall_ns_p99: quantile(&s.root_wall, 0.99),
                cpu_ns_p99: cpu.then(|| quantile(&s.root_cpu, 0.99)),
                avg_cpu_ns: cpu.then(|| s.root_cpu_ns.checked_div(s.root_calls).unwrap_or(0)),
                avg_wall_ns: s.root_wall_ns.checked_div(s.root_calls).unwrap_or(0),
                polls: s.polls,
                sampled_cpu_ns: sampled,
                alloc_bytes: mem.then_some(s.self_alloc_bytes),
                allocs: mem.then_some(s.self_allocs),
                retained_bytes: mem.then_some(s.root_retained_bytes),
                peak_bytes: mem.then_some(s.root_peak_bytes),
            }
        })
        .collect();
    agent_rows.sort_by(|a, b| {
        b.cpu_ns
            .unwrap_or(0)
            .cmp(&a.cpu_ns.unwrap_or(0))
            .then(b.wall_ns.cmp(&a.wall_ns))
    });
    let memory = crate::alloc::memory_stats();
    Report {
        schema_version: SCHEMA_VERSION,
        functions,
        agents: agent_rows,
        memory_note: memory
            .is_none()
            .then(|| crate::alloc::INSTALL_HINT.to_owned()),
        memory,
        system_memory: crate::system::system_memory().ok(),
        memory_timeline: crate::system::timeline(),
        heap_growth: crate::heap::growth(),
        dropped: Dropped {
            label_values_truncated: labels::TRUNCATED.load(Relaxed),
            label_values_overflowed: labels::OVERFLOWED.load(Relaxed),
            recent_invocations_evicted: RECENT_EVICTED.load(Relaxed),
            dynamic_functions_overflowed: DYNAMIC_OVERFLOW.load(Relaxed),
            detached_cpu_ns: detached,
        },
    }
}

/// Clears one callsite's rows (the profiler's own calibration calls).
#[cfg(feature = "metrics")]
pub(crate) fn forget(callsite: &'static Callsite) {
    for entry in callsite.entries() {
        entry.clear();
    }
}

/// Clears aggregates, the recent-invocation ring and drop counters.
/// Invocations running now still finish into the cleared aggregates.
pub fn reset() {
    let callsites: Vec<&'static Callsite> = lock(&CALLSITES).clone();
    for callsite in callsites {
        for entry in callsite.entries() {
            entry.clear();
        }
    }
    for shard in &RECENT {
        let mut ring = lock(&shard.0);
        ring.slots.iter_mut().for_each(|slot| *slot = None);
        ring.next = 0;
    }
    RECENT_EVICTED.store(0, Relaxed);
    DYNAMIC_OVERFLOW.store(0, Relaxed);
    labels::reset();
}
