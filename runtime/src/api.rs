//! The public API as the `agentprof` facade shows it: a small root and
//! modules named for what a user looks for. The facade re-exports this
//! module whole (`pub use agentprof_runtime::api::*`), so each public name
//! is listed once, here. Every item exists in both builds; without the
//! `enabled` feature the entry points refuse or pass through.

pub use crate::config::Config;
pub use crate::error::{Error, Result};
pub use crate::invocation::{is_enabled, set_enabled, spawn_thread};
#[cfg(feature = "tokio")]
pub use crate::invocation::{spawn, spawn_blocking};
pub use crate::memory::Allocator;
pub use crate::pipeline::{init, Profiler, ProfilerBuilder, RunningProfiler};
pub use crate::report::{invocation_detail, report};

/// The configuration file's model, section by section, and the
/// environment's `AGENTPROF_*` overrides. Every key, its range and its
/// variable: `docs/configuration.md`.
pub mod config {
    pub use crate::config::{
        env_overrides, AttributionConfig, Config, CpuClockConfig, CpuProfilingConfig, ExporterType,
        HttpConfig, MemoryProfilingConfig, ProfileExporterConfig, ProfilingConfig, SampleLabel,
        Secret, SymbolizeConfig, TelemetryConfig,
    };
}

/// What the service did: the report of every instrumented function and
/// agent, recent and running invocations, and its table, JSON and HTML
/// forms.
pub mod report {
    pub use crate::aggregate::{invocation, recent_invocations};
    pub use crate::model::{
        AgentRow, CalleeNode, CpuClock, Dropped, Exemplar, FunctionRow, InvocationRecord, Outcome,
        ProfilerCost, Report, RunningFigures, RunningInvocation, SlowestBy, WindowAgentRow,
        WindowFigures, WindowFunctionRow, SCHEMA_VERSION,
    };
    pub use crate::report::{
        report, reset, running_invocations, HeapSite, HtmlReport, InvocationDetail,
    };
}

/// The CPU sampler: per-thread CPU-time sampling with each sample labelled
/// by the invocation that was running.
pub mod cpu {
    pub use crate::cpu::{CpuProfiler, CpuReport, CpuSample};
    pub use crate::model::TimerMode;
}

/// The sampled heap profiler: allocation sites by agent and function, in
/// use and allocated.
pub mod heap {
    pub use crate::config::{HeapProfilerConfig, DEFAULT_SAMPLE_INTERVAL};
    pub use crate::memory::{HeapProfile, HeapProfiler, HeapStack};
    pub use crate::model::{HeapDropped, HeapGrowth};
}

/// Allocation counting (the global [`Allocator`]),
/// process totals, the system's memory and the memory timeline.
pub mod memory {
    pub use crate::memory::{
        allocator_installed, memory_stats, start_memory_timeline, stop_memory_timeline,
        system_memory, Allocator,
    };
    pub use crate::model::{MemoryStats, MemoryTimelinePoint, SystemMemoryInfo, INSTALL_HINT};
}

/// Explicit invocations with their resource usage read back: the design
/// document's `ResourceAttribution` API.
pub mod attribution {
    pub use crate::model::{AgentResourceStats, ResourceContext, ResourceUsage};
    pub use crate::report::ResourceAttribution;
}

/// Carrying the current invocation into other tasks, threads and futures.
pub mod propagation {
    pub use crate::invocation::{
        current_context, spawn_thread, Context, FutureExt, InInvocation, ProfiledFuture,
    };
    #[cfg(feature = "tokio")]
    pub use crate::invocation::{spawn, spawn_blocking};
}

/// Where the collector's windows go: the exporter trait, the file and
/// Pyroscope exporters, the collector's counters, and the metrics.
pub mod export {
    pub use crate::pipeline::export::*;
    #[cfg(feature = "metrics")]
    pub use crate::pipeline::publish_metrics;
}

/// The live endpoint: `go tool pprof` and a browser against the running
/// service.
#[cfg(feature = "http")]
pub mod live {
    pub use crate::pipeline::{HttpServer, HttpStats};
}

#[cfg(feature = "gcp")]
pub use crate::pipeline::gcp;
pub use crate::pprof;
