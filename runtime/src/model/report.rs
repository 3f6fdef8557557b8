//! The per-function and per-agent report's data model and its JSON form.
//!
//! The JSON schema is stable: fields are only ever added. A figure that was
//! not measured (CPU time where the platform has no thread CPU clock) is
//! `null`, never `0`.
//!
//! Version 2 added what running invocations consumed so far (`running` in
//! function and agent rows, `dropped.running_untracked`) and, in the
//! reports of continuous windows, the window's own figures (`window`).
//! Readers of version 1 files get those as empty defaults.

use serde::{Deserialize, Serialize};

/// Version of the JSON schema written by [`Report::to_json`].
pub const SCHEMA_VERSION: u32 = 2;

/// How an invocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Returned normally (for `Result` functions: returned `Ok`).
    Ok,
    /// Returned `Err`.
    Error,
    /// Panicked.
    Panicked,
    /// The future was dropped before it completed.
    Cancelled,
}

impl Outcome {
    /// The name used in JSON and span fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Panicked => "panicked",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Process-wide allocation totals.
///
/// Threads fold their counts in batches, so a reading lags the truth by at
/// most 256 KiB allocated and 256 KiB freed per thread (the reading thread's
/// own counts are folded first); `peak_usage` is the highest `current_usage`
/// seen at a fold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Bytes allocated since start (realloc growth included).
    pub total_allocated: u64,
    /// Bytes freed since start (realloc shrinkage included).
    pub total_freed: u64,
    /// Bytes in use now.
    pub current_usage: u64,
    /// Highest `current_usage` observed.
    pub peak_usage: u64,
    /// Allocations.
    pub allocation_count: u64,
    /// Deallocations.
    pub deallocation_count: u64,
    /// Resizes (`realloc`).
    pub reallocation_count: u64,
}

/// How samples are triggered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerMode {
    /// A CPU-time timer per thread.
    PerThread,
    /// One process-wide `ITIMER_PROF` timer.
    ProcessWide,
}

/// What the heap profiler could not keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeapDropped {
    /// Samples whose stack found no free bucket.
    pub stacks: u64,
    /// Sampled allocations the side table had no room for (their frees go
    /// unmatched, so they stay "in use").
    pub live: u64,
}

/// How the thread CPU clock is read at invocation transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CpuClock {
    /// In user space: a perf_event task-clock page and the TSC, with one
    /// system call after each time the thread was switched out.
    #[serde(rename = "perf-mmap")]
    PerfMmap,
    /// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` at every transition.
    #[serde(rename = "syscall")]
    Syscall,
}

impl CpuClock {
    /// The name the JSON report uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            CpuClock::PerfMmap => "perf-mmap",
            CpuClock::Syscall => "syscall",
        }
    }
}

/// Everything agentprof knows about the invocations so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`] when written by this version.
    pub schema_version: u32,
    /// One row per (agent, function) pair, sorted by total CPU, descending.
    pub functions: Vec<FunctionRow>,
    /// One row per agent (and one with `agent: null` for work outside any
    /// agent), sorted by CPU, descending.
    pub agents: Vec<AgentRow>,
    /// What bounded stores had to cut.
    pub dropped: Dropped,
    /// Process allocation totals; `null` without the counting allocator.
    pub memory: Option<MemoryStats>,
    /// How to get memory figures, when they are absent.
    pub memory_note: Option<String>,
    /// Resident and virtual size when the report was made.
    pub system_memory: Option<SystemMemoryInfo>,
    /// Recent RSS and allocator readings, oldest first (empty unless the
    /// timeline sampler runs).
    pub memory_timeline: Vec<MemoryTimelinePoint>,
    /// Where sampled in-use heap grew most between the last two heap
    /// snapshots (empty unless the heap profiler took two).
    pub heap_growth: Vec<HeapGrowth>,
    /// How invocation CPU was read (absent in the opt-out build).
    #[serde(default)]
    pub cpu_clock: Option<CpuClock>,
    /// In a continuous window's report: what was spent during that window
    /// alone (absent in reports made on demand).
    #[serde(default)]
    pub window: Option<WindowFigures>,
    /// Whether new invocations were being recorded when the report was
    /// made (false: the kill switch, the configuration or `set_enabled`
    /// turned recording off).
    #[serde(default = "recording_default")]
    pub recording: bool,
    /// What agentprof itself uses (absent in the opt-out build).
    #[serde(default)]
    pub profiler: Option<ProfilerCost>,
}

