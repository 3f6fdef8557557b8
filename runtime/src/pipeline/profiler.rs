//! One entry point that starts what a configuration enables:
//! `Profiler::from_config(&config)?.start()?`, or a builder.

use std::time::Duration;

use super::collector::{Collector, CollectorConfig};
use super::export::{CollectorStats, ShutdownSummary};
use super::export::{FileExporter, FileRetention, ProfileExporter};
use crate::config::{Config, ExporterType, DEFAULT_OUTPUT_DIR};
use crate::cpu::CpuProfiler;
use crate::error::{Error, Result};

/// A profiler set up but not yet started.
///
/// ```
/// use std::time::Duration;
/// use agentprof::{profiled, Profiler};
///
/// #[profiled(agent = "researcher")]
/// fn search(query: &str) -> usize {
///     query.split_whitespace().count()
/// }
///
/// let dir = std::env::temp_dir().join(format!("agentprof-doc-{}", std::process::id()));
/// let profiler = Profiler::builder()
///     .window(Duration::from_millis(200))
///     .file_exporter(dir.to_string_lossy())
///     .build()?
///     .start()?;
/// for _ in 0..1_000 {
///     search("where does the time go");
/// }
/// // Cuts the last window, exports it, stops.
/// let summary = profiler.shutdown()?;
/// assert!(summary.stats.windows >= 1);
/// // cpu_profile_*.pb.gz, mem_profile_*.pb.gz, flamegraph_*.svg,
/// // report_*.json and report_*.html per window.
/// assert!(std::fs::read_dir(&dir)?.count() >= 3);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Profiler {
    config: Config,
    exporters: Vec<Box<dyn ProfileExporter>>,
    #[cfg(feature = "gcp")]
    gcp: Option<super::gcp::GcpConfig>,
}

/// Builds a [`Profiler`] in code, starting from the defaults with profiling
/// enabled.
pub struct ProfilerBuilder {
    config: Config,
    exporters: Vec<Box<dyn ProfileExporter>>,
    file_exporter: bool,
    #[cfg(feature = "gcp")]
    gcp: Option<super::gcp::GcpConfig>,
}

impl Profiler {
    /// Applies the environment's overrides to `config`
    /// ([`Config::with_env`]), validates it and sets up the exporter it
    /// names.
    pub fn from_config(config: &Config) -> Result<Profiler> {
        let config = &config.with_env()?;
        if let Some(unsupported) = config.unsupported() {
            return Err(unsupported);
        }
        let e = &config.telemetry.profiling.exporter;
        #[cfg(feature = "gcp")]
        let gcp = (e.type_ == ExporterType::Gcp).then(|| gcp_config(config));
        let exporter: Box<dyn ProfileExporter> = match e.type_ {
            ExporterType::File => Box::new(FileExporter::new(
                e.file_output_dir
                    .clone()
                    .unwrap_or_else(|| DEFAULT_OUTPUT_DIR.to_owned()),
                FileRetention {
                    max_windows: e.max_windows,
                    max_bytes: e.max_bytes,
                    min_free_bytes: e.min_free_bytes,
                },
            )),
            #[cfg(feature = "pyroscope")]
            ExporterType::Pyroscope => {
                Box::new(super::export::PyroscopeExporter::new(pyroscope_config(e))?)
            }
            #[cfg(not(feature = "pyroscope"))]
            ExporterType::Pyroscope => {
                return Err(Error::Unsupported {
                    key: crate::config::keys::EXPORTER_TYPE.path.to_owned(),
                    what: "the Pyroscope exporter".to_owned(),
                    hint: Some("build agentprof with the `pyroscope` feature".to_owned()),
                })
            }
            // The server asks for profiles; windows, if cut, go nowhere.
            #[cfg(feature = "gcp")]
            ExporterType::Gcp => Box::new(None::<FileExporter>),
            #[cfg(not(feature = "gcp"))]
            ExporterType::Gcp => {
                return Err(Error::Unsupported {
                    key: crate::config::keys::EXPORTER_TYPE.path.to_owned(),
                    what: "the Cloud Profiler agent".to_owned(),
                    hint: Some("build agentprof with the `gcp` feature".to_owned()),
                })
            }
        };
        Ok(Profiler {
            config: config.clone(),
            exporters: vec![exporter],
            #[cfg(feature = "gcp")]
            gcp,
        })
    }

    /// A builder, profiling enabled, continuous CPU profiling into the
    /// exporters you add.
    pub fn builder() -> ProfilerBuilder {
        let mut config = Config::default();
        config.telemetry.profiling.enabled = true;
        config.telemetry.profiling.cpu.continuous = true;
        ProfilerBuilder {
            config,
            exporters: Vec::new(),
            file_exporter: false,
            #[cfg(feature = "gcp")]
            gcp: None,
        }
    }

