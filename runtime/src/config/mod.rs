//! Configuration: the `[telemetry.profiling]` tables of an application's
//! TOML file, environment overrides, validation, and applying it.
//!
//! ```toml
//! [telemetry]
//! enabled = true
//!
//! [telemetry.profiling]
//! enabled = true
//!
//! [telemetry.profiling.cpu]
//! frequency = 100          # Hz, 1..=10000
//! continuous = false
//! duration_seconds = 30    # window length for continuous profiling
//!
//! [telemetry.profiling.memory]
//! track_allocations = false  # true: record every allocation's stack
//! sampling_rate = 100        # heap sample interval = rate x 512 KiB / 100
//! heap_profiling = false
//! timeline_interval_ms = 1000
//! timeline_capacity = 3600
//!
//! [telemetry.profiling.exporter]
//! type = "file"            # "file" | "pyroscope" | "gcp"
//! file_output_dir = "./profiles"
//!
//! [telemetry.profiling.attribution]
//! recent_invocations = 1024
//! exemplars_per_function = 4  # slowest calls kept per function, window, ranking
//! exemplar_windows = 3
//! label_value_max_len = 128
//! label_values_per_key = 1000
//!
//! [telemetry.profiling.http]  # the live endpoint (feature `http`)
//! listen = "127.0.0.1:6060"   # absent: no endpoint
//! token = "..."               # required to listen beyond loopback
//! max_seconds = 60            # longest profile one request may ask for
//! ```
//!
//! Other tables of the file belong to the application and are ignored;
//! unknown keys inside `[telemetry.profiling]` are errors, so a typo does
//! not silently fall back to a default.
//!
//! Every key can be overridden by an environment variable (see
//! [`env_overrides`]), applied after the file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::model::SampleLabel;

mod env;
pub(crate) mod keys;
mod reference;
mod secret;
mod validate;

pub use env::env_overrides;
pub(crate) use env::env_turns_recording_off;
pub use secret::{redact_url, Secret};
pub(crate) use validate::check_parameter;
#[cfg(feature = "gcp")]
pub(crate) use validate::{cloud_profiler_labels, cloud_profiler_name};

/// The parts of an application's configuration file agentprof reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// `[telemetry]`.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// `[telemetry]`: the application's telemetry switch and our table.
/// Other keys of the table (logging, tracing, metrics) are the
/// application's and are ignored here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TelemetryConfig {
    /// Master switch for all telemetry (default `true`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `[telemetry.profiling]`.
    #[serde(default)]
    pub profiling: ProfilingConfig,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            profiling: ProfilingConfig::default(),
        }
    }
}

fn yes() -> bool {
    true
}

/// `[telemetry.profiling]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilingConfig {
    /// Record invocations (default `false`: profiling is opted into by
    /// configuration).
    #[serde(default)]
    pub enabled: bool,
    /// `[telemetry.profiling.cpu]`.
    #[serde(default)]
    pub cpu: CpuProfilingConfig,
    /// `[telemetry.profiling.memory]`.
    #[serde(default)]
    pub memory: MemoryProfilingConfig,
    /// `[telemetry.profiling.exporter]`.
    #[serde(default)]
    pub exporter: ProfileExporterConfig,
    /// `[telemetry.profiling.attribution]`.
    #[serde(default)]
    pub attribution: AttributionConfig,
    /// `[telemetry.profiling.http]`.
    #[serde(default)]
    pub http: HttpConfig,
}

/// `[telemetry.profiling.cpu]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuProfilingConfig {
    /// Sampling frequency in Hz (default 100).
    #[serde(default = "default_frequency")]
    pub frequency: u32,
    /// Profile window for periodic profiling (key `duration_seconds`,
    /// default 30).
    #[serde(
        default = "default_duration",
        rename = "duration_seconds",
        with = "seconds"
    )]
    pub duration: Duration,
    /// Profile continuously in windows of `duration` (default `false`).
    #[serde(default)]
    pub continuous: bool,
    /// How invocations read the thread CPU clock (default `"auto"`).
    #[serde(default)]
    pub clock: CpuClockConfig,
    /// Labels the samples of local profiles carry: files, the live
    /// endpoint, `CpuReport::pprof` (default `["agent", "function",
    /// "invocation_id", "span_id", "trace_id", "thread"]`; `"thread_id"`
    /// adds the numeric thread id). What a push exporter sends is
    /// `exporter.labels`.
    #[serde(default = "default_local_labels")]
    pub labels: Vec<SampleLabel>,
    /// Where profiles' function names come from (default `"symbols"`).
    #[serde(default)]
    pub symbolize: SymbolizeConfig,
}

