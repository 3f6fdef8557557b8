//! Validation: every value checked against what it allows, with errors
//! that name the key.

use super::{keys, Config, ExporterType, HttpConfig};
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

/// The longest continuous window.
const MAX_WINDOW: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Checks a numeric key against its documented range.
fn check_range(
    key: &str,
    value: u64,
    allowed: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<()> {
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(invalid(
        key,
        format!(
            "{value} is out of range; allowed: {} to {} {unit}",
            allowed.start(),
            allowed.end()
        ),
    ))
}

/// Shortest token accepted: guessable tokens guard nothing.
const MIN_TOKEN_LEN: usize = 16;

fn check_http(http: &HttpConfig) -> Result<()> {
    check_range(
        keys::HTTP_MAX_SECONDS,
        http.max_seconds,
        1..=3600,
        "seconds",
    )?;
    if let Some(listen) = &http.listen {
        if listen.trim().is_empty() {
            return Err(invalid(keys::HTTP_LISTEN, "must not be empty"));
        }
        if !listen.contains(':') {
            return Err(invalid(
                keys::HTTP_LISTEN,
                format!("{listen:?} has no port; write host:port, e.g. \"127.0.0.1:6060\""),
            ));
        }
    }
    if let Some(token) = &http.token {
        let token = token.expose();
        if token.len() < MIN_TOKEN_LEN {
            return Err(invalid(
                keys::HTTP_TOKEN,
                format!("is {} bytes; use at least {MIN_TOKEN_LEN}", token.len()),
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                keys::HTTP_TOKEN,
                "may hold only printable ASCII without spaces (it travels in a header)",
            ));
        }
    }
    Ok(())
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
        // Sub-second windows only come from the builder; the key counts
        // whole seconds.
        if p.cpu.duration < std::time::Duration::from_millis(10) || p.cpu.duration > MAX_WINDOW {
            return Err(invalid(
                keys::CPU_DURATION,
                format!(
                    "{:?} is out of range; allowed: 1 to {} seconds",
                    p.cpu.duration,
                    MAX_WINDOW.as_secs()
                ),
            ));
        }
        let m = &p.memory;
        check_range(
            keys::MEMORY_SAMPLING_RATE,
            m.sampling_rate,
            1..=100_000,
            "(1 samples every 5 KiB, 100 every 512 KiB)",
        )?;
        if let Some(bytes) = m.sample_interval_bytes {
            check_range(
                keys::MEMORY_SAMPLE_INTERVAL,
                bytes,
                1..=1 << 30,
                "bytes (1 records every allocation)",
            )?;
        }
        if m.timeline_interval_ms != 0 {
            check_range(
                keys::MEMORY_TIMELINE_INTERVAL,
                m.timeline_interval_ms,
                10..=3_600_000,
                "ms, or 0 for no timeline",
            )?;
        }
        check_range(
            keys::MEMORY_TIMELINE_CAPACITY,
            m.timeline_capacity as u64,
            1..=1_000_000,
            "readings",
        )?;
        let e = &p.exporter;
        check_range(keys::TIMEOUT_MS, e.timeout_ms, 1..=600_000, "ms")?;
        check_range(
            keys::MAX_RETRIES,
            u64::from(e.max_retries),
            0..=10,
            "(each waits twice the previous, at most 10 s)",
        )?;
        check_range(
            keys::MAX_WINDOWS,
            e.max_windows as u64,
            1..=100_000,
            "windows",
        )?;
        check_range(keys::MAX_BYTES, e.max_bytes, 1..=1 << 40, "bytes")?;
        check_range(keys::QUEUE_SIZE, e.queue_size as u64, 1..=1024, "windows")?;
        check_range(
            keys::SHUTDOWN_TIMEOUT_MS,
            e.shutdown_timeout_ms,
            0..=600_000,
            "ms",
        )?;
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
        if p.exporter.file_output_dir.as_deref() == Some("") {
            return Err(invalid(keys::FILE_OUTPUT_DIR, "must not be empty"));
        }
        check_http(&p.http)?;
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
        if p.http.listen.is_some() && !cfg!(feature = "http") {
            return Some(Error::Unsupported {
                key: keys::HTTP_LISTEN.to_owned(),
                what: "the live HTTP endpoint".to_owned(),
                hint: Some("build agentprof with the `http` feature".to_owned()),
            });
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