/// What agentprof itself uses, beside the application: the answer to
/// "what does profiling cost me?" without a second run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfilerCost {
    /// Heap agentprof holds now that it allocated itself (its threads, and
    /// its work on the application's threads): the heap profiler's
    /// estimate, as the `agent = "agentprof"` samples of heap profiles;
    /// `null` unless the heap profiler runs.
    pub heap_inuse_bytes: Option<u64>,
    /// Heap reserved up front for the bounded tables: the heap profiler's
    /// stack and live tables and the symbol index (exact).
    pub reserved_bytes: u64,
    /// CPU agentprof's own threads (collector, exporter, sampler drainer,
    /// timer watcher, endpoint, agents) used since they started, ns.
    pub cpu_ns: u64,
    /// CPU of agentprof's own threads between the last two window cuts, ns.
    pub window_cpu_ns: Option<u64>,
    /// CPU the collector's first window cut took (symbols read then), ns.
    pub first_cut_cpu_ns: Option<u64>,
    /// CPU the collector's latest window cut took, ns.
    pub last_cut_cpu_ns: Option<u64>,
    /// agentprof's threads running now.
    pub threads: u32,
    /// File descriptors (and as many mapped pages) the user-space CPU
    /// clock holds: one per thread that runs instrumented code.
    pub clock_fds: u64,
}

fn recording_default() -> bool {
    true
}

/// What invocations still running have consumed so far, kept apart from
/// the finished calls so percentiles stay about finished calls.
///
/// Covers the long-lived running invocations: async ones that have awaited
/// at least once, and any that has run over a millisecond when one of its
/// instrumented callees returned. Figures are as of each invocation's last
/// transition (a poll or a callee's return); finished callees are included,
/// running ones are in their own rows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunningFigures {
    /// Running invocations these figures cover.
    pub invocations: u64,
    /// CPU so far, finished callees included, ns.
    pub cpu_ns: Option<u64>,
    /// Own CPU so far, ns.
    pub self_cpu_ns: Option<u64>,
    /// Time since they started, summed, ns.
    pub wall_ns: u64,
    /// Time since the oldest one started, ns.
    pub longest_wall_ns: u64,
    /// Polls so far.
    pub polls: u64,
    /// Bytes allocated so far (`null` without the allocator).
    pub alloc_bytes: Option<u64>,
    /// Allocations so far.
    pub allocs: Option<u64>,
    /// Bytes freed so far.
    pub freed_bytes: Option<u64>,
    /// Allocated minus freed so far.
    pub retained_bytes: Option<i64>,
}

/// One invocation still running.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningInvocation {
    /// Process-unique id.
    pub id: u64,
    /// Id of the invocation it runs inside, if any.
    pub parent_id: Option<u64>,
    /// Agent charged.
    pub agent: Option<String>,
    /// Function label.
    pub function: String,
    /// Time since it started, ns.
    pub wall_ns: u64,
    /// CPU so far, finished callees included, ns.
    pub cpu_ns: Option<u64>,
    /// Own CPU so far, ns.
    pub self_cpu_ns: Option<u64>,
    /// Polls so far.
    pub polls: u64,
    /// Extra labels.
    pub labels: Vec<(String, String)>,
    /// Bytes allocated so far (`null` without the allocator).
    pub alloc_bytes: Option<u64>,
    /// Allocated minus freed so far.
    pub retained_bytes: Option<i64>,
    /// Highest live bytes so far.
    pub peak_bytes: Option<u64>,
}

/// What one continuous window spent, charged to the window in which it was
/// spent: a call that runs across windows adds to each the CPU it used
/// during it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowFigures {
    /// The window's number, from 1.
    pub sequence: u64,
    /// Start, milliseconds since the Unix epoch.
    pub start_unix_ms: u64,
    /// End, milliseconds since the Unix epoch.
    pub end_unix_ms: u64,
    /// Functions that spent CPU or finished calls in the window, by CPU,
    /// descending.
    pub functions: Vec<WindowFunctionRow>,
    /// Agents likewise.
    pub agents: Vec<WindowAgentRow>,
}

