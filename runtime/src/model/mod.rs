//! The public data types: reports and their rows, invocation records,
//! memory figures, resource usage. Plain data (serde derives, lookups,
//! JSON): no behaviour.

mod exemplar;
mod json;
mod report;
mod sample_label;
mod usage;

pub use exemplar::{CalleeNode, Exemplar, SlowestBy};
pub(crate) use json::to_string as to_json;
pub use report::{
    AgentRow, CpuClock, Dropped, FunctionRow, HeapDropped, HeapGrowth, InvocationRecord,
    MemoryStats, MemoryTimelinePoint, Outcome, ProfilerCost, Report, RunningFigures,
    RunningInvocation, SystemMemoryInfo, TimerMode, WindowAgentRow, WindowFigures,
    WindowFunctionRow, SCHEMA_VERSION,
};
pub use sample_label::SampleLabel;
pub use usage::{AgentResourceStats, ResourceContext, ResourceUsage};

/// How to get memory figures, for reports made without the allocator.
pub const INSTALL_HINT: &str =
    "memory figures need the counting allocator: #[global_allocator] static ALLOC: agentprof::Allocator = agentprof::Allocator::system();";
