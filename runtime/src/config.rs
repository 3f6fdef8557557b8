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
//! type = "file"            # "file" | "pyroscope"
//! file_output_dir = "./profiles"
//!
//! [telemetry.profiling.attribution]
//! recent_invocations = 1024
//! label_value_max_len = 128
//! label_values_per_key = 1000
//! ```
//!
//! Other tables of the file belong to the application and are ignored;
//! unknown keys inside `[telemetry.profiling]` are errors, so a typo does
//! not silently fall back to a default.
//!
//! Every key can be overridden by an environment variable (see
//! [`env_overrides`]), applied after the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
    /// Record invocations (default `false`, as in the design document:
    /// profiling is opted into by configuration).
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
}

fn default_frequency() -> u32 {
    100
}
fn default_duration() -> Duration {
    Duration::from_secs(30)
}

impl Default for CpuProfilingConfig {
    fn default() -> Self {
        Self {
            frequency: default_frequency(),
            duration: default_duration(),
            continuous: false,
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
    1000
}
fn default_timeline_capacity() -> usize {
    3600
}

fn default_sampling_rate() -> u64 {
    100
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
}

impl std::str::FromStr for ExporterType {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "file" => Ok(Self::File),
            "pyroscope" => Ok(Self::Pyroscope),
            "gcp" => Err("\"gcp\" (Cloud Profiler) is not supported by agentprof; allowed: \"file\", \"pyroscope\"".into()),
            other => Err(format!("unknown exporter {other:?}; allowed: \"file\", \"pyroscope\"")),
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileExporterConfig {
    /// Exporter kind (key `type`, default `"file"`).
    #[serde(default, rename = "type")]
    pub type_: ExporterType,
    /// Pyroscope base URL, required with `type = "pyroscope"`.
    #[serde(default)]
    pub pyroscope_endpoint: Option<String>,
    /// The `service_name` series label (default: the executable's name).
    #[serde(default)]
    pub application_name: Option<String>,
    /// Static series labels.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// HTTP basic auth user (with `basic_auth_password`).
    #[serde(default)]
    pub basic_auth_user: Option<String>,
    /// HTTP basic auth password.
    #[serde(default)]
    pub basic_auth_password: Option<String>,
    /// Bearer token.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// `X-Scope-OrgID` tenant header.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// More request headers.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
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
    /// Windows waiting for the exporters before the oldest is dropped
    /// (default 4).
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// How long shutdown waits for the exporters, ms (default 5000).
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_ms: u64,
}

fn default_push_timeout() -> u64 {
    10_000
}
fn default_push_retries() -> u32 {
    2
}
fn default_max_windows() -> usize {
    48
}
fn default_max_bytes() -> u64 {
    256 << 20
}
fn default_queue_size() -> usize {
    4
}
fn default_shutdown_timeout() -> u64 {
    5000
}

fn default_output_dir() -> Option<String> {
    Some("./profiles".to_owned())
}

impl Default for ProfileExporterConfig {
    fn default() -> Self {
        Self {
            type_: ExporterType::File,
            pyroscope_endpoint: None,
            application_name: None,
            tags: Default::default(),
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
            queue_size: default_queue_size(),
            shutdown_timeout_ms: default_shutdown_timeout(),
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
    /// Longest label value in bytes; longer ones are cut (default 128).
    #[serde(default = "default_label_len")]
    pub label_value_max_len: usize,
    /// Distinct values kept per label key; later ones become `__overflow__`
    /// (default 1000).
    #[serde(default = "default_label_values")]
    pub label_values_per_key: usize,
}

fn default_recent() -> usize {
    1024
}
fn default_label_len() -> usize {
    128
}
fn default_label_values() -> usize {
    1000
}

impl Default for AttributionConfig {
    fn default() -> Self {
        Self {
            recent_invocations: default_recent(),
            label_value_max_len: default_label_len(),
            label_values_per_key: default_label_values(),
        }
    }
}

type Setter = fn(&mut Config, &str) -> std::result::Result<(), String>;

fn parse_bool(v: &str) -> std::result::Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{v:?} is not a boolean; allowed: true, false, 1, 0"
        )),
    }
}

fn parse_num<T: std::str::FromStr>(v: &str) -> std::result::Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a non-negative integer"))
}

/// One environment variable that overrides one key.
struct Override {
    variable: &'static str,
    key: &'static str,
    set: Setter,
}

macro_rules! overrides {
    ($($variable:literal => $key:literal : |$c:ident, $v:ident| $field:expr => $parse:expr;)*) => {
        &[$(Override {
            variable: $variable,
            key: $key,
            set: |$c, $v| {
                $field = $parse;
                Ok(())
            },
        }),*]
    };
}

