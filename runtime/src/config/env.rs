//! Loading: TOML text and files, and the environment variables that
//! override them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::validate::invalid;
use super::Config;
use crate::error::{Error, Result};

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
    "AGENTPROF_CPU_CLOCK" => "telemetry.profiling.cpu.clock":
        |c, v| c.telemetry.profiling.cpu.clock => v.parse()?;
    "AGENTPROF_CPU_SYMBOLIZE" => "telemetry.profiling.cpu.symbolize":
        |c, v| c.telemetry.profiling.cpu.symbolize => v.parse()?;
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
    "AGENTPROF_EXPORTER_GCP_PROJECT_ID" => "telemetry.profiling.exporter.gcp_project_id":
        |c, v| c.telemetry.profiling.exporter.gcp_project_id => Some(v.trim().to_owned());
    "AGENTPROF_EXPORTER_GCP_SERVICE" => "telemetry.profiling.exporter.gcp_service":
        |c, v| c.telemetry.profiling.exporter.gcp_service => Some(v.trim().to_owned());
    "AGENTPROF_EXPORTER_GCP_SERVICE_VERSION" => "telemetry.profiling.exporter.gcp_service_version":
        |c, v| c.telemetry.profiling.exporter.gcp_service_version => Some(v.trim().to_owned());
    "AGENTPROF_EXPORTER_GCP_ZONE" => "telemetry.profiling.exporter.gcp_zone":
        |c, v| c.telemetry.profiling.exporter.gcp_zone => Some(v.trim().to_owned());
    "AGENTPROF_EXPORTER_GCP_ENDPOINT" => "telemetry.profiling.exporter.gcp_endpoint":
        |c, v| c.telemetry.profiling.exporter.gcp_endpoint => Some(v.trim().to_owned());
    "AGENTPROF_EXPORTER_GCP_CREDENTIALS_FILE" => "telemetry.profiling.exporter.gcp_credentials_file":
        |c, v| c.telemetry.profiling.exporter.gcp_credentials_file => Some(v.to_owned());
    "AGENTPROF_EXPORTER_FILE_OUTPUT_DIR" => "telemetry.profiling.exporter.file_output_dir":
        |c, v| c.telemetry.profiling.exporter.file_output_dir => Some(v.to_owned());
    "AGENTPROF_EXPORTER_MAX_WINDOWS" => "telemetry.profiling.exporter.max_windows":
        |c, v| c.telemetry.profiling.exporter.max_windows => parse_num(v)?;
    "AGENTPROF_EXPORTER_MAX_BYTES" => "telemetry.profiling.exporter.max_bytes":
        |c, v| c.telemetry.profiling.exporter.max_bytes => parse_num(v)?;
    "AGENTPROF_EXPORTER_MIN_FREE_BYTES" => "telemetry.profiling.exporter.min_free_bytes":
        |c, v| c.telemetry.profiling.exporter.min_free_bytes => Some(parse_num(v)?);
    "AGENTPROF_EXPORTER_QUEUE_SIZE" => "telemetry.profiling.exporter.queue_size":
        |c, v| c.telemetry.profiling.exporter.queue_size => parse_num(v)?;
    "AGENTPROF_EXPORTER_TIMEOUT_MS" => "telemetry.profiling.exporter.timeout_ms":
        |c, v| c.telemetry.profiling.exporter.timeout_ms => parse_num(v)?;
    "AGENTPROF_EXPORTER_MAX_RETRIES" => "telemetry.profiling.exporter.max_retries":
        |c, v| c.telemetry.profiling.exporter.max_retries => parse_num(v)?;
    "AGENTPROF_EXPORTER_SHUTDOWN_TIMEOUT_MS" => "telemetry.profiling.exporter.shutdown_timeout_ms":
        |c, v| c.telemetry.profiling.exporter.shutdown_timeout_ms => parse_num(v)?;
    "AGENTPROF_RECENT_INVOCATIONS" => "telemetry.profiling.attribution.recent_invocations":
        |c, v| c.telemetry.profiling.attribution.recent_invocations => parse_num(v)?;
    "AGENTPROF_LABEL_VALUE_MAX_LEN" => "telemetry.profiling.attribution.label_value_max_len":
        |c, v| c.telemetry.profiling.attribution.label_value_max_len => parse_num(v)?;
    "AGENTPROF_LABEL_VALUES_PER_KEY" => "telemetry.profiling.attribution.label_values_per_key":
        |c, v| c.telemetry.profiling.attribution.label_values_per_key => parse_num(v)?;
    "AGENTPROF_HTTP_LISTEN" => "telemetry.profiling.http.listen":
        |c, v| c.telemetry.profiling.http.listen => Some(v.trim().to_owned());
    "AGENTPROF_HTTP_TOKEN" => "telemetry.profiling.http.token":
        |c, v| c.telemetry.profiling.http.token => Some(super::Secret::new(v));
    "AGENTPROF_HTTP_MAX_SECONDS" => "telemetry.profiling.http.max_seconds":
        |c, v| c.telemetry.profiling.http.max_seconds => parse_num(v)?;
};

