//! The report: the one place that reads every store and profiler, and
//! assembles their figures per function and per agent.

use std::collections::BTreeMap;

pub use super::running_rows::running_invocations;
use super::running_rows::RunningTotals;
use crate::aggregate::{self, quantile, Stats};
use crate::cpu;
use crate::invocation;
use crate::memory;
use crate::model::{
    AgentRow, Dropped, FunctionRow, ProfilerCost, Report, RunningFigures, INSTALL_HINT,
    SCHEMA_VERSION,
};
use crate::thread::clock;

/// The per-function and per-agent report of everything recorded since the
/// last [`reset`], and of the invocations running now.
///
/// ```
/// #[agentprof::profiled(agent = "planner")]
/// fn plan(steps: u32) -> u32 {
///     (0..steps).sum()
/// }
///
/// for _ in 0..10 {
///     plan(1_000);
/// }
/// let report = agentprof::report();
/// let row = report.functions_named("::plan").next().unwrap();
/// assert_eq!((row.calls, row.agent.as_deref()), (10, Some("planner")));
/// println!("{report}"); // the table; `report.to_json_pretty()` for machines
/// ```
pub fn report() -> Report {
    if !crate::built_in::RECORDING {
        return Report {
            schema_version: crate::model::SCHEMA_VERSION,
            ..Report::default()
        };
    }
    let heap = memory::HeapProfiler::running().map(|h| h.snapshot_aside());
    report_with_heap(heap.as_ref())
}

