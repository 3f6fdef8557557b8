//! The runtime of [agentprof](https://docs.rs/agentprof): per-invocation CPU
//! and wall accounting, aggregates per function and agent, reports.
//!
//! Applications depend on the `agentprof` facade, which re-exports this
//! crate and the `#[profiled]` attribute. Built without the `enabled`
//! feature, every entry point here is a no-op and only the data model
//! (report and configuration types) remains.
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

mod config;
mod error;
mod report;

pub use config::{
    env_overrides, AttributionConfig, Config, CpuProfilingConfig, ExporterType, HeapProfilerConfig,
    MemoryProfilingConfig, ProfileExporterConfig, ProfilingConfig, TelemetryConfig,
    DEFAULT_SAMPLE_INTERVAL,
};
pub use error::{Error, Result};
pub use export::{CollectorStats, ShutdownSummary};
pub use report::{
    AgentRow, Dropped, FunctionRow, HeapGrowth, InvocationRecord, MemoryStats, MemoryTimelinePoint,
    Outcome, Report, SystemMemoryInfo, TimerMode, SCHEMA_VERSION,
};

#[cfg(feature = "enabled")]
mod alloc;
#[cfg(feature = "enabled")]
mod attribution;
#[cfg(feature = "enabled")]
mod callsite;
#[cfg(feature = "enabled")]
mod clock;
#[cfg(feature = "enabled")]
mod collector;
#[cfg(feature = "enabled")]
mod context;
#[cfg(feature = "enabled")]
mod cpu;
pub mod export;
#[cfg(feature = "enabled")]
mod heap;
#[cfg(feature = "enabled")]
mod invocation;
#[cfg(feature = "enabled")]
mod labels;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "enabled")]
pub mod pprof;
#[cfg(feature = "enabled")]
mod profiler;
#[cfg(feature = "enabled")]
mod resource;
#[cfg(feature = "enabled")]
mod span;
#[cfg(feature = "enabled")]
mod switch;
#[cfg(feature = "enabled")]
mod system;

#[cfg(feature = "enabled")]
pub use alloc::{allocator_installed, memory_stats, Allocator, INSTALL_HINT};
#[cfg(feature = "enabled")]
pub use attribution::{invocation, recent_invocations, report, reset};
#[cfg(feature = "enabled")]
pub use context::{current_context, spawn_thread, Context, FutureExt, InInvocation};
#[cfg(all(feature = "enabled", feature = "tokio"))]
pub use context::{spawn, spawn_blocking};
#[cfg(feature = "enabled")]
pub use cpu::{CpuProfiler, CpuReport, CpuSample};
#[cfg(feature = "enabled")]
pub use heap::{HeapDropped, HeapProfile, HeapProfiler, HeapStack};
#[cfg(feature = "enabled")]
pub use invocation::ProfiledFuture;
#[cfg(feature = "metrics")]
pub use metrics::publish_metrics;
#[cfg(feature = "enabled")]
pub use profiler::{Profiler, ProfilerBuilder, RunningProfiler};
#[cfg(feature = "enabled")]
pub use resource::{AgentResourceStats, ResourceAttribution, ResourceContext, ResourceUsage};
#[cfg(feature = "enabled")]
pub use switch::{is_enabled, set_enabled};
#[cfg(feature = "enabled")]
pub use system::{start_memory_timeline, stop_memory_timeline, system_memory};

#[cfg(not(feature = "enabled"))]
mod noop;
#[cfg(not(feature = "enabled"))]
pub use noop::*;

/// Applies a configuration: the runtime switch (`telemetry.enabled` and
/// `telemetry.profiling.enabled`), the bounds of the attribution stores,
/// the heap profiler and the memory timeline.
///
/// Fails, changing nothing, when the configuration is invalid or turns on a
/// capability this build does not have.
pub fn init(config: &Config) -> Result<()> {
    config.validate()?;
    if let Some(unsupported) = config.unsupported() {
        return Err(unsupported);
    }
    #[cfg(feature = "enabled")]
    {
        let p = &config.telemetry.profiling;
        if config.recording() {
            if let Some(interval) = p.memory.heap_sample_interval() {
                HeapProfiler::start(HeapProfilerConfig {
                    sample_interval: interval,
                    ..HeapProfilerConfig::default()
                })?;
            }
            if p.memory.timeline_interval_ms > 0 {
                start_memory_timeline(
                    std::time::Duration::from_millis(p.memory.timeline_interval_ms),
                    p.memory.timeline_capacity,
                )?;
            }
        }
        attribution::set_recent_capacity(p.attribution.recent_invocations);
        labels::configure(
            p.attribution.label_value_max_len,
            p.attribution.label_values_per_key,
        );
        set_enabled(config.recording());
    }
    Ok(())
}

/// What `#[profiled]` expands to. Not public API.
#[doc(hidden)]
#[cfg(feature = "enabled")]
pub mod __private {
    pub use crate::callsite::Callsite;
    pub use crate::clock::read_thread_cpu_clock;
    pub use crate::invocation::{
        output_never_failed, result_failed, NoSpan, SpanMeta, SyncGuard, SyncSlot,
    };
    pub use crate::labels::Labels;
    pub use tracing;
}