/// One function's figures under one agent within a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowFunctionRow {
    /// The agent charged (`null`: no agent).
    pub agent: Option<String>,
    /// Function label.
    pub function: String,
    /// CPU its invocations used in the window, finished or not, callees
    /// included, ns.
    pub cpu_ns: Option<u64>,
    /// Own CPU in the window, ns.
    pub self_cpu_ns: Option<u64>,
    /// Calls that finished in the window.
    pub calls: u64,
    /// Invocations running at the window's end.
    pub active: u64,
}

/// One agent's figures within a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowAgentRow {
    /// The agent (`null`: work outside any agent).
    pub agent: Option<String>,
    /// Own CPU of the agent's invocations in the window, ns.
    pub cpu_ns: Option<u64>,
    /// Calls that finished in the window.
    pub calls: u64,
    /// Invocations running at the window's end.
    pub active: u64,
}

/// Resident set and virtual size of the process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemMemoryInfo {
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
}

/// One reading of the memory timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryTimelinePoint {
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Resident set size, bytes (absent where it cannot be read).
    pub rss_bytes: Option<u64>,
    /// Allocator bytes in use (absent without the counting allocator).
    pub current_bytes: Option<u64>,
    /// Allocator peak so far.
    pub peak_bytes: Option<u64>,
}

/// A call site whose sampled in-use heap grew between two heap snapshots:
/// the leak signal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeapGrowth {
    /// The instrumented function whose invocation allocated (the report's
    /// name); outside any invocation, the program's innermost own frame.
    pub function: String,
    /// Agent of the invocation that allocated.
    pub agent: Option<String>,
    /// Estimated in-use bytes at the newer snapshot.
    pub inuse_bytes: i64,
    /// Estimated growth since the older snapshot, bytes.
    pub growth_bytes: i64,
}

/// One function's figures under one agent.
///
/// `cpu_ns` is total CPU (own work plus instrumented callees); `self_cpu_ns`
/// excludes callees. Wall figures likewise; concurrent callees can make
/// children's wall exceed the caller's, and `self_wall_ns` then stops at 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionRow {
    /// The agent the calls were charged to (`null`: no agent).
    pub agent: Option<String>,
    /// Function label.
    pub function: String,
    /// Source file of the annotated item.
    pub file: String,
    /// Source line of the annotated item.
    pub line: u32,
    /// Finished invocations.
    pub calls: u64,
    /// Invocations running now.
    pub active: u64,
    /// Invocations that returned `Err`.
    pub errors: u64,
    /// Invocations that panicked.
    pub panics: u64,
    /// Futures dropped before completion.
    pub cancelled: u64,
    /// Total thread CPU time, ns.
    pub cpu_ns: Option<u64>,
    /// Own thread CPU time, excluding instrumented callees, ns.
    pub self_cpu_ns: Option<u64>,
    /// Total wall time, ns.
    pub wall_ns: u64,
    /// Wall time minus the wall time of direct instrumented callees, ns.
    pub self_wall_ns: u64,
    /// Median wall time per call, ns.
    pub wall_ns_p50: u64,
    /// 90th percentile wall time per call, ns.
    pub wall_ns_p90: u64,
    /// 99th percentile wall time per call, ns.
    pub wall_ns_p99: u64,
    /// Longest call, ns.
    pub wall_ns_max: u64,
    /// Median CPU time per call, ns.
    pub cpu_ns_p50: Option<u64>,
    /// 90th percentile CPU time per call, ns.
    pub cpu_ns_p90: Option<u64>,
    /// 99th percentile CPU time per call, ns.
    pub cpu_ns_p99: Option<u64>,
    /// Most CPU in one call, ns.
    pub cpu_ns_max: Option<u64>,
    /// Polls (sync calls count one).
    pub polls: u64,
    /// CPU the sampling profiler attributed to this function's invocations
    /// (own frames and callees), ns; `null` unless the profiler ran.
    pub sampled_cpu_ns: Option<u64>,
    /// Bytes allocated, callees included (`null` without the allocator).
    pub alloc_bytes: Option<u64>,
    /// Allocations, callees included.
    pub allocs: Option<u64>,
    /// Bytes freed, callees included.
    pub freed_bytes: Option<u64>,
    /// Net change (allocated minus freed) at the end of each call, summed
    /// over calls. Signed, and a sum: it can be negative (calls freed older
    /// memory) or exceed the process heap (each call's leftovers freed
    /// later). Kept for schema compatibility; read `net_bytes_p50`,
    /// `net_bytes_max` and `inuse_bytes` instead.
    pub retained_bytes: Option<i64>,
    /// Highest live bytes during any one call.
    pub peak_bytes: Option<u64>,
    /// Median bytes allocated per call.
    pub alloc_bytes_p50: Option<u64>,
    /// 99th percentile bytes allocated per call.
    pub alloc_bytes_p99: Option<u64>,
    /// Median net change of one call at its end (allocated minus freed,
    /// callees included; negative: it freed more than it allocated).
    #[serde(default)]
    pub net_bytes_p50: Option<i64>,
    /// Largest net change of one call at its end.
    #[serde(default)]
    pub net_bytes_max: Option<i64>,
    /// Heap in use now that this function's invocations allocated: the
    /// heap profiler's unbiased estimate (`inuse_space`); `null` unless the
    /// heap profiler runs.
    #[serde(default)]
    pub inuse_bytes: Option<u64>,
    /// What the invocations running now consumed so far (not in the
    /// figures above, which are about finished calls).
    #[serde(default)]
    pub running: RunningFigures,
    /// The slowest invocations of the windows kept (by CPU and by wall),
    /// slowest first: their ids lead to
    /// [`invocation_detail`](crate::api::invocation_detail).
    #[serde(default)]
    pub exemplars: Vec<super::Exemplar>,
}

