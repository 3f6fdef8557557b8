//! Loading: TOML text and files, and the environment variables that
//! override them.

use std::path::{Path, PathBuf};

use super::keys;
use super::validate::{invalid, ExporterKeys};
use super::Config;
use crate::error::{Error, Result};

/// True when the environment turns recording off: `AGENTPROF_PROFILING_ENABLED`
/// or `AGENTPROF_TELEMETRY_ENABLED` set to a false value. A value that is not
/// a boolean counts as off (the safe side; loading a configuration reports
/// it as an error naming the variable).
pub(crate) fn env_turns_recording_off() -> bool {
    [keys::PROFILING_ENABLED, keys::TELEMETRY_ENABLED]
        .iter()
        .filter_map(|key| std::env::var(key.env?).ok())
        .any(|value| keys::parse_bool(&value) != Ok(true))
}

/// The environment variables that override configuration keys, applied
/// after the file, as `(variable, key)`.
pub fn env_overrides() -> impl Iterator<Item = (&'static str, &'static str)> {
    keys::ALL
        .iter()
        .filter_map(|key| Some((key.env?, key.path)))
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
    /// validated: what every path that starts profiling ([`init`](crate::api::init),
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
        let mut exporter_switched = false;
        for key in keys::ALL {
            let (Some(variable), Some(write)) = (key.env, key.write) else {
                continue;
            };
            if let Some(value) = lookup(variable) {
                exporter_switched |= key.path == keys::EXPORTER_TYPE.path;
                write(self, &value).map_err(|message| {
                    invalid(key.path, format!("{message} (from ${variable})"))
                })?;
            }
        }
        self.validate_keys(if exporter_switched {
            ExporterKeys::Unused
        } else {
            ExporterKeys::Refused
        })
    }
}