/// `telemetry.profiling.cpu.symbolize`, for CPU and heap profiles alike:
/// `"symbols"` names functions from the loaded objects' symbol tables
/// (about 1 MiB, a few milliseconds once); `"debuginfo"` reads their DWARF
/// debug information for inlined frames, files and lines (tens of MiB and
/// hundreds of milliseconds on a large binary with debug info). The
/// environment variable `AGENTPROF_CPU_SYMBOLIZE` takes the same values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolizeConfig {
    /// Symbol tables: function names only.
    #[default]
    Symbols,
    /// DWARF: inlined frames, files and lines.
    DebugInfo,
}

impl std::str::FromStr for SymbolizeConfig {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "symbols" => Ok(Self::Symbols),
            "debuginfo" => Ok(Self::DebugInfo),
            other => Err(format!(
                "unknown symbol source {other:?}; allowed: \"symbols\", \"debuginfo\""
            )),
        }
    }
}

fn default_local_labels() -> Vec<SampleLabel> {
    SampleLabel::LOCAL_DEFAULT.to_vec()
}

/// `telemetry.profiling.cpu.clock`: `"auto"` reads the thread CPU clock in
/// user space where the kernel allows it and falls back to the system call
/// elsewhere; `"syscall"` always uses the system call (for hosts that must
/// not open perf events). The environment variable `AGENTPROF_CPU_CLOCK`
/// takes the same values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuClockConfig {
    /// User space where allowed.
    #[default]
    Auto,
    /// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` always.
    Syscall,
}

impl std::str::FromStr for CpuClockConfig {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "syscall" => Ok(Self::Syscall),
            other => Err(format!(
                "unknown clock {other:?}; allowed: \"auto\", \"syscall\""
            )),
        }
    }
}

fn default_frequency() -> u32 {
    keys::CPU_FREQUENCY.integer_default() as u32
}
fn default_duration() -> Duration {
    Duration::from_secs(keys::CPU_DURATION.integer_default())
}

impl Default for CpuProfilingConfig {
    fn default() -> Self {
        Self {
            frequency: default_frequency(),
            duration: default_duration(),
            continuous: false,
            clock: CpuClockConfig::Auto,
            labels: default_local_labels(),
            symbolize: SymbolizeConfig::Symbols,
        }
    }
}

mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// `[telemetry.profiling.memory]`.
///
/// With the counting allocator installed, allocation totals per process and
/// per invocation are always kept (they are counters, cheap). These keys
/// control the heap profiler, which records stacks:
///
/// - `heap_profiling = true` samples allocations with a mean interval of
///   `sampling_rate x 512 KiB / 100` bytes: the default `sampling_rate = 100`
///   gives 512 KiB, Go's default; `1` gives 5 KiB (about 100x more samples).
///   `sample_interval_bytes`, when set, is used instead.
/// - `track_allocations = true` records every allocation (interval 1 byte):
///   exact, and expensive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryProfilingConfig {
    /// Record the stack of every allocation (default `false`).
    #[serde(default)]
    pub track_allocations: bool,
    /// Heap sampling density; see the type docs (default 100).
    #[serde(default = "default_sampling_rate")]
    pub sampling_rate: u64,
    /// Sampled heap profile (default `false`).
    #[serde(default)]
    pub heap_profiling: bool,
    /// Mean bytes between heap samples, overriding `sampling_rate`.
    #[serde(default)]
    pub sample_interval_bytes: Option<u64>,
    /// Period of the RSS/allocator timeline in ms (default 1000; 0: off).
    #[serde(default = "default_timeline_interval")]
    pub timeline_interval_ms: u64,
    /// Readings the timeline keeps (default 3600).
    #[serde(default = "default_timeline_capacity")]
    pub timeline_capacity: usize,
}

impl MemoryProfilingConfig {
    /// Mean bytes between heap samples this configuration asks for, or
    /// `None` when it asks for no heap profiling.
    pub fn heap_sample_interval(&self) -> Option<u64> {
        if self.track_allocations {
            return Some(1);
        }
        self.heap_profiling.then(|| {
            self.sample_interval_bytes
                .unwrap_or((self.sampling_rate.saturating_mul(512 * 1024) / 100).max(1))
        })
    }
}

fn default_timeline_interval() -> u64 {
    keys::MEMORY_TIMELINE_INTERVAL.integer_default()
}
fn default_timeline_capacity() -> usize {
    keys::MEMORY_TIMELINE_CAPACITY.integer_default() as usize
}
fn default_sampling_rate() -> u64 {
    keys::MEMORY_SAMPLING_RATE.integer_default()
}

impl Default for MemoryProfilingConfig {
    fn default() -> Self {
        Self {
            track_allocations: false,
            sampling_rate: default_sampling_rate(),
            heap_profiling: false,
            sample_interval_bytes: None,
            timeline_interval_ms: default_timeline_interval(),
            timeline_capacity: default_timeline_capacity(),
        }
    }
}