/// The report, with the in-use figures of `heap` (a snapshot the caller
/// took anyway, as the collector does each window).
pub(crate) fn report_with_heap(heap: Option<&memory::HeapProfile>) -> Report {
    // Calls that finish meanwhile wait, so each is either running or in
    // its row, never neither.
    let running = invocation::with_running(|running| {
        aggregate::drain_all();
        running
    });
    let mut running = RunningTotals::new(&running);
    let sampled_by_owner = cpu::sampled_cpu_by_owner();
    let inuse = heap.map(memory::HeapProfile::inuse_by_owner);
    let mut functions = Vec::new();
    let mut agents: BTreeMap<Option<&'static str>, (Stats, u64, Option<u64>)> = BTreeMap::new();
    let mut detached = 0;
    for row in aggregate::rows() {
        let (mut s, active) = row.merged();
        let owner = &row.owner;
        let row_running = running.by_row.remove(&owner.key()).unwrap_or_default();
        let sampled = sampled_by_owner
            .as_ref()
            .map(|by_owner| by_owner.get(&owner.key()).copied().unwrap_or(0));
        if s.calls == 0 && active == 0 && s.detached_cpu_ns == 0 && sampled.unwrap_or(0) == 0 {
            continue;
        }
        detached += s.detached_cpu_ns;
        let cpu = s.cpu_measured();
        // A function's percentiles are over all its calls; its root calls'
        // histograms also go to its agent's.
        let h = &mut s.histograms;
        let mut wall = h.nested_wall.take();
        aggregate::add_histogram(&mut wall, &h.root_wall);
        let mut cpu_histogram = h.nested_cpu.take();
        aggregate::add_histogram(&mut cpu_histogram, &h.root_cpu);
        let mem = s.memory_measured();
        let mut net = s.histograms.nested_net.clone();
        net.add(&s.histograms.root_net);
        let row_inuse = inuse.as_ref().map(|by| {
            by.get(&(owner.agent, Some(owner.function)))
                .copied()
                .unwrap_or(0)
                .max(0) as u64
        });
        functions.push(FunctionRow {
            agent: owner.agent.map(str::to_owned),
            function: owner.function.to_owned(),
            file: row.file.to_owned(),
            line: row.line,
            calls: s.calls,
            active,
            errors: s.errors,
            panics: s.panics,
            cancelled: s.cancelled,
            cpu_ns: cpu.then_some(s.cpu_ns),
            self_cpu_ns: cpu.then_some(s.self_cpu_ns),
            wall_ns: s.wall_ns,
            self_wall_ns: s.self_wall_ns,
            wall_ns_p50: quantile(&wall, 0.5),
            wall_ns_p90: quantile(&wall, 0.9),
            wall_ns_p99: quantile(&wall, 0.99),
            wall_ns_max: s.wall_ns_max,
            cpu_ns_p50: cpu.then(|| quantile(&cpu_histogram, 0.5)),
            cpu_ns_p90: cpu.then(|| quantile(&cpu_histogram, 0.9)),
            cpu_ns_p99: cpu.then(|| quantile(&cpu_histogram, 0.99)),
            cpu_ns_max: cpu.then_some(s.cpu_ns_max),
            polls: s.polls,
            sampled_cpu_ns: sampled,
            alloc_bytes: mem.then_some(s.alloc_bytes),
            allocs: mem.then_some(s.allocs),
            freed_bytes: mem.then_some(s.freed_bytes),
            retained_bytes: mem.then_some(s.retained_bytes),
            peak_bytes: mem.then_some(s.peak_bytes),
            alloc_bytes_p50: mem.then(|| quantile(&s.histograms.alloc_per_call, 0.5)),
            alloc_bytes_p99: mem.then(|| quantile(&s.histograms.alloc_per_call, 0.99)),
            net_bytes_p50: net.quantile(0.5),
            net_bytes_max: s.net_bytes_max,
            inuse_bytes: row_inuse,
            running: row_running,
            exemplars: aggregate::exemplars::of_row(row),
        });
        let slot = agents.entry(owner.agent).or_default();
        slot.0.add_counters(&s);
        aggregate::add_histogram(&mut slot.0.histograms.root_wall, &s.histograms.root_wall);
        aggregate::add_histogram(&mut slot.0.histograms.root_cpu, &s.histograms.root_cpu);
        slot.0.histograms.root_net.add(&s.histograms.root_net);
        slot.1 += active;
        slot.2 = match (slot.2, sampled) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
    // A function that has run all along sorts by what it has spent.
    let spent =
        |cpu: Option<u64>, running: &RunningFigures| cpu.unwrap_or(0) + running.cpu_ns.unwrap_or(0);
    functions.sort_by(|a, b| {
        spent(b.cpu_ns, &b.running)
            .cmp(&spent(a.cpu_ns, &a.running))
            .then(b.wall_ns.cmp(&a.wall_ns))
            .then_with(|| a.function.cmp(&b.function))
    });
    let mut agent_rows: Vec<AgentRow> = agents
        .into_iter()
        .map(|(agent, (s, active, sampled))| {
            let root = &s.histograms;
            let cpu = s.cpu_measured();
            let mem = s.memory_measured();
            AgentRow {
                agent: agent.map(str::to_owned),
                calls: s.calls,
                root_calls: s.root_calls,
                active,
                errors: s.root_errors,
                panics: s.root_panics,
                cancelled: s.root_cancelled,
                cpu_ns: cpu.then_some(s.self_cpu_ns),
                wall_ns: s.root_wall_ns,
                wall_ns_p50: quantile(&root.root_wall, 0.5),
                wall_ns_p99: quantile(&root.root_wall, 0.99),
                cpu_ns_p99: cpu.then(|| quantile(&root.root_cpu, 0.99)),
                avg_cpu_ns: cpu.then(|| s.root_cpu_ns.checked_div(s.root_calls).unwrap_or(0)),
                avg_wall_ns: s.root_wall_ns.checked_div(s.root_calls).unwrap_or(0),
                polls: s.polls,
                sampled_cpu_ns: sampled,
                alloc_bytes: mem.then_some(s.self_alloc_bytes),
                allocs: mem.then_some(s.self_allocs),
                retained_bytes: mem.then_some(s.root_retained_bytes),
                peak_bytes: mem.then_some(s.root_peak_bytes),
                net_bytes_p50: root.root_net.quantile(0.5),
                net_bytes_max: s.root_net_bytes_max,
                inuse_bytes: inuse.as_ref().map(|by| {
                    by.iter()
                        .filter(|((a, f), _)| *a == agent && f.is_some())
                        .map(|(_, bytes)| *bytes)
                        .sum::<i64>()
                        .max(0) as u64
                }),
                running: running.by_agent.remove(&agent).unwrap_or_default(),
            }
        })
        .collect();
    agent_rows.sort_by(|a, b| {
        spent(b.cpu_ns, &b.running)
            .cmp(&spent(a.cpu_ns, &a.running))
            .then(b.wall_ns.cmp(&a.wall_ns))
    });
    let memory = memory::memory_stats();
    let (label_values_truncated, label_values_overflowed) = aggregate::label_counters();
    let (cpu_clock, cpu_clock_fallback_threads) = clock::cpu_clock();
    let exemplar_counters = aggregate::exemplars::counters();
    Report {
        schema_version: SCHEMA_VERSION,
        functions,
        agents: agent_rows,
        memory_note: memory.is_none().then(|| INSTALL_HINT.to_owned()),
        memory,
        system_memory: memory::system_memory().ok(),
        memory_timeline: memory::timeline(),
        heap_growth: memory::heap_growth(),
        cpu_clock: Some(cpu_clock),
        dropped: Dropped {
            label_values_truncated,
            label_values_overflowed,
            recent_invocations_evicted: aggregate::recent_evicted(),
            dynamic_functions_overflowed: invocation::dynamic_overflowed(),
            detached_cpu_ns: detached,
            cpu_clock_fallback_threads,
            running_untracked: invocation::running_untracked(),
            rows_overflowed: aggregate::rows_overflowed(),
            exemplars_evicted: exemplar_counters.evicted,
            exemplar_callees_dropped: exemplar_counters.callees_dropped,
        },
        window: None,
        recording: invocation::is_enabled(),
        profiler: Some(profiler_cost(inuse.as_ref())),
    }
}

/// What agentprof itself uses now.
fn profiler_cost(inuse: Option<&memory::OwnerBytes>) -> ProfilerCost {
    let own = &crate::thread::slot::PROFILER_OWNER;
    let cuts = crate::profiler_cost::cuts_ns();
    ProfilerCost {
        heap_inuse_bytes: inuse.map(|by| {
            by.get(&(own.agent, Some(own.function)))
                .copied()
                .unwrap_or(0)
                .max(0) as u64
        }),
        reserved_bytes: (memory::HeapProfiler::reserved_bytes()
            + crate::pprof::symbol_index_bytes()) as u64,
        cpu_ns: crate::profiler_cost::threads_cpu_ns(),
        window_cpu_ns: crate::profiler_cost::last_window_cpu_ns(),
        first_cut_cpu_ns: cuts.map(|c| c.0),
        last_cut_cpu_ns: cuts.map(|c| c.1),
        threads: crate::profiler_cost::threads(),
        clock_fds: clock::clock_fds(),
    }
}

/// Clears aggregates, the recent-invocation ring, sampled CPU per row and
/// drop counters. Invocations running now still finish into the cleared
/// aggregates.
pub fn reset() {
    aggregate::drain_all();
    for row in aggregate::rows() {
        row.clear();
    }
    aggregate::clear_recent();
    aggregate::exemplars::clear();
    cpu::exemplar_samples::clear();
    aggregate::reset_labels();
    invocation::reset_dynamic_overflowed();
    cpu::reset_sampled_cpu();
}
