//! Per-agent percentiles of root invocations (those not called from another
//! invocation of the same agent): kept per agent, not per function row, so
//! a row holds three histograms instead of five and agents, which are few
//! (the program's plus at most 1024 run-time names), hold the rest.

use std::collections::HashMap;
use std::sync::Mutex;

use hdrhistogram::Histogram;

use super::histogram;
use super::row::lock;

/// One agent's root-invocation histograms.
#[derive(Clone, Debug, Default)]
pub(crate) struct RootPercentiles {
    pub(crate) wall: Option<Histogram<u64>>,
    pub(crate) cpu: Option<Histogram<u64>>,
}

/// A finished root invocation, as the batch drain hands it over.
#[derive(Clone, Copy, Debug)]
pub(super) struct Root {
    pub(super) agent: Option<&'static str>,
    pub(super) wall_ns: u64,
    pub(super) cpu_ns: Option<u64>,
}

static AGENTS: Mutex<Option<HashMap<Option<&'static str>, RootPercentiles>>> = Mutex::new(None);

/// Records a drain's root invocations under one lock.
pub(super) fn record(roots: &[Option<Root>]) {
    if roots.is_empty() {
        return;
    }
    let mut agents = lock(&AGENTS);
    let agents = agents.get_or_insert_with(HashMap::new);
    for root in roots.iter().flatten() {
        let p = agents.entry(root.agent).or_default();
        histogram::record(&mut p.wall, root.wall_ns);
        if let Some(cpu) = root.cpu_ns {
            histogram::record(&mut p.cpu, cpu);
        }
    }
}

/// Every agent's root percentiles.
pub(crate) fn root_percentiles() -> HashMap<Option<&'static str>, RootPercentiles> {
    lock(&AGENTS).clone().unwrap_or_default()
}

/// Forgets what was recorded (keeping the memory).
pub(crate) fn clear() {
    if let Some(agents) = lock(&AGENTS).as_mut() {
        for p in agents.values_mut() {
            histogram::reset(&mut p.wall);
            histogram::reset(&mut p.cpu);
        }
    }
}