    /// Starts attribution, the heap profiler and the memory timeline as
    /// configured, the exporters, and, with `cpu.continuous = true`, the
    /// CPU sampler and the collector cutting a window every
    /// `cpu.duration_seconds`.
    pub fn start(mut self) -> Result<RunningProfiler> {
        super::init(&self.config)?;
        let p = &self.config.telemetry.profiling;
        let mut running = RunningProfiler {
            shutdown_timeout_ms: p.exporter.shutdown_timeout_ms,
            collector: None,
            #[cfg(feature = "http")]
            http: None,
            #[cfg(feature = "gcp")]
            gcp: None,
        };
        if !self.config.recording() || !crate::built_in::RECORDING {
            return Ok(running);
        }
        #[cfg(feature = "http")]
        if p.http.listen.is_some() {
            running.http = Some(super::http::HttpServer::start(&p.http, p.cpu.frequency)?);
        }
        if p.cpu.continuous {
            self.exporters.start()?;
            let mut cpu = CpuProfiler::new(p.cpu.clone())?;
            cpu.start()?;
            let collector = Collector::start(
                CollectorConfig {
                    window: p.cpu.duration,
                    queue_size: p.exporter.queue_size,
                    shutdown_timeout: Duration::from_millis(p.exporter.shutdown_timeout_ms),
                },
                Some(cpu),
                Box::new(self.exporters),
            )
            .map_err(|e| Error::Resource {
                what: "the collector threads".to_owned(),
                source: e,
            })?;
            running.collector = Some(collector);
        }
        // After the collector: its CPU profiles tap the collector's sampler.
        #[cfg(feature = "gcp")]
        if let Some(gcp) = self.gcp.take() {
            running.gcp = Some(super::gcp::GcpAgent::start(gcp)?);
        }
        Ok(running)
    }
}

impl ProfilerBuilder {
    /// Length of a profile window (`cpu.duration_seconds`).
    pub fn window(mut self, window: Duration) -> Self {
        self.config.telemetry.profiling.cpu.duration = window;
        self
    }

    /// CPU sampling frequency, Hz.
    pub fn cpu_frequency(mut self, hz: u32) -> Self {
        self.config.telemetry.profiling.cpu.frequency = hz;
        self
    }

    /// Sampled heap profiling at the default interval.
    pub fn heap_profiling(mut self, on: bool) -> Self {
        self.config.telemetry.profiling.memory.heap_profiling = on;
        self
    }

    /// Sampled heap profiling, one sample per `bytes` allocated on average
    /// (`memory.sample_interval_bytes`).
    pub fn heap_sample_interval(mut self, bytes: u64) -> Self {
        let memory = &mut self.config.telemetry.profiling.memory;
        memory.heap_profiling = true;
        memory.sample_interval_bytes = Some(bytes);
        self
    }

    /// Windows the export queue holds before dropping the oldest.
    pub fn queue_size(mut self, windows: usize) -> Self {
        self.config.telemetry.profiling.exporter.queue_size = windows;
        self
    }

    /// How long `shutdown` waits for the exporters.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.telemetry.profiling.exporter.shutdown_timeout_ms = timeout.as_millis() as u64;
        self
    }

    /// Writes windows into `dir` with the configured retention.
    pub fn file_exporter(mut self, dir: impl Into<String>) -> Self {
        self.config.telemetry.profiling.exporter.file_output_dir = Some(dir.into());
        self.file_exporter = true;
        self
    }

    /// Serves the live endpoint on `listen` (`"127.0.0.1:6060"`; port 0
    /// picks one, see [`RunningProfiler::http_addr`]).
    #[cfg(feature = "http")]
    pub fn http(mut self, listen: impl Into<String>) -> Self {
        self.config.telemetry.profiling.http.listen = Some(listen.into());
        self
    }

    /// The token the live endpoint asks of every request (required for an
    /// address beyond loopback).
    #[cfg(feature = "http")]
    pub fn http_token(mut self, token: impl Into<crate::config::Secret>) -> Self {
        self.config.telemetry.profiling.http.token = Some(token.into());
        self
    }

    /// Runs the Cloud Profiler agent with `config` (beside any exporters).
    #[cfg(feature = "gcp")]
    pub fn gcp(mut self, config: super::gcp::GcpConfig) -> Self {
        self.gcp = Some(config);
        self
    }

    /// Adds an exporter of your own.
    pub fn exporter(mut self, exporter: impl ProfileExporter + 'static) -> Self {
        self.exporters.push(Box::new(exporter));
        self
    }

    /// Applies the environment's overrides ([`Config::with_env`]),
    /// validates and returns the profiler.
    pub fn build(self) -> Result<Profiler> {
        let mut profiler = if self.file_exporter {
            Profiler::from_config(&self.config)?
        } else {
            Profiler {
                config: self.config.with_env()?,
                exporters: Vec::new(),
                #[cfg(feature = "gcp")]
                gcp: None,
            }
        };
        profiler.exporters.extend(self.exporters);
        #[cfg(feature = "gcp")]
        if self.gcp.is_some() {
            profiler.gcp = self.gcp;
        }
        Ok(profiler)
    }
}

