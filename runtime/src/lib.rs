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
    env_overrides, AttributionConfig, Config, CpuProfilingConfig, ExporterType,
    MemoryProfilingConfig, ProfileExporterConfig, ProfilingConfig, TelemetryConfig,
};
pub use error::{Error, Result};
pub use report::{
    AgentRow, Dropped, FunctionRow, InvocationRecord, Outcome, Report, SCHEMA_VERSION,
};

#[cfg(feature = "enabled")]
mod attribution;
#[cfg(feature = "enabled")]
mod callsite;
#[cfg(feature = "enabled")]
mod clock;
#[cfg(feature = "enabled")]
mod context;
#[cfg(feature = "enabled")]
mod invocation;
#[cfg(feature = "enabled")]
mod labels;
#[cfg(feature = "enabled")]
mod resource;
#[cfg(feature = "enabled")]
mod span;
#[cfg(feature = "enabled")]
mod switch;

#[cfg(feature = "enabled")]
pub use attribution::{invocation, recent_invocations, report, reset};
#[cfg(feature = "enabled")]
pub use context::{current_context, spawn_thread, Context, FutureExt, InInvocation};
#[cfg(all(feature = "enabled", feature = "tokio"))]
pub use context::{spawn, spawn_blocking};
#[cfg(feature = "enabled")]
pub use invocation::ProfiledFuture;
#[cfg(feature = "enabled")]
pub use resource::{AgentResourceStats, ResourceAttribution, ResourceContext, ResourceUsage};
#[cfg(feature = "enabled")]
pub use switch::{is_enabled, set_enabled};

#[cfg(not(feature = "enabled"))]
mod noop;
#[cfg(not(feature = "enabled"))]
pub use noop::*;

/// Applies a configuration: the runtime switch (`telemetry.enabled` and
/// `telemetry.profiling.enabled`) and the bounds of the attribution stores.
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
        let a = &config.telemetry.profiling.attribution;
        attribution::set_recent_capacity(a.recent_invocations);
        labels::configure(a.label_value_max_len, a.label_values_per_key);
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