/// One agent's figures.
///
/// `cpu_ns` sums the own CPU of every invocation charged to the agent, so
/// nested calls are not counted twice. `wall_ns` and the percentiles cover
/// the agent's *root* invocations: those not called from another invocation
/// of the same agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentRow {
    /// The agent (`null`: work outside any agent).
    pub agent: Option<String>,
    /// Finished invocations charged to the agent, nested ones included.
    pub calls: u64,
    /// Finished root invocations.
    pub root_calls: u64,
    /// Invocations running now.
    pub active: u64,
    /// Root invocations that returned `Err`: a failure propagated through
    /// several functions of the agent counts once (function rows keep
    /// their own counts).
    pub errors: u64,
    /// Root invocations that panicked.
    pub panics: u64,
    /// Root invocations (futures) dropped before completion.
    pub cancelled: u64,
    /// Thread CPU time, ns.
    pub cpu_ns: Option<u64>,
    /// Wall time of root invocations, ns.
    pub wall_ns: u64,
    /// Median wall time per root invocation, ns.
    pub wall_ns_p50: u64,
    /// 99th percentile wall time per root invocation, ns.
    pub wall_ns_p99: u64,
    /// 99th percentile CPU time per root invocation, ns.
    pub cpu_ns_p99: Option<u64>,
    /// Mean CPU per root invocation, ns.
    pub avg_cpu_ns: Option<u64>,
    /// Mean wall time per root invocation, ns.
    pub avg_wall_ns: u64,
    /// Polls.
    pub polls: u64,
    /// CPU the sampling profiler attributed to the agent, ns.
    pub sampled_cpu_ns: Option<u64>,
    /// Bytes allocated by the agent's own invocations (callees charged to
    /// other agents excluded).
    pub alloc_bytes: Option<u64>,
    /// Allocations, likewise.
    pub allocs: Option<u64>,
    /// Net change of root invocations at their ends, summed (signed; kept
    /// for schema compatibility: read `net_bytes_p50`, `net_bytes_max` and
    /// `inuse_bytes`).
    pub retained_bytes: Option<i64>,
    /// Highest live bytes during one root invocation.
    pub peak_bytes: Option<u64>,
    /// Median net change of one root invocation at its end.
    #[serde(default)]
    pub net_bytes_p50: Option<i64>,
    /// Largest net change of one root invocation at its end.
    #[serde(default)]
    pub net_bytes_max: Option<i64>,
    /// Heap in use now that the agent's invocations allocated: what the
    /// agent holds (the heap profiler's unbiased estimate, `inuse_space`);
    /// `null` unless the heap profiler runs.
    #[serde(default)]
    pub inuse_bytes: Option<u64>,
    /// What the agent's running invocations consumed so far: own CPU and
    /// allocations of each, wall time of the running root invocations.
    #[serde(default)]
    pub running: RunningFigures,
}