/// Where continuous profiles go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExporterType {
    /// Files in `file_output_dir`.
    #[default]
    File,
    /// A Pyroscope server at `pyroscope_endpoint`.
    Pyroscope,
    /// Google Cloud Profiler: the server asks for profiles, the agent
    /// collects and uploads them (`gcp_*` keys).
    Gcp,
}

impl std::str::FromStr for ExporterType {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "file" => Ok(Self::File),
            "pyroscope" => Ok(Self::Pyroscope),
            "gcp" => Ok(Self::Gcp),
            other => Err(format!(
                "unknown exporter {other:?}; allowed: \"file\", \"pyroscope\", \"gcp\""
            )),
        }
    }
}

impl<'de> Deserialize<'de> for ExporterType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `[telemetry.profiling.exporter]`.
///
/// `Debug` and `Serialize` show secrets (password, token, header values) as
/// `<redacted>` and the endpoint without credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileExporterConfig {
    /// Exporter kind (key `type`, default `"file"`).
    #[serde(default, rename = "type")]
    pub type_: ExporterType,
    /// Pyroscope base URL, required with `type = "pyroscope"`.
    #[serde(default, serialize_with = "secret::serialize_redacted_url")]
    pub pyroscope_endpoint: Option<String>,
    /// The `service_name` series label (default: the executable's name).
    #[serde(default)]
    pub application_name: Option<String>,
    /// Static labels: Pyroscope's series labels, Cloud Profiler's
    /// deployment labels.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Per-sample labels of the CPU profiles a backend receives (default:
    /// Pyroscope `["agent", "function", "thread", "span_id"]`, Cloud
    /// Profiler `["agent", "function", "thread"]`). Labels with a value
    /// per invocation or thread (`invocation_id`, `trace_id`,
    /// `thread_id`) are refused: the backend would make a series of each.
    #[serde(default)]
    pub labels: Option<Vec<SampleLabel>>,
    /// Cloud Profiler: the Google Cloud project (default: the credentials'
    /// project).
    #[serde(default)]
    pub gcp_project_id: Option<String>,
    /// Cloud Profiler: the service name, the deployment's target (default:
    /// `application_name`, else the executable's name).
    #[serde(default)]
    pub gcp_service: Option<String>,
    /// Cloud Profiler: the `version` deployment label.
    #[serde(default)]
    pub gcp_service_version: Option<String>,
    /// Cloud Profiler: the `zone` deployment label (default: the metadata
    /// server's, on Google Cloud).
    #[serde(default)]
    pub gcp_zone: Option<String>,
    /// Cloud Profiler: the API's base URL (default
    /// `https://cloudprofiler.googleapis.com`).
    #[serde(default)]
    pub gcp_endpoint: Option<String>,
    /// Cloud Profiler: a service-account key file (default: Application
    /// Default Credentials). `bearer_token` instead sends a fixed token.
    #[serde(default)]
    pub gcp_credentials_file: Option<String>,
    /// Cloud Profiler: first wait after a failed request, ms (default
    /// 60000); it grows 1.3 times per failure, with jitter.
    #[serde(default)]
    pub gcp_backoff_initial_ms: Option<u64>,
    /// Cloud Profiler: longest wait after failures, ms (default 3600000).
    #[serde(default)]
    pub gcp_backoff_max_ms: Option<u64>,
    /// HTTP basic auth user (with `basic_auth_password`).
    #[serde(default)]
    pub basic_auth_user: Option<String>,
    /// HTTP basic auth password.
    #[serde(default)]
    pub basic_auth_password: Option<Secret>,
    /// Bearer token.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// `X-Scope-OrgID` tenant header.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// More request headers (values are secrets: they often carry keys).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Secret>,
    /// Per-request timeout, ms (default 10000).
    #[serde(default = "default_push_timeout")]
    pub timeout_ms: u64,
    /// Retries on 5xx and timeouts (default 2).
    #[serde(default = "default_push_retries")]
    pub max_retries: u32,
    /// Output directory of the file exporter (default `./profiles`).
    #[serde(default = "default_output_dir")]
    pub file_output_dir: Option<String>,
    /// Windows the file exporter keeps (default 48).
    #[serde(default = "default_max_windows")]
    pub max_windows: usize,
    /// Bytes the file exporter keeps (default 256 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Bytes the file exporter keeps free on its filesystem, deleting its
    /// own oldest windows to do so (default: 5% of the filesystem, at most
    /// 256 MiB; 0 turns the reserve off).
    #[serde(default)]
    pub min_free_bytes: Option<u64>,
    /// Windows waiting for the exporters before the oldest is dropped
    /// (default 4).
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// How long shutdown waits for the exporters, ms (default 5000).
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_ms: u64,
}