const OVERRIDES: &[Override] = overrides! {
    "AGENTPROF_TELEMETRY_ENABLED" => "telemetry.enabled":
        |c, v| c.telemetry.enabled => parse_bool(v)?;
    "AGENTPROF_PROFILING_ENABLED" => "telemetry.profiling.enabled":
        |c, v| c.telemetry.profiling.enabled => parse_bool(v)?;
    "AGENTPROF_CPU_FREQUENCY" => "telemetry.profiling.cpu.frequency":
        |c, v| c.telemetry.profiling.cpu.frequency => parse_num(v)?;
    "AGENTPROF_CPU_CONTINUOUS" => "telemetry.profiling.cpu.continuous":
        |c, v| c.telemetry.profiling.cpu.continuous => parse_bool(v)?;
    "AGENTPROF_CPU_DURATION_SECONDS" => "telemetry.profiling.cpu.duration_seconds":
        |c, v| c.telemetry.profiling.cpu.duration => Duration::from_secs(parse_num(v)?);
    "AGENTPROF_MEMORY_TRACK_ALLOCATIONS" => "telemetry.profiling.memory.track_allocations":
        |c, v| c.telemetry.profiling.memory.track_allocations => parse_bool(v)?;
    "AGENTPROF_MEMORY_SAMPLING_RATE" => "telemetry.profiling.memory.sampling_rate":
        |c, v| c.telemetry.profiling.memory.sampling_rate => parse_num(v)?;
    "AGENTPROF_MEMORY_HEAP_PROFILING" => "telemetry.profiling.memory.heap_profiling":
        |c, v| c.telemetry.profiling.memory.heap_profiling => parse_bool(v)?;
    "AGENTPROF_MEMORY_SAMPLE_INTERVAL_BYTES" => "telemetry.profiling.memory.sample_interval_bytes":
        |c, v| c.telemetry.profiling.memory.sample_interval_bytes => Some(parse_num(v)?);
    "AGENTPROF_MEMORY_TIMELINE_INTERVAL_MS" => "telemetry.profiling.memory.timeline_interval_ms":
        |c, v| c.telemetry.profiling.memory.timeline_interval_ms => parse_num(v)?;
    "AGENTPROF_MEMORY_TIMELINE_CAPACITY" => "telemetry.profiling.memory.timeline_capacity":
        |c, v| c.telemetry.profiling.memory.timeline_capacity => parse_num(v)?;
    "AGENTPROF_EXPORTER_TYPE" => "telemetry.profiling.exporter.type":
        |c, v| c.telemetry.profiling.exporter.type_ => v.trim().parse()?;
    "AGENTPROF_EXPORTER_PYROSCOPE_ENDPOINT" => "telemetry.profiling.exporter.pyroscope_endpoint":
        |c, v| c.telemetry.profiling.exporter.pyroscope_endpoint => Some(v.to_owned());
    "AGENTPROF_EXPORTER_FILE_OUTPUT_DIR" => "telemetry.profiling.exporter.file_output_dir":
        |c, v| c.telemetry.profiling.exporter.file_output_dir => Some(v.to_owned());
    "AGENTPROF_EXPORTER_MAX_WINDOWS" => "telemetry.profiling.exporter.max_windows":
        |c, v| c.telemetry.profiling.exporter.max_windows => parse_num(v)?;
    "AGENTPROF_EXPORTER_MAX_BYTES" => "telemetry.profiling.exporter.max_bytes":
        |c, v| c.telemetry.profiling.exporter.max_bytes => parse_num(v)?;
    "AGENTPROF_EXPORTER_QUEUE_SIZE" => "telemetry.profiling.exporter.queue_size":
        |c, v| c.telemetry.profiling.exporter.queue_size => parse_num(v)?;
    "AGENTPROF_EXPORTER_SHUTDOWN_TIMEOUT_MS" => "telemetry.profiling.exporter.shutdown_timeout_ms":
        |c, v| c.telemetry.profiling.exporter.shutdown_timeout_ms => parse_num(v)?;
    "AGENTPROF_RECENT_INVOCATIONS" => "telemetry.profiling.attribution.recent_invocations":
        |c, v| c.telemetry.profiling.attribution.recent_invocations => parse_num(v)?;
    "AGENTPROF_LABEL_VALUE_MAX_LEN" => "telemetry.profiling.attribution.label_value_max_len":
        |c, v| c.telemetry.profiling.attribution.label_value_max_len => parse_num(v)?;
    "AGENTPROF_LABEL_VALUES_PER_KEY" => "telemetry.profiling.attribution.label_values_per_key":
        |c, v| c.telemetry.profiling.attribution.label_values_per_key => parse_num(v)?;
};

/// The environment variables that override configuration keys, applied
/// after the file, as `(variable, key)`.
pub fn env_overrides() -> impl Iterator<Item = (&'static str, &'static str)> {
    OVERRIDES.iter().map(|o| (o.variable, o.key))
}

fn invalid(key: &str, message: impl Into<String>) -> Error {
    Error::InvalidConfig {
        key: key.to_owned(),
        message: message.into(),
    }
}

