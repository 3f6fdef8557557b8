//! Validation: every value checked against what it allows, with errors
//! that name the key.

use super::{keys, Config, ExporterType};
use crate::error::{Error, Result};

/// The CPU sampling rates allowed, Hz.
pub(crate) const FREQUENCY_HZ: std::ops::RangeInclusive<u32> = 1..=10_000;

/// Checks a CPU sampling rate (the config key and `CpuProfiler::new`).
pub(crate) fn check_frequency(hz: u32) -> Result<()> {
    if FREQUENCY_HZ.contains(&hz) {
        return Ok(());
    }
    Err(invalid(
        keys::CPU_FREQUENCY,
        format!(
            "{hz} Hz is out of range; allowed: {} to {}",
            FREQUENCY_HZ.start(),
            FREQUENCY_HZ.end()
        ),
    ))
}

pub(crate) fn invalid(key: &str, message: impl Into<String>) -> Error {
    Error::InvalidConfig {
        key: key.to_owned(),
        message: message.into(),
    }
}

impl Config {
    /// Checks every value against what it allows.
    pub fn validate(&self) -> Result<()> {
        let p = &self.telemetry.profiling;
        check_frequency(p.cpu.frequency)?;
        if p.cpu.duration.is_zero() {
            return Err(invalid(keys::CPU_DURATION, "must be at least 1 second"));
        }
        if p.memory.sampling_rate == 0 {
            return Err(invalid(
                keys::MEMORY_SAMPLING_RATE,
                "must be at least 1 (1 samples every allocation, 100 one in a hundred)",
            ));
        }
        if p.memory.sample_interval_bytes == Some(0) {
            return Err(invalid(
                keys::MEMORY_SAMPLE_INTERVAL,
                "must be at least 1 (1 records every allocation)",
            ));
        }
        if p.memory.timeline_interval_ms > 0 && p.memory.timeline_capacity == 0 {
            return Err(invalid(
                keys::MEMORY_TIMELINE_CAPACITY,
                "must be at least 1 while timeline_interval_ms is set",
            ));
        }
        if p.exporter.type_ == ExporterType::Pyroscope {
            match p.exporter.pyroscope_endpoint.as_deref() {
                None => {
                    return Err(invalid(
                        keys::PYROSCOPE_ENDPOINT,
                        "is required when type = \"pyroscope\"",
                    ))
                }
                Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                    return Err(invalid(
                        keys::PYROSCOPE_ENDPOINT,
                        format!(
                            "{:?} is not an http:// or https:// URL",
                            super::redact_url(url)
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        if p.exporter.basic_auth_user.is_some() != p.exporter.basic_auth_password.is_some() {
            return Err(invalid(
                keys::BASIC_AUTH_USER,
                "basic_auth_user and basic_auth_password go together",
            ));
        }
        if p.exporter.basic_auth_user.is_some() && p.exporter.bearer_token.is_some() {
            return Err(invalid(
                keys::BEARER_TOKEN,
                "choose basic auth or a bearer token, not both",
            ));
        }
        if p.exporter.queue_size == 0 {
            return Err(invalid(keys::QUEUE_SIZE, "must be at least 1 window"));
        }
        if p.exporter.max_windows == 0 {
            return Err(invalid(keys::MAX_WINDOWS, "must be at least 1 window"));
        }
        if p.exporter.file_output_dir.as_deref() == Some("") {
            return Err(invalid(keys::FILE_OUTPUT_DIR, "must not be empty"));
        }
        let a = &p.attribution;
        if a.recent_invocations > 1_000_000 {
            return Err(invalid(
                keys::RECENT_INVOCATIONS,
                format!(
                    "{} is too many; allowed: 0 to 1000000",
                    a.recent_invocations
                ),
            ));
        }
        if !(1..=4096).contains(&a.label_value_max_len) {
            return Err(invalid(
                keys::LABEL_VALUE_MAX_LEN,
                format!(
                    "{} is out of range; allowed: 1 to 4096 bytes",
                    a.label_value_max_len
                ),
            ));
        }
        if !(1..=100_000).contains(&a.label_values_per_key) {
            return Err(invalid(
                keys::LABEL_VALUES_PER_KEY,
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
                key: keys::EXPORTER_TYPE.to_owned(),
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