/// A started profiler. Dropping it without `shutdown` stops it the same way.
pub struct RunningProfiler {
    shutdown_timeout_ms: u64,
    collector: Option<Collector>,
    #[cfg(feature = "http")]
    http: Option<super::http::HttpServer>,
    #[cfg(feature = "gcp")]
    gcp: Option<super::gcp::GcpAgent>,
}

impl RunningProfiler {
    /// Collector counters (all zero when no collector runs).
    pub fn stats(&self) -> CollectorStats {
        self.collector
            .as_ref()
            .map_or_else(CollectorStats::default, Collector::stats)
    }

    /// The live endpoint's address, when it runs.
    #[cfg(feature = "http")]
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().map(super::http::HttpServer::local_addr)
    }

    /// The live endpoint's counters, when it runs.
    #[cfg(feature = "http")]
    pub fn http_stats(&self) -> Option<super::http::HttpStats> {
        self.http.as_ref().map(super::http::HttpServer::stats)
    }

    /// The Cloud Profiler agent's counters, when it runs.
    #[cfg(feature = "gcp")]
    pub fn gcp_stats(&self) -> Option<super::gcp::GcpStats> {
        self.gcp.as_ref().map(super::gcp::GcpAgent::stats)
    }

    /// Flushes the last partial window and stops, within the configured
    /// shutdown timeout even when an exporter hangs: then it fails with
    /// [`Error::ExportTimedOut`], naming what was exported (the hanging
    /// exporter is left to finish on its own).
    pub fn shutdown(mut self) -> Result<ShutdownSummary> {
        let summary = self.stop();
        if summary.export_timed_out {
            let s = summary.stats;
            return Err(Error::ExportTimedOut {
                timeout_ms: self.shutdown_timeout_ms,
                windows: s.windows,
                exported: s.exported,
                dropped: s.dropped,
                errors: s.errors,
            });
        }
        Ok(summary)
    }

    fn stop(&mut self) -> ShutdownSummary {
        // The agent and the endpoint first: their profiles tap the
        // sampler the collector is about to stop.
        #[cfg(feature = "gcp")]
        drop(self.gcp.take());
        #[cfg(feature = "http")]
        drop(self.http.take());
        match self.collector.take() {
            Some(collector) => collector.shutdown(),
            None => ShutdownSummary {
                stats: CollectorStats::default(),
                export_timed_out: false,
            },
        }
    }
}

impl Drop for RunningProfiler {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(feature = "pyroscope")]
fn pyroscope_config(e: &crate::config::ProfileExporterConfig) -> super::export::PyroscopeConfig {
    use super::export::{PyroscopeAuth, PyroscopeConfig};
    let application = e
        .application_name
        .clone()
        .unwrap_or_else(super::export::service_name);
    let mut config = PyroscopeConfig::new(
        e.pyroscope_endpoint.clone().unwrap_or_default(),
        application,
    );
    config.tags = e.tags.clone().into_iter().collect();
    config.auth = match (&e.basic_auth_user, &e.basic_auth_password, &e.bearer_token) {
        (Some(user), Some(password), _) => PyroscopeAuth::Basic {
            user: user.clone(),
            password: password.clone(),
        },
        (_, _, Some(token)) => PyroscopeAuth::Bearer(token.clone()),
        _ => PyroscopeAuth::None,
    };
    config.tenant_id = e.tenant_id.clone();
    config.headers = e.headers.clone().into_iter().collect();
    config.timeout = Duration::from_millis(e.timeout_ms);
    config.max_retries = e.max_retries;
    config.labels = e.backend_labels();
    config
}

#[cfg(feature = "gcp")]
fn gcp_config(config: &Config) -> super::gcp::GcpConfig {
    use super::gcp::{GcpConfig, GcpCredentials};
    let p = &config.telemetry.profiling;
    let e = &p.exporter;
    let service = e
        .gcp_service
        .clone()
        .or_else(|| e.application_name.clone())
        .unwrap_or_else(super::export::service_name);
    let mut gcp = GcpConfig::new(service);
    gcp.project_id = e.gcp_project_id.clone();
    gcp.service_version = e.gcp_service_version.clone();
    gcp.zone = e.gcp_zone.clone();
    gcp.labels = e.tags.clone();
    if let Some(endpoint) = &e.gcp_endpoint {
        gcp.endpoint = endpoint.clone();
    }
    gcp.credentials = match (&e.bearer_token, &e.gcp_credentials_file) {
        (Some(token), _) => GcpCredentials::Token(token.clone()),
        (None, Some(path)) => GcpCredentials::ServiceAccountKey(path.into()),
        (None, None) => GcpCredentials::ApplicationDefault,
    };
    gcp.cpu_hz = p.cpu.frequency;
    gcp.sample_labels = e.backend_labels();
    gcp.upload_timeout = Duration::from_millis(e.timeout_ms);
    let (initial, max) = e.gcp_backoff();
    gcp.backoff_initial = Duration::from_millis(initial);
    gcp.backoff_max = Duration::from_millis(max);
    gcp.shutdown_timeout = Duration::from_millis(e.shutdown_timeout_ms);
    gcp
}
