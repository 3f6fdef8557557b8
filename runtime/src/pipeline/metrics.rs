//! The key metrics (CPU, memory, per-agent resources), published through the `metrics`
//! facade so that any recorder (Prometheus, StatsD, ...) exports them.
//!
//! Published on each collector window, or whenever [`publish_metrics`] is
//! called; nothing is recorded on the invocation hot path. Names keep the
//! documented dots (a Prometheus recorder renders them as `_`).
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `cpu.profile.samples` | counter | |
//! | `cpu.time.micros` | counter | `agent`, `function` |
//! | `resource.cpu_per_agent` | counter (µs) | `agent` |
//! | `resource.memory_per_agent` | counter (bytes allocated) | `agent` |
//! | `resource.memory_per_session` | gauge (bytes allocated, recent invocations) | `session` |
//! | `resource.invocation_overhead` | gauge (ns per invocation, calibrated) | |
//! | `memory.allocated.bytes` | counter | |
//! | `memory.current.bytes` | gauge | |
//! | `memory.peak.bytes` | gauge | |
//! | `memory.allocations.count` | counter | |
//! | `memory.rss.bytes` | gauge | |

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

use crate::invocation::{Callsite, SyncSlot};
use crate::model::Report;

static SAMPLES: AtomicU64 = AtomicU64::new(0);

/// Adds CPU samples taken (by the collector, per window).
pub(crate) fn add_samples(samples: u64) {
    SAMPLES.fetch_add(samples, Relaxed);
}

fn agent_label(agent: &Option<String>) -> String {
    agent.clone().unwrap_or_else(|| "(none)".to_owned())
}

/// Publishes the current figures to the installed `metrics` recorder.
pub fn publish_metrics() {
    let report = crate::report::report();
    publish(&report);
}

pub(crate) fn publish(report: &Report) {
    metrics::counter!("cpu.profile.samples").absolute(SAMPLES.load(Relaxed));
    for row in &report.functions {
        if let Some(cpu) = row.cpu_ns {
            metrics::counter!("cpu.time.micros", "agent" => agent_label(&row.agent), "function" => row.function.clone())
                .absolute(cpu / 1_000);
        }
    }
    for agent in &report.agents {
        let label = agent_label(&agent.agent);
        if let Some(cpu) = agent.cpu_ns {
            metrics::counter!("resource.cpu_per_agent", "agent" => label.clone())
                .absolute(cpu / 1_000);
        }
        if let Some(bytes) = agent.alloc_bytes {
            metrics::counter!("resource.memory_per_agent", "agent" => label).absolute(bytes);
        }
    }
    let mut sessions: BTreeMap<String, u64> = BTreeMap::new();
    for invocation in crate::aggregate::recent_invocations() {
        if let (Some((_, session)), Some(bytes)) = (
            invocation.labels.iter().find(|(k, _)| k == "session"),
            invocation.alloc_bytes,
        ) {
            *sessions.entry(session.clone()).or_default() += bytes;
        }
    }
    for (session, bytes) in sessions {
        metrics::gauge!("resource.memory_per_session", "session" => session).set(bytes as f64);
    }
    metrics::gauge!("resource.invocation_overhead").set(invocation_overhead_ns());
    if let Some(m) = &report.memory {
        metrics::counter!("memory.allocated.bytes").absolute(m.total_allocated);
        metrics::gauge!("memory.current.bytes").set(m.current_usage as f64);
        metrics::gauge!("memory.peak.bytes").set(m.peak_usage as f64);
        metrics::counter!("memory.allocations.count").absolute(m.allocation_count);
    }
    if let Some(s) = &report.system_memory {
        metrics::gauge!("memory.rss.bytes").set(s.rss_bytes as f64);
    }
}

static OVERHEAD: OnceLock<f64> = OnceLock::new();
static CALIBRATION: Callsite = Callsite::new(
    "agentprof::calibration",
    Some("agentprof"),
    file!(),
    line!(),
);

/// What one sync invocation costs on this machine, measured once: an
/// instrumented empty call against a bare one.
fn invocation_overhead_ns() -> f64 {
    *OVERHEAD.get_or_init(|| {
        const CALLS: u32 = 2_000;
        let bare = std::time::Instant::now();
        for i in 0..CALLS {
            std::hint::black_box(i);
        }
        let bare = bare.elapsed();
        let instrumented = std::time::Instant::now();
        for i in 0..CALLS {
            let mut slot = SyncSlot::new();
            let _guard = slot.enter(&CALIBRATION, || None, |_| tracing::Span::none());
            std::hint::black_box(i);
        }
        let instrumented = instrumented.elapsed();
        crate::aggregate::drain_all();
        CALIBRATION.rows().for_each(|row| row.forget());
        instrumented.saturating_sub(bare).as_nanos() as f64 / CALLS as f64
    })
}