impl std::fmt::Debug for ProfileExporterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileExporterConfig")
            .field("type_", &self.type_)
            .field(
                "pyroscope_endpoint",
                &self.pyroscope_endpoint.as_deref().map(redact_url),
            )
            .field("application_name", &self.application_name)
            .field("tags", &self.tags)
            .field("labels", &self.labels)
            .field("gcp_project_id", &self.gcp_project_id)
            .field("gcp_service", &self.gcp_service)
            .field("gcp_service_version", &self.gcp_service_version)
            .field("gcp_zone", &self.gcp_zone)
            .field(
                "gcp_endpoint",
                &self.gcp_endpoint.as_deref().map(redact_url),
            )
            .field("gcp_credentials_file", &self.gcp_credentials_file)
            .field("gcp_backoff_initial_ms", &self.gcp_backoff_initial_ms)
            .field("gcp_backoff_max_ms", &self.gcp_backoff_max_ms)
            .field("basic_auth_user", &self.basic_auth_user)
            .field("basic_auth_password", &self.basic_auth_password)
            .field("bearer_token", &self.bearer_token)
            .field("tenant_id", &self.tenant_id)
            .field("headers", &self.headers)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_retries", &self.max_retries)
            .field("file_output_dir", &self.file_output_dir)
            .field("max_windows", &self.max_windows)
            .field("max_bytes", &self.max_bytes)
            .field("min_free_bytes", &self.min_free_bytes)
            .field("queue_size", &self.queue_size)
            .field("shutdown_timeout_ms", &self.shutdown_timeout_ms)
            .finish()
    }
}

fn default_push_timeout() -> u64 {
    keys::TIMEOUT_MS.integer_default()
}
fn default_push_retries() -> u32 {
    keys::MAX_RETRIES.integer_default() as u32
}
fn default_max_windows() -> usize {
    keys::MAX_WINDOWS.integer_default() as usize
}
fn default_max_bytes() -> u64 {
    keys::MAX_BYTES.integer_default()
}
fn default_queue_size() -> usize {
    keys::QUEUE_SIZE.integer_default() as usize
}
fn default_shutdown_timeout() -> u64 {
    keys::SHUTDOWN_TIMEOUT_MS.integer_default()
}

/// Where the file exporter writes when `file_output_dir` is not set.
pub(crate) const DEFAULT_OUTPUT_DIR: &str = "./profiles";

fn default_output_dir() -> Option<String> {
    Some(DEFAULT_OUTPUT_DIR.to_owned())
}

impl Default for ProfileExporterConfig {
    fn default() -> Self {
        Self {
            type_: ExporterType::File,
            pyroscope_endpoint: None,
            application_name: None,
            tags: Default::default(),
            labels: None,
            gcp_project_id: None,
            gcp_service: None,
            gcp_service_version: None,
            gcp_zone: None,
            gcp_endpoint: None,
            gcp_credentials_file: None,
            gcp_backoff_initial_ms: None,
            gcp_backoff_max_ms: None,
            basic_auth_user: None,
            basic_auth_password: None,
            bearer_token: None,
            tenant_id: None,
            headers: Default::default(),
            timeout_ms: default_push_timeout(),
            max_retries: default_push_retries(),
            file_output_dir: default_output_dir(),
            max_windows: default_max_windows(),
            max_bytes: default_max_bytes(),
            min_free_bytes: None,
            queue_size: default_queue_size(),
            shutdown_timeout_ms: default_shutdown_timeout(),
        }
    }
}

/// `[telemetry.profiling.http]`: the live endpoint (`/debug/pprof/*`,
/// `/debug/agentprof/*`), built with the `http` feature.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, e.g. `"127.0.0.1:6060"` (port 0 picks a free
    /// one); absent, no endpoint runs.
    #[serde(default)]
    pub listen: Option<String>,
    /// Bearer token every request must carry (`Authorization: Bearer`, or
    /// as the password of basic auth). Required for an address that is not
    /// loopback.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Longest CPU profile one request may ask for, seconds (default 60);
    /// longer requests are cut to it.
    #[serde(default = "default_http_max_seconds")]
    pub max_seconds: u64,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("token", &self.token)
            .field("max_seconds", &self.max_seconds)
            .finish()
    }
}

fn default_http_max_seconds() -> u64 {
    keys::HTTP_MAX_SECONDS.integer_default()
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: None,
            token: None,
            max_seconds: default_http_max_seconds(),
        }
    }
}

/// `[telemetry.profiling.attribution]`: bounds of the per-invocation stores.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributionConfig {
    /// Finished invocations kept for lookup by id (default 1024, at most
    /// 1,000,000; 0 keeps none).
    #[serde(default = "default_recent")]
    pub recent_invocations: usize,
    /// Slowest invocations kept per function, window and ranking (CPU,
    /// wall), with their callee tree and CPU samples (default 4, at most
    /// 64; 0 keeps none).
    #[serde(default = "default_exemplars")]
    pub exemplars_per_function: usize,
    /// Continuous windows whose exemplars are kept, the current one
    /// included (default 3).
    #[serde(default = "default_exemplar_windows")]
    pub exemplar_windows: usize,
    /// Longest label value in bytes; longer ones are cut (default 128).
    #[serde(default = "default_label_len")]
    pub label_value_max_len: usize,
    /// Distinct values kept per label key; later ones become `__overflow__`
    /// (default 1000).
    #[serde(default = "default_label_values")]
    pub label_values_per_key: usize,
}

