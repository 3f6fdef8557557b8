//! The runtime of [agentprof](https://docs.rs/agentprof): per-invocation CPU
//! and wall accounting, aggregates per function and agent, reports.
//!
//! Applications depend on the `agentprof` facade, which re-exports this
//! crate and the `#[profiled]` attribute. Built without the `enabled`
//! feature, every entry point here is a no-op and only the data model
//! (report and configuration types) remains.
//!
//! The modules are layers whose imports point one way, down (see
//! `ARCHITECTURE.md`): `pipeline` → `report` → `memory`, `cpu` → `pprof`,
//! `unwind` →
//! `invocation` → `aggregate` → `thread` → `model`, `config`, `error`.
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

mod config;
mod error;
mod model;
mod pipeline;
pub mod pprof;
mod report;

#[cfg(feature = "enabled")]
mod aggregate;
#[cfg(feature = "enabled")]
mod cpu;
#[cfg(feature = "enabled")]
mod fork;
#[cfg(feature = "enabled")]
mod invocation;
#[cfg(feature = "enabled")]
mod memory;
#[cfg(feature = "enabled")]
mod profiler_cost;
#[cfg(feature = "enabled")]
mod thread;
#[cfg(feature = "enabled")]
mod unwind;

#[cfg(not(feature = "enabled"))]
mod noop;

pub use config::{
    env_overrides, AttributionConfig, Config, CpuClockConfig, CpuProfilingConfig, ExporterType,
    HeapProfilerConfig, HttpConfig, MemoryProfilingConfig, ProfileExporterConfig, ProfilingConfig,
    SampleLabel, Secret, SymbolizeConfig, TelemetryConfig, DEFAULT_SAMPLE_INTERVAL,
};
pub use error::{Error, Result};
pub use model::{
    AgentResourceStats, AgentRow, CpuClock, Dropped, FunctionRow, HeapDropped, HeapGrowth,
    InvocationRecord, MemoryStats, MemoryTimelinePoint, Outcome, ProfilerCost, Report,
    ResourceContext, ResourceUsage, Running, RunningInvocation, SystemMemoryInfo, TimerMode,
    WindowAgentRow, WindowFigures, WindowFunctionRow, INSTALL_HINT, SCHEMA_VERSION,
};
pub use pipeline::export::{self, CollectorStats, ShutdownSummary};
#[cfg(feature = "gcp")]
pub use pipeline::gcp;
pub use pipeline::init;
pub use report::{HeapSite, HtmlReport};

#[cfg(feature = "enabled")]
pub use aggregate::{invocation, recent_invocations};
#[cfg(feature = "enabled")]
pub use cpu::{CpuProfiler, CpuReport, CpuSample};
#[cfg(feature = "enabled")]
pub use invocation::{
    current_context, is_enabled, set_enabled, spawn_thread, Context, FutureExt, InInvocation,
    ProfiledFuture,
};
#[cfg(all(feature = "enabled", feature = "tokio"))]
pub use invocation::{spawn, spawn_blocking};
#[cfg(feature = "enabled")]
pub use memory::{
    allocator_installed, memory_stats, start_memory_timeline, stop_memory_timeline, system_memory,
    Allocator, HeapProfile, HeapProfiler, HeapStack,
};
#[cfg(feature = "metrics")]
pub use pipeline::publish_metrics;
#[cfg(feature = "http")]
pub use pipeline::{HttpServer, HttpStats};
#[cfg(feature = "enabled")]
pub use pipeline::{Profiler, ProfilerBuilder, RunningProfiler};
#[cfg(feature = "enabled")]
pub use report::{report, reset, running_invocations, ResourceAttribution};

#[cfg(not(feature = "enabled"))]
pub use noop::*;

/// What `#[profiled]` expands to: the macro's interface to the runtime.
/// Unstable: not public API, it changes with the macro.
#[doc(hidden)]
#[cfg(feature = "enabled")]
pub mod __private {
    pub use crate::aggregate::Labels;
    pub use crate::invocation::{
        output_never_failed, result_failed, returned, Callsite, NoSpan, ProfiledFuture, SpanMeta,
        SyncGuard, SyncSlot,
    };
    pub use tracing;
}

/// Hooks for agentprof's own tests and benchmarks: the clocks, the timer
/// mode, what this thread's samples account for. The macro never uses
/// them. Unstable: not public API.
#[doc(hidden)]
#[cfg(feature = "enabled")]
pub mod __test_hooks {
    pub use crate::cpu::{force_process_timer, this_thread_sampled_cpu_ns};
    pub use crate::thread::clock::{
        read_thread_cpu_clock, read_thread_cpu_clock_fast, set_fast_cpu_clock,
    };
}
