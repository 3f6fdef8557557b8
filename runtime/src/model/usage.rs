//! What `ResourceAttribution` reports: who an explicitly started invocation
//! is for, what it cost, and per-agent totals.

use super::report::InvocationRecord;

/// Who an explicitly started invocation is for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceContext {
    /// Agent to charge; interned (at most 1024 distinct names, the rest are
    /// charged to `__overflow__` and counted).
    pub agent_name: String,
    /// Session the invocation belongs to, recorded as the `session` label.
    pub session_id: Option<String>,
}

/// What one finished invocation cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceUsage {
    /// The invocation.
    pub invocation_id: u64,
    /// Thread CPU time, in microseconds (absent where it cannot be measured).
    pub cpu_micros: Option<u64>,
    /// Wall time, in microseconds.
    pub wall_micros: u64,
}

impl From<&InvocationRecord> for ResourceUsage {
    fn from(r: &InvocationRecord) -> Self {
        Self {
            invocation_id: r.id,
            cpu_micros: r.cpu_ns.map(|ns| ns / 1_000),
            wall_micros: r.wall_ns / 1_000,
        }
    }
}

/// Totals and averages over an agent's finished root invocations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentResourceStats {
    /// Invocations running now.
    pub active_invocations: u64,
    /// Finished invocations, nested ones included.
    pub invocations: u64,
    /// CPU time, µs, without double-counting nested invocations.
    pub total_cpu_micros: Option<u64>,
    /// Wall time of root invocations, µs.
    pub total_wall_micros: u64,
    /// Mean CPU per root invocation, µs.
    pub avg_cpu_micros: Option<u64>,
    /// Mean wall time per root invocation, µs.
    pub avg_wall_micros: u64,
}