/// Counters of what bounded stores cut.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    /// Label values cut to the maximum length.
    pub label_values_truncated: u64,
    /// Label values replaced by `__overflow__` past the per-key limit.
    pub label_values_overflowed: u64,
    /// Invocation records pushed out of the recent-invocations ring.
    pub recent_invocations_evicted: u64,
    /// `.profiled(label)` labels past the limit, merged into one row.
    pub dynamic_functions_overflowed: u64,
    /// CPU of propagated work that finished after its invocation, ns; it is
    /// in the function's aggregate but not in any single invocation.
    pub detached_cpu_ns: u64,
    /// Threads that read the CPU clock through the system call although
    /// the user-space clock was in use (no descriptor or page to be had).
    #[serde(default)]
    pub cpu_clock_fallback_threads: u64,
    /// Running invocations that found the registry of running invocations
    /// full, since start: their figures appear only when they finish.
    #[serde(default)]
    pub running_untracked: u64,
    /// (function, agent) pairs that found the row cap (2048) reached: their
    /// calls are in the agent's `__overflow__` row.
    #[serde(default)]
    pub rows_overflowed: u64,
    /// Exemplars no longer kept: replaced by slower calls, aged out with
    /// their window, or pushed out of the full store.
    #[serde(default)]
    pub exemplars_evicted: u64,
    /// Calls left out of kept callee trees: the callee log had overwritten
    /// them (they drained long before their kept caller), or their caller's
    /// list was dropped to keep the log's map bounded.
    #[serde(default)]
    pub exemplar_callees_dropped: u64,
}

/// One finished invocation, from the ring of recent invocations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvocationRecord {
    /// Process-unique id.
    pub id: u64,
    /// Id of the invocation it ran inside, if any.
    pub parent_id: Option<u64>,
    /// Agent charged.
    pub agent: Option<String>,
    /// Function label.
    pub function: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Total thread CPU time, ns.
    pub cpu_ns: Option<u64>,
    /// Own thread CPU time, ns.
    pub self_cpu_ns: Option<u64>,
    /// Wall time, ns.
    pub wall_ns: u64,
    /// Own wall time, ns.
    pub self_wall_ns: u64,
    /// Polls.
    pub polls: u64,
    /// Extra labels.
    pub labels: Vec<(String, String)>,
    /// Bytes allocated, callees included (`null` without the allocator).
    pub alloc_bytes: Option<u64>,
    /// Allocations, callees included.
    pub allocs: Option<u64>,
    /// Bytes freed.
    pub freed_bytes: Option<u64>,
    /// Allocated minus freed at the end.
    pub retained_bytes: Option<i64>,
    /// Highest live bytes during the invocation.
    pub peak_bytes: Option<u64>,
}

impl Report {
    /// The report as compact JSON.
    pub fn to_json(&self) -> crate::error::Result<String> {
        super::json::to_string(self)
    }

    /// The report as indented JSON.
    pub fn to_json_pretty(&self) -> crate::error::Result<String> {
        Ok(super::json::indent(&self.to_json()?))
    }

    /// The row of `function` under `agent`, if it ran.
    pub fn function(&self, agent: Option<&str>, function: &str) -> Option<&FunctionRow> {
        self.functions
            .iter()
            .find(|r| r.function == function && r.agent.as_deref() == agent)
    }

    /// Rows of every function whose label ends with `suffix` (e.g. `::plan`).
    pub fn functions_named<'a>(&'a self, suffix: &'a str) -> impl Iterator<Item = &'a FunctionRow> {
        self.functions
            .iter()
            .filter(move |r| r.function.ends_with(suffix))
    }

    /// The row of `agent` (`None`: work outside any agent).
    pub fn agent(&self, agent: Option<&str>) -> Option<&AgentRow> {
        self.agents.iter().find(|r| r.agent.as_deref() == agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_unmeasured_cpu_null() {
        let report = Report {
            schema_version: SCHEMA_VERSION,
            functions: vec![FunctionRow {
                function: "f".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        assert!(v["functions"][0]["cpu_ns"].is_null());
        assert_eq!(v["functions"][0]["calls"], 0);
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back, report);
    }
}
