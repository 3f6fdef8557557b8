//! Running invocations in the report: their figures so far, per function
//! row and per agent, and the list of them.

use std::collections::HashMap;

use crate::aggregate::{self, MemoryUsage};
use crate::invocation::{self, RunningCall};
use crate::model::{RunningFigures, RunningInvocation};

/// Figures of running invocations, by row (its owner's key) and by agent.
#[derive(Default)]
pub(super) struct RunningTotals {
    pub(super) by_row: HashMap<usize, RunningFigures>,
    pub(super) by_agent: HashMap<Option<&'static str>, RunningFigures>,
}

fn add_cpu(total: &mut Option<u64>, value: Option<u64>, first: bool) {
    // Unmeasured anywhere makes the sum unmeasured, as for finished calls.
    *total = match (first, *total, value) {
        (true, _, v) => v,
        (false, Some(a), Some(b)) => Some(a + b),
        _ => None,
    };
}

fn add_memory(r: &mut RunningFigures, m: Option<&MemoryUsage>, own_only: bool, retained: bool) {
    let Some(m) = m else { return };
    let (bytes, count) = if own_only {
        (m.self_alloc_bytes, m.self_allocs)
    } else {
        (m.alloc_bytes, m.allocs)
    };
    *r.alloc_bytes.get_or_insert(0) += bytes;
    *r.allocs.get_or_insert(0) += count;
    *r.freed_bytes.get_or_insert(0) += m.freed_bytes;
    let kept = r.retained_bytes.get_or_insert(0);
    if retained {
        *kept += m.retained_bytes;
    }
}

impl RunningTotals {
    pub(super) fn new(calls: &[RunningCall]) -> Self {
        let mut totals = RunningTotals::default();
        for call in calls {
            let r = totals.by_row.entry(call.row.owner.key()).or_default();
            let first = r.invocations == 0;
            r.invocations += 1;
            add_cpu(&mut r.cpu_ns, call.cpu_ns, first);
            add_cpu(&mut r.self_cpu_ns, call.self_cpu_ns, first);
            r.wall_ns += call.wall_ns;
            r.longest_wall_ns = r.longest_wall_ns.max(call.wall_ns);
            r.polls += call.polls;
            add_memory(r, call.memory.as_ref(), false, true);

            // An agent's CPU sums its invocations' own CPU, and its wall
            // time covers its root invocations, as for finished calls.
            let a = totals.by_agent.entry(call.row.owner.agent).or_default();
            let first = a.invocations == 0;
            a.invocations += 1;
            add_cpu(&mut a.cpu_ns, call.self_cpu_ns, first);
            add_cpu(&mut a.self_cpu_ns, call.self_cpu_ns, first);
            if call.agent_root {
                a.wall_ns += call.wall_ns;
                a.longest_wall_ns = a.longest_wall_ns.max(call.wall_ns);
            }
            a.polls += call.polls;
            add_memory(a, call.memory.as_ref(), true, call.agent_root);
        }
        totals
    }
}

/// The invocations running now that reports can see (see [`RunningFigures`] for
/// which), longest-running first.
pub fn running_invocations() -> Vec<RunningInvocation> {
    let calls = invocation::with_running(|calls| calls);
    let mut list: Vec<RunningInvocation> = calls
        .into_iter()
        .map(|call| RunningInvocation {
            id: call.id,
            parent_id: (call.parent_id != 0).then_some(call.parent_id),
            agent: call.row.owner.agent.map(str::to_owned),
            function: call.row.owner.function.to_owned(),
            wall_ns: call.wall_ns,
            cpu_ns: call.cpu_ns,
            self_cpu_ns: call.self_cpu_ns,
            polls: call.polls,
            labels: call
                .labels
                .as_ref()
                .map(aggregate::Labels::to_pairs)
                .unwrap_or_default(),
            alloc_bytes: call.memory.map(|m| m.alloc_bytes),
            retained_bytes: call.memory.map(|m| m.retained_bytes),
            peak_bytes: call.memory.map(|m| m.peak_bytes),
        })
        .collect();
    list.sort_by(|a, b| b.wall_ns.cmp(&a.wall_ns).then(a.id.cmp(&b.id)));
    list
}