fn default_recent() -> usize {
    keys::RECENT_INVOCATIONS.integer_default() as usize
}
fn default_exemplars() -> usize {
    keys::EXEMPLARS_PER_FUNCTION.integer_default() as usize
}
fn default_exemplar_windows() -> usize {
    keys::EXEMPLAR_WINDOWS.integer_default() as usize
}
fn default_label_len() -> usize {
    keys::LABEL_VALUE_MAX_LEN.integer_default() as usize
}
fn default_label_values() -> usize {
    keys::LABEL_VALUES_PER_KEY.integer_default() as usize
}

impl Default for AttributionConfig {
    fn default() -> Self {
        Self {
            recent_invocations: default_recent(),
            exemplars_per_function: default_exemplars(),
            exemplar_windows: default_exemplar_windows(),
            label_value_max_len: default_label_len(),
            label_values_per_key: default_label_values(),
        }
    }
}

/// Default mean sampling interval: 512 KiB, as Go's `MemProfileRate`.
pub const DEFAULT_SAMPLE_INTERVAL: u64 = 512 * 1024;

/// Sizes of the heap profiler's fixed tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapProfilerConfig {
    /// Mean bytes between samples (1 samples every allocation).
    pub sample_interval: u64,
    /// Distinct (stack, agent, function) buckets kept.
    pub max_stacks: usize,
    /// Sampled allocations that can be live at once.
    pub max_live_samples: usize,
}

