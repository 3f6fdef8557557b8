//! The top of the runtime: applying a configuration ([`init`]), the
//! `Profiler` lifecycle, the collector thread that cuts windows, the
//! exporters it feeds, and the key metrics.

pub mod export;
// The servers that ask for profiles, beside each other: both tap the
// running sampler rather than receive the collector's windows.
#[cfg(feature = "gcp")]
pub mod gcp;

mod collector;
mod history;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "metrics")]
mod metrics;
mod page;
mod profiler;

#[cfg(feature = "http")]
pub use http::{HttpServer, HttpStats};
#[cfg(feature = "metrics")]
pub use metrics::publish_metrics;
pub use profiler::{Profiler, ProfilerBuilder, RunningProfiler};

use crate::config::Config;
use crate::error::Result;

/// Applies a configuration: the runtime switch (`telemetry.enabled` and
/// `telemetry.profiling.enabled`), the bounds of the attribution stores,
/// the heap profiler and the memory timeline.
///
/// The environment's `AGENTPROF_*` overrides are applied on top of
/// `config` first ([`Config::with_env`]): environment over code over file
/// over defaults.
///
/// Fails, changing nothing, when the configuration is invalid or turns on a
/// capability this build does not have.
pub fn init(config: &Config) -> Result<()> {
    let config = &config.with_env()?;
    if let Some(unsupported) = config.unsupported() {
        return Err(unsupported);
    }
    if crate::built_in::RECORDING {
        use crate::config::HeapProfilerConfig;
        use crate::memory::{start_memory_timeline, HeapProfiler};

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
        crate::aggregate::set_recent_capacity(p.attribution.recent_invocations);
        crate::aggregate::exemplars::configure(
            p.attribution.exemplars_per_function,
            p.attribution.exemplar_windows,
        );
        crate::aggregate::configure_labels(
            p.attribution.label_value_max_len,
            p.attribution.label_values_per_key,
        );
        crate::cpu::set_local_labels(&p.cpu.labels);
        crate::pprof::set_symbol_source(p.cpu.symbolize);
        if p.cpu.clock == crate::config::CpuClockConfig::Syscall {
            crate::thread::clock::force_syscall_clock();
        }
        crate::invocation::set_enabled(config.recording());
    }
    Ok(())
}