/// True when the environment turns recording off: `AGENTPROF_PROFILING_ENABLED`
/// or `AGENTPROF_TELEMETRY_ENABLED` set to a false value. A value that is not
/// a boolean counts as off (the safe side; loading a configuration reports
/// it as an error naming the variable).
#[cfg(feature = "enabled")]
pub(crate) fn env_turns_recording_off() -> bool {
    ["AGENTPROF_PROFILING_ENABLED", "AGENTPROF_TELEMETRY_ENABLED"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .any(|value| parse_bool(&value) != Ok(true))
}

/// The environment variables that override configuration keys, applied
/// after the file, as `(variable, key)`.
pub fn env_overrides() -> impl Iterator<Item = (&'static str, &'static str)> {
    OVERRIDES.iter().map(|o| (o.variable, o.key))
}

/// The keys of `[telemetry]` that are ours.
const TELEMETRY_KEYS: [&str; 2] = ["enabled", "profiling"];

/// `[telemetry]` is shared with the application's other telemetry (its
/// tracing or metrics tables stay its own), so unknown keys there are not
/// errors, except those that look like a misspelling of ours
/// (`[telemetry.proflling]`), which would otherwise silently leave
/// profiling at its defaults.
fn check_telemetry_keys<'a>(keys: impl Iterator<Item = &'a str>) -> Result<()> {
    for key in keys {
        if TELEMETRY_KEYS.contains(&key) {
            continue;
        }
        let lower = key.to_ascii_lowercase();
        if let Some(meant) = TELEMETRY_KEYS
            .iter()
            .find(|ours| lower == **ours || edit_distance(&lower, ours) <= 2)
        {
            return Err(invalid(
                &format!("telemetry.{key}"),
                format!("unknown key; did you mean `telemetry.{meant}`?"),
            ));
        }
    }
    Ok(())
}

/// A parse error as its place (line, column, the key there) and the
/// parser's message, without the text around it: the parser would quote
/// the offending line, and a line may hold a token or a password, while
/// errors end up in logs.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.message().to_owned();
    };
    let at = floor_char_boundary(text, span.start);
    let before = &text[..at];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    let key = key_at(text, line_start)
        .map(|key| format!(", key `{key}`"))
        .unwrap_or_default();
    format!("line {line}, column {column}{key}: {}", e.message())
}

/// The dotted key assigned on the line starting at `line_start`, with the
/// table it is in: `telemetry.profiling.exporter.bearer_token`.
fn key_at(text: &str, line_start: usize) -> Option<String> {
    let line = text[line_start..].lines().next()?;
    let key = line.split('=').next()?.trim();
    let is_key = !key.is_empty()
        && key.len() < line.len()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.\"' ".contains(c));
    if !is_key {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_owned(),
    })
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Levenshtein distance of two short ASCII strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

impl Config {
    /// Parses TOML text (the whole application file), then validates it.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        Self::parse(text, None)
    }

    fn parse(text: &str, path: Option<PathBuf>) -> Result<Self> {
        let config: Config = toml::from_str(text).map_err(|e| Error::ConfigSyntax {
            path: path.clone(),
            message: syntax_message(text, &e),
        })?;
        if let Ok(table) = text.parse::<toml::Table>() {
            if let Some(telemetry) = table.get("telemetry").and_then(|t| t.as_table()) {
                check_telemetry_keys(telemetry.keys().map(String::as_str))?;
            }
        }
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
        Self::default().with_env()
    }

    /// This configuration with the environment's overrides applied, then
    /// validated: what every path that starts profiling ([`init`](crate::init),
    /// `Profiler::from_config`, `Profiler::builder`) uses. The environment
    /// wins over the file and over code, so an operator can always turn
    /// profiling off (`AGENTPROF_PROFILING_ENABLED=false`) or change a key
    /// without a rebuild.
    pub fn with_env(&self) -> Result<Self> {
        let mut config = self.clone();
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
}