impl Default for HeapProfilerConfig {
    fn default() -> Self {
        Self {
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
            max_stacks: 4096,
            max_live_samples: 65_536,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_labels_per_destination_refuse_unbounded_ones_for_backends() {
        let config = |exporter: &str| {
            Config::from_toml_str(&format!(
                "[telemetry.profiling.cpu]\nlabels = [\"agent\", \"thread_id\"]\n\
                 [telemetry.profiling.exporter]\n{exporter}"
            ))
        };
        let pyroscope = "type = \"pyroscope\"\npyroscope_endpoint = \"http://localhost:4040\"\n";
        let c = config(pyroscope).unwrap();
        assert_eq!(
            c.telemetry.profiling.cpu.labels,
            [SampleLabel::Agent, SampleLabel::ThreadId]
        );
        assert_eq!(
            c.telemetry.profiling.exporter.backend_labels(),
            SampleLabel::PYROSCOPE_DEFAULT
        );
        for unbounded in ["invocation_id", "trace_id", "thread_id"] {
            let e = config(&format!("{pyroscope}labels = [\"agent\", \"{unbounded}\"]"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("telemetry.profiling.exporter.labels") && e.contains(unbounded),
                "{e}"
            );
        }
        let e = config("labels = [\"agent\"]").unwrap_err().to_string();
        assert!(e.contains("cpu.labels"), "{e}");
        let e = config(&format!("{pyroscope}labels = [\"agnet\"]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("agnet"), "{e}");
        let mut gcp = ProfileExporterConfig {
            type_: ExporterType::Gcp,
            ..Default::default()
        };
        assert_eq!(gcp.backend_labels(), SampleLabel::CLOUD_PROFILER_DEFAULT);
        gcp.labels = Some(vec![SampleLabel::Agent]);
        assert_eq!(gcp.backend_labels(), [SampleLabel::Agent]);
    }

    #[test]
    fn parse_errors_name_the_place_and_never_quote_a_secret() {
        let cases = [
            (
                "[telemetry.profiling.exporter]\nbearer_token = [\"SECRET-1234\"]\n",
                "telemetry.profiling.exporter.bearer_token",
                2,
            ),
            (
                "[telemetry.profiling.exporter]\ntype = \"file\"\nheaders.Authorization = [\"Bearer SECRET-1234\"]\n",
                "telemetry.profiling.exporter.headers.Authorization",
                3,
            ),
            (
                "[telemetry.profiling.http]\ntoken = \"SECRET-1234-5678-90\" junk\n",
                "telemetry.profiling.http.token",
                2,
            ),
            (
                "[telemetry.profiling.exporter]\nbasic_auth_user = \"u\"\nbasic_auth_password = \"SECRET-hunter2\n",
                "telemetry.profiling.exporter.basic_auth_password",
                3,
            ),
        ];
        for (text, key, line) in cases {
            let e = Config::from_toml_str(text).unwrap_err().to_string();
            assert!(!e.contains("SECRET"), "{e}");
            assert!(e.contains(&format!("line {line}, column ")), "{e}");
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn line_breaks_and_nul_cannot_reach_requests_or_paths() {
        let pyroscope = "[telemetry.profiling.exporter]\ntype = \"pyroscope\"\n\
                         pyroscope_endpoint = \"http://localhost:4040\"\n";
        for (extra, key) in [
            (
                "headers.X-Key = \"SECRET\\r\\nX-Evil: 1\"",
                "exporter.headers.X-Key",
            ),
            ("headers.\"X Key\" = \"v\"", "exporter.headers.X Key"),
            ("tenant_id = \"team\\nX-Evil: 1\"", "exporter.tenant_id"),
            (
                "file_output_dir = \"/tmp/a\\u0000b\"",
                "exporter.file_output_dir",
            ),
        ] {
            let e = Config::from_toml_str(&format!("{pyroscope}{extra}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && !e.contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn cloud_profiler_labels_follow_the_apis_rules() {
        let gcp = |tags: &str| {
            Config::from_toml_str(&format!(
                "[telemetry.profiling.exporter]\ntype = \"gcp\"\ngcp_project_id = \"p\"\n\
                 [telemetry.profiling.exporter.tags]\n{tags}\n"
            ))
        };
        assert!(gcp("team = \"agents\"\nteam-2 = \"b\"").is_ok());
        for (tags, key) in [
            ("team_a = \"x\"", "tags.team_a"),
            ("\"team.a\" = \"x\"", "tags.team.a"),
            ("-team = \"x\"", "tags.-team"),
            ("language = \"go\"", "tags.language"),
            (&format!("team = \"{}\"", "v".repeat(513)), "tags.team"),
            (
                &format!("a = \"{0}\"\nb = \"{0}\"\nc = \"{0}\"", "v".repeat(400)),
                "exporter.tags",
            ),
        ] {
            let e = gcp(tags).unwrap_err().to_string();
            assert!(e.contains(key), "{tags}: {e}");
        }
    }

    #[test]
    fn environment_overrides_apply_over_code() {
        let mut config = Config::default();
        config.telemetry.profiling.enabled = true;
        config.telemetry.profiling.cpu.frequency = 250;
        config
            .apply_env(|name| (name == "AGENTPROF_PROFILING_ENABLED").then(|| "false".to_owned()))
            .unwrap();
        assert!(!config.recording());
        assert_eq!(config.telemetry.profiling.cpu.frequency, 250);
    }

    const DESIGN_EXAMPLE: &str = r#"
[telemetry]
enabled = true

[telemetry.profiling]
enabled = true

[telemetry.profiling.cpu]
frequency = 100  # Hz
continuous = true
duration_seconds = 30

[telemetry.profiling.memory]
track_allocations = false
sampling_rate = 100  # Sample 1%
heap_profiling = false

[telemetry.profiling.exporter]
type = "pyroscope"
pyroscope_endpoint = "http://localhost:4040"

# For GCP:
# type = "gcp"
# gcp_project_id = "my-project"

# For local files:
# type = "file"
# file_output_dir = "./profiles"
"#;

    #[test]
    fn design_document_example_parses_as_written() {
        let c = Config::from_toml_str(DESIGN_EXAMPLE).unwrap();
        let p = &c.telemetry.profiling;
        assert!(c.telemetry.enabled && p.enabled);
        assert_eq!(p.cpu.frequency, 100);
        assert!(p.cpu.continuous);
        assert_eq!(p.cpu.duration, Duration::from_secs(30));
        assert_eq!(p.memory.sampling_rate, 100);
        assert_eq!(p.exporter.type_, ExporterType::Pyroscope);
        assert_eq!(
            p.exporter.pyroscope_endpoint.as_deref(),
            Some("http://localhost:4040")
        );
    }

    #[test]
    fn capabilities_not_in_this_build_are_refused_by_key() {
        let c = Config::from_toml_str(DESIGN_EXAMPLE).unwrap();
        if cfg!(feature = "pyroscope") {
            assert!(c.unsupported().is_none());
        } else {
            let err = c
                .unsupported()
                .expect("the Pyroscope exporter is not in this build")
                .to_string();
            assert!(
                err.contains("telemetry.profiling.exporter.type") && err.contains("pyroscope"),
                "{err}"
            );
        }
        let off = Config::from_toml_str("[telemetry.profiling]\nenabled = true\n").unwrap();
        assert!(off.unsupported().is_none());
    }

    #[test]
    fn the_design_documents_gcp_variant_parses_and_needs_the_gcp_feature() {
        let c = Config::from_toml_str(
            "[telemetry.profiling]\nenabled = true\n[telemetry.profiling.exporter]\n\
             type = \"gcp\"\ngcp_project_id = \"my-project\"\n",
        )
        .unwrap();
        let e = &c.telemetry.profiling.exporter;
        assert_eq!(e.type_, ExporterType::Gcp);
        assert_eq!(e.gcp_project_id.as_deref(), Some("my-project"));
        if cfg!(feature = "gcp") {
            assert!(c.unsupported().is_none());
        } else {
            let err = c
                .unsupported()
                .expect("the Cloud Profiler agent is not in this build")
                .to_string();
            assert!(
                err.contains("telemetry.profiling.exporter.type") && err.contains("`gcp` feature"),
                "{err}"
            );
        }
    }

    #[test]
    fn gcp_keys_are_checked_by_name() {
        let error = |body: &str| {
            Config::from_toml_str(&format!("[telemetry.profiling.exporter]\n{body}"))
                .unwrap_err()
                .to_string()
        };
        let cases = [
            // Keys of one exporter given to another.
            (
                "gcp_backoff_max_ms = 5\n",
                "exporter.gcp_backoff_max_ms",
                "type = \"gcp\"",
            ),
            (
                "gcp_project_id = \"p\"\n",
                "exporter.gcp_project_id",
                "type = \"gcp\"",
            ),
            (
                "type = \"pyroscope\"\npyroscope_endpoint = \"http://x\"\ngcp_zone = \"z\"\n",
                "exporter.gcp_zone",
                "type = \"gcp\"",
            ),
            (
                "type = \"gcp\"\ntenant_id = \"t\"\n",
                "exporter.tenant_id",
                "type = \"pyroscope\"",
            ),
            (
                "type = \"gcp\"\nbasic_auth_user = \"u\"\nbasic_auth_password = \"p\"\n",
                "exporter.basic_auth_user",
                "gcp_credentials_file",
            ),
            // Values.
            (
                "type = \"gcp\"\ngcp_service = \"Checkout\"\n",
                "exporter.gcp_service",
                "lowercase",
            ),
            (
                "type = \"gcp\"\ngcp_service = \"-x\"\n",
                "exporter.gcp_service",
                "lowercase",
            ),
            (
                "type = \"gcp\"\ngcp_project_id = \"My Project\"\n",
                "exporter.gcp_project_id",
                "project id",
            ),
            (
                "type = \"gcp\"\ngcp_endpoint = \"cloudprofiler\"\n",
                "exporter.gcp_endpoint",
                "http",
            ),
            (
                "type = \"gcp\"\ngcp_zone = \"\"\n",
                "exporter.gcp_zone",
                "must not be empty",
            ),
            (
                &format!(
                    "type = \"gcp\"\ngcp_service_version = \"{}\"\n",
                    "v".repeat(513)
                ),
                "exporter.gcp_service_version",
                "at most 512 bytes",
            ),
            (
                "type = \"gcp\"\n[telemetry.profiling.exporter.tags]\nzone = \"z\"\n",
                "exporter.tags.zone",
                "gcp_zone",
            ),
            (
                "type = \"gcp\"\n[telemetry.profiling.exporter.tags]\nTeam = \"a\"\n",
                "exporter.tags.Team",
                "label key",
            ),
            (
                "type = \"gcp\"\ngcp_credentials_file = \"k.json\"\nbearer_token = \"t\"\n",
                "exporter.bearer_token",
                "not both",
            ),
            (
                "type = \"gcp\"\ngcp_backoff_initial_ms = 0\n",
                "exporter.gcp_backoff_initial_ms",
                "1 to",
            ),
            (
                "type = \"gcp\"\ngcp_backoff_initial_ms = 5000\ngcp_backoff_max_ms = 1000\n",
                "exporter.gcp_backoff_max_ms",
                "5000 to",
            ),
        ];
        for (body, key, hint) in cases {
            let e = error(body);
            assert!(
                e.contains(&format!("telemetry.profiling.{key}")) && e.contains(hint),
                "{body}: {e}"
            );
        }
        let good = Config::from_toml_str(
            "[telemetry.profiling.exporter]\ntype = \"gcp\"\ngcp_service = \"checkout.api_v2\"\n\
             gcp_project_id = \"agentprof-test\"\ngcp_zone = \"europe-west1-b\"\n\
             gcp_endpoint = \"http://127.0.0.1:9\"\nbearer_token = \"ya29.secret-token\"\n\
             [telemetry.profiling.exporter.tags]\nteam = \"agents\"\n",
        )
        .unwrap();
        assert!(!format!("{good:?}").contains("secret-token"));
        let mut env = good.clone();
        env.apply_env(|name| {
            (name == "AGENTPROF_EXPORTER_GCP_PROJECT_ID").then(|| "from-env".to_owned())
        })
        .unwrap();
        assert_eq!(
            env.telemetry.profiling.exporter.gcp_project_id.as_deref(),
            Some("from-env")
        );
    }

    #[test]
    fn other_application_tables_are_ignored() {
        let c = Config::from_toml_str(
            "[server]\nport = 8080\n[telemetry]\nlogging = true\n[telemetry.tracing]\nx = 1\n",
        )
        .unwrap();
        assert!(c.telemetry.enabled);
        assert!(!c.telemetry.profiling.enabled);
    }

    #[test]
    fn errors_name_the_key_and_what_is_allowed() {
        let e = Config::from_toml_str("[telemetry.profiling.cpu]\nfrequency = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("telemetry.profiling.cpu.frequency") && e.contains("1 to 10000"),
            "{e}"
        );
        let e = Config::from_toml_str("[telemetry.profiling.cpu]\nfrequncy = 10\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("frequncy") && e.contains("frequency"), "{e}");
        let e = Config::from_toml_str("[telemetry.profiling.exporter]\ntype = \"datadog\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("datadog") && e.contains("\"file\", \"pyroscope\", \"gcp\""),
            "{e}"
        );
        let e = Config::from_toml_str("[telemetry.profiling.exporter]\ntype = \"pyroscope\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("telemetry.profiling.exporter.pyroscope_endpoint"),
            "{e}"
        );
        let e = Config::from_toml_str("[telemetry.profiling.cpu]\nfrequency = \"fast\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("frequency"), "{e}");
    }

    #[test]
    fn sampling_rate_maps_to_a_byte_interval() {
        let mut m = MemoryProfilingConfig::default();
        assert_eq!(m.heap_sample_interval(), None);
        m.heap_profiling = true;
        assert_eq!(m.heap_sample_interval(), Some(512 * 1024));
        m.sampling_rate = 1;
        assert_eq!(m.heap_sample_interval(), Some(5242));
        m.sample_interval_bytes = Some(4096);
        assert_eq!(m.heap_sample_interval(), Some(4096));
        m.track_allocations = true;
        assert_eq!(m.heap_sample_interval(), Some(1));
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut c = Config::from_toml_str(DESIGN_EXAMPLE).unwrap();
        let env = |name: &str| match name {
            "AGENTPROF_CPU_FREQUENCY" => Some("250".to_owned()),
            "AGENTPROF_CPU_CONTINUOUS" => Some("false".to_owned()),
            "AGENTPROF_EXPORTER_TYPE" => Some("file".to_owned()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.telemetry.profiling.cpu.frequency, 250);
        assert!(!c.telemetry.profiling.cpu.continuous);
        assert_eq!(c.telemetry.profiling.exporter.type_, ExporterType::File);
        let e = c
            .apply_env(|n| (n == "AGENTPROF_PROFILING_ENABLED").then(|| "maybe".to_owned()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("telemetry.profiling.enabled") && e.contains("AGENTPROF_PROFILING_ENABLED"),
            "{e}"
        );
        let e = c
            .apply_env(|n| (n == "AGENTPROF_CPU_FREQUENCY").then(|| "20000".to_owned()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 to 10000"), "{e}");
    }

    #[test]
    fn the_http_table_is_checked_by_key_and_keeps_its_token_secret() {
        let token = "a-token-of-24-characters";
        let c = Config::from_toml_str(&format!(
            "[telemetry.profiling]\nenabled = true\n[telemetry.profiling.http]\n\
             listen = \"127.0.0.1:6060\"\ntoken = \"{token}\"\nmax_seconds = 30\n"
        ))
        .unwrap();
        assert_eq!(c.telemetry.profiling.http.max_seconds, 30);
        assert!(!format!("{c:?}").contains(token), "Debug shows the token");
        if cfg!(feature = "http") {
            assert!(c.unsupported().is_none());
        } else {
            let e = c.unsupported().expect("refused").to_string();
            assert!(
                e.contains(keys::HTTP_LISTEN.path) && e.contains("`http` feature"),
                "{e}"
            );
        }
        for (table, key) in [
            ("max_seconds = 0", keys::HTTP_MAX_SECONDS.path),
            ("max_seconds = 3601", keys::HTTP_MAX_SECONDS.path),
            ("token = \"short\"", keys::HTTP_TOKEN.path),
            (
                "token = \"has a space in the middle!\"",
                keys::HTTP_TOKEN.path,
            ),
            ("listen = \"6060\"", keys::HTTP_LISTEN.path),
            ("listn = \"127.0.0.1:6060\"", "listn"),
        ] {
            let e = Config::from_toml_str(&format!("[telemetry.profiling.http]\n{table}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{table}: {e}");
            assert!(!e.contains("short\"") && !e.contains("has a space"), "{e}");
        }
        let mut c = Config::default();
        c.apply_env(|n| match n {
            "AGENTPROF_HTTP_LISTEN" => Some(" 127.0.0.1:0 ".to_owned()),
            "AGENTPROF_HTTP_TOKEN" => Some(token.to_owned()),
            "AGENTPROF_HTTP_MAX_SECONDS" => Some("5".to_owned()),
            _ => None,
        })
        .unwrap();
        let http = &c.telemetry.profiling.http;
        assert_eq!(http.listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(http.token.as_ref().map(Secret::expose), Some(token));
        assert_eq!(http.max_seconds, 5);
    }
}