impl Config {
    /// Parses TOML text (the whole application file), then validates it.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        Self::parse(text, None)
    }

    fn parse(text: &str, path: Option<PathBuf>) -> Result<Self> {
        let config: Config = toml::from_str(text).map_err(|e| Error::ConfigSyntax {
            path,
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a TOML file, applies environment overrides, validates.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text, Some(path.to_owned()))?;
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Defaults with environment overrides.
    pub fn from_env() -> Result<Self> {
        let mut config = Self::default();
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Applies overrides from `lookup` (the environment, or a map in tests),
    /// then validates.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<()> {
        for o in OVERRIDES {
            if let Some(value) = lookup(o.variable) {
                (o.set)(self, &value).map_err(|message| {
                    invalid(o.key, format!("{message} (from ${})", o.variable))
                })?;
            }
        }
        self.validate()
    }

    /// Checks every value against what it allows.
    pub fn validate(&self) -> Result<()> {
        let p = &self.telemetry.profiling;
        if !(1..=10_000).contains(&p.cpu.frequency) {
            return Err(invalid(
                "telemetry.profiling.cpu.frequency",
                format!(
                    "{} Hz is out of range; allowed: 1 to 10000",
                    p.cpu.frequency
                ),
            ));
        }
        if p.cpu.duration.is_zero() {
            return Err(invalid(
                "telemetry.profiling.cpu.duration_seconds",
                "must be at least 1 second",
            ));
        }
        if p.memory.sampling_rate == 0 {
            return Err(invalid(
                "telemetry.profiling.memory.sampling_rate",
                "must be at least 1 (1 samples every allocation, 100 one in a hundred)",
            ));
        }
        if p.memory.sample_interval_bytes == Some(0) {
            return Err(invalid(
                "telemetry.profiling.memory.sample_interval_bytes",
                "must be at least 1 (1 records every allocation)",
            ));
        }
        if p.memory.timeline_interval_ms > 0 && p.memory.timeline_capacity == 0 {
            return Err(invalid(
                "telemetry.profiling.memory.timeline_capacity",
                "must be at least 1 while timeline_interval_ms is set",
            ));
        }
        if p.exporter.type_ == ExporterType::Pyroscope {
            match p.exporter.pyroscope_endpoint.as_deref() {
                None => {
                    return Err(invalid(
                        "telemetry.profiling.exporter.pyroscope_endpoint",
                        "is required when type = \"pyroscope\"",
                    ))
                }
                Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                    return Err(invalid(
                        "telemetry.profiling.exporter.pyroscope_endpoint",
                        format!("{url:?} is not an http:// or https:// URL"),
                    ))
                }
                Some(_) => {}
            }
        }
        if p.exporter.basic_auth_user.is_some() != p.exporter.basic_auth_password.is_some() {
            return Err(invalid(
                "telemetry.profiling.exporter.basic_auth_user",
                "basic_auth_user and basic_auth_password go together",
            ));
        }
        if p.exporter.basic_auth_user.is_some() && p.exporter.bearer_token.is_some() {
            return Err(invalid(
                "telemetry.profiling.exporter.bearer_token",
                "choose basic auth or a bearer token, not both",
            ));
        }
        if p.exporter.queue_size == 0 {
            return Err(invalid(
                "telemetry.profiling.exporter.queue_size",
                "must be at least 1 window",
            ));
        }
        if p.exporter.max_windows == 0 {
            return Err(invalid(
                "telemetry.profiling.exporter.max_windows",
                "must be at least 1 window",
            ));
        }
        if p.exporter.file_output_dir.as_deref() == Some("") {
            return Err(invalid(
                "telemetry.profiling.exporter.file_output_dir",
                "must not be empty",
            ));
        }
        let a = &p.attribution;
        if a.recent_invocations > 1_000_000 {
            return Err(invalid(
                "telemetry.profiling.attribution.recent_invocations",
                format!(
                    "{} is too many; allowed: 0 to 1000000",
                    a.recent_invocations
                ),
            ));
        }
        if !(1..=4096).contains(&a.label_value_max_len) {
            return Err(invalid(
                "telemetry.profiling.attribution.label_value_max_len",
                format!(
                    "{} is out of range; allowed: 1 to 4096 bytes",
                    a.label_value_max_len
                ),
            ));
        }
        if !(1..=100_000).contains(&a.label_values_per_key) {
            return Err(invalid(
                "telemetry.profiling.attribution.label_values_per_key",
                format!(
                    "{} is out of range; allowed: 1 to 100000",
                    a.label_values_per_key
                ),
            ));
        }
        Ok(())
    }

    /// Whether invocations are to be recorded.
    pub fn recording(&self) -> bool {
        self.telemetry.enabled && self.telemetry.profiling.enabled
    }

    /// Keys that turn on capabilities this build does not have. Each is
    /// refused by [`crate::init`] rather than accepted and ignored.
    pub fn unsupported(&self) -> Option<Error> {
        let p = &self.telemetry.profiling;
        if !self.recording() {
            return None;
        }
        if p.exporter.type_ == ExporterType::Pyroscope && !cfg!(feature = "pyroscope") {
            return Some(Error::Unsupported {
                key: "telemetry.profiling.exporter.type".to_owned(),
                what: "the Pyroscope exporter".to_owned(),
                hint: Some(
                    "build agentprof with the `pyroscope` feature, or use type = \"file\""
                        .to_owned(),
                ),
            });
        }
        None
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
        let e = Config::from_toml_str("[telemetry.profiling.exporter]\ntype = \"gcp\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("gcp") && e.contains("\"file\", \"pyroscope\""),
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
}
