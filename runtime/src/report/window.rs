//! Per-window figures for continuous windows: what each function and agent
//! spent during one window, whether its invocations finished in it or not.
//!
//! A row's consumption is its finished calls' lifetime totals plus what
//! its running invocations have spent so far; a window's figures are the
//! difference between two such readings. A call that runs across several
//! windows is thereby charged to each for the CPU it used during it, and
//! its finish does not charge its whole cost to the last one.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::aggregate::{self, Lifetime, Row};
use crate::invocation;
use crate::model::{WindowAgentRow, WindowFigures, WindowFunctionRow};

/// What a row had consumed at a reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Consumed {
    calls: u64,
    cpu_ns: u64,
    self_cpu_ns: u64,
    /// Whether any of it was measured by a CPU clock.
    cpu_measured: bool,
}

/// Cuts continuous windows: keeps the previous reading of every row.
#[derive(Debug, Default)]
pub(crate) struct WindowMeter {
    last: HashMap<usize, Consumed>,
}

fn reading() -> Vec<(&'static Row, Consumed)> {
    // Calls that finish meanwhile wait: each is either running or in its
    // row's lifetime totals at this reading, never both, never neither.
    let (lifetimes, running) = invocation::with_running(|running| {
        aggregate::drain_all();
        let lifetimes: Vec<(&'static Row, Lifetime)> = aggregate::rows()
            .into_iter()
            .map(|row| (row, row.lifetime()))
            .collect();
        (lifetimes, running)
    });
    let mut running_by_row: HashMap<usize, Consumed> = HashMap::new();
    for call in &running {
        let c = running_by_row.entry(call.row.owner.key()).or_default();
        if let (Some(cpu), Some(own)) = (call.cpu_ns, call.self_cpu_ns) {
            c.cpu_ns += cpu;
            c.self_cpu_ns += own;
            c.cpu_measured = true;
        }
    }
    lifetimes
        .into_iter()
        .map(|(row, lifetime)| {
            let r = running_by_row.remove(&row.owner.key()).unwrap_or_default();
            let consumed = Consumed {
                calls: lifetime.calls,
                cpu_ns: lifetime.cpu_ns + r.cpu_ns,
                self_cpu_ns: lifetime.self_cpu_ns + r.self_cpu_ns,
                cpu_measured: lifetime.cpu_calls > 0 || r.cpu_measured,
            };
            (row, consumed)
        })
        .collect()
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl WindowMeter {
    /// A meter whose first window starts now.
    pub(crate) fn new() -> Self {
        aggregate::exemplars::rotate(1);
        let mut meter = WindowMeter::default();
        for (row, consumed) in reading() {
            meter.last.insert(row.owner.key(), consumed);
        }
        meter
    }

    /// The figures of the window that ends now.
    pub(crate) fn cut(
        &mut self,
        sequence: u64,
        start: SystemTime,
        end: SystemTime,
    ) -> WindowFigures {
        let mut functions = Vec::new();
        let mut agents: BTreeMap<Option<&'static str>, WindowAgentRow> = BTreeMap::new();
        for (row, now) in reading() {
            let before = self.last.get(&row.owner.key()).copied().unwrap_or_default();
            // A reading never goes down; keeping the higher one makes sure
            // nothing is charged twice if one ever did.
            let baseline = Consumed {
                calls: before.calls.max(now.calls),
                cpu_ns: before.cpu_ns.max(now.cpu_ns),
                self_cpu_ns: before.self_cpu_ns.max(now.self_cpu_ns),
                cpu_measured: now.cpu_measured,
            };
            self.last.insert(row.owner.key(), baseline);
            let calls = now.calls.saturating_sub(before.calls);
            let cpu = now.cpu_ns.saturating_sub(before.cpu_ns);
            let own = now.self_cpu_ns.saturating_sub(before.self_cpu_ns);
            let active = row.active();
            if calls == 0 && cpu == 0 && active == 0 {
                continue;
            }
            let measured = now.cpu_measured || calls == 0;
            functions.push(WindowFunctionRow {
                agent: row.owner.agent.map(str::to_owned),
                function: row.owner.function.to_owned(),
                cpu_ns: measured.then_some(cpu),
                self_cpu_ns: measured.then_some(own),
                calls,
                active,
            });
            let agent = agents
                .entry(row.owner.agent)
                .or_insert_with(|| WindowAgentRow {
                    agent: row.owner.agent.map(str::to_owned),
                    cpu_ns: Some(0),
                    ..Default::default()
                });
            agent.cpu_ns = match (agent.cpu_ns, measured) {
                (Some(total), true) => Some(total + own),
                _ => None,
            };
            agent.calls += calls;
            agent.active += active;
        }
        let by_cpu = |cpu: Option<u64>| std::cmp::Reverse(cpu.unwrap_or(0));
        functions.sort_by_key(|f| (by_cpu(f.cpu_ns), f.function.clone()));
        let mut agents: Vec<WindowAgentRow> = agents.into_values().collect();
        agents.sort_by_key(|a| by_cpu(a.cpu_ns));
        WindowFigures {
            sequence,
            start_unix_ms: unix_ms(start),
            end_unix_ms: unix_ms(end),
            functions,
            agents,
        }
    }
}
