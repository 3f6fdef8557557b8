//! Validation: every value checked against what it allows, with errors
//! that name the key.

use super::{keys, Config, ExporterType, HttpConfig, ProfileExporterConfig, SampleLabel};
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

/// Cloud Profiler's names: a lowercase letter, then lowercase letters,
/// digits, `-`, `_` or `.`, ending in a letter or digit, at most `max`
/// characters (its service-name and label-key rules).
pub(crate) fn cloud_profiler_name(name: &str, max: usize) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(b);
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(inner)
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

const GCP_RESERVED_LABELS: [&str; 3] = ["zone", "version", "language"];

/// The Profiler API's label keys: `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.
pub(crate) fn cloud_profiler_label_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(inner)
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// The Profiler API's bounds on a deployment's labels, the agent's own
/// (`language`, `version`, `zone`) included: values of at most 512 bytes,
/// at most 1024 bytes of keys and values in all. `Err` names the key.
pub(crate) fn cloud_profiler_labels<'a>(
    labels: impl Iterator<Item = (&'a str, &'a str)>,
) -> std::result::Result<(), (String, String)> {
    let mut total = "language".len() + "rust".len();
    for (key, value) in labels {
        if !cloud_profiler_label_key(key) {
            return Err((
                key.to_owned(),
                "is not a Cloud Profiler label key: lowercase letters, digits and `-`, \
                 starting and ending with a letter or digit, at most 63 characters"
                    .to_owned(),
            ));
        }
        if value.len() > 512 {
            return Err((
                key.to_owned(),
                format!(
                    "a label value has at most 512 bytes ({} given)",
                    value.len()
                ),
            ));
        }
        total += key.len() + value.len();
    }
    if total > 1024 {
        return Err((
            String::new(),
            format!("labels take {total} bytes in all; Cloud Profiler allows 1024"),
        ));
    }
    Ok(())
}

fn check_gcp(e: &ProfileExporterConfig) -> Result<()> {
    let gcp_keys = [
        (keys::GCP_PROJECT_ID, e.gcp_project_id.is_some()),
        (keys::GCP_SERVICE, e.gcp_service.is_some()),
        (keys::GCP_SERVICE_VERSION, e.gcp_service_version.is_some()),
        (keys::GCP_ZONE, e.gcp_zone.is_some()),
        (keys::GCP_ENDPOINT, e.gcp_endpoint.is_some()),
        (keys::GCP_CREDENTIALS_FILE, e.gcp_credentials_file.is_some()),
        (
            keys::GCP_BACKOFF_INITIAL_MS,
            e.gcp_backoff_initial_ms.is_some(),
        ),
        (keys::GCP_BACKOFF_MAX_MS, e.gcp_backoff_max_ms.is_some()),
    ];
    if e.type_ != ExporterType::Gcp {
        if let Some((key, _)) = gcp_keys.iter().find(|(_, set)| *set) {
            return Err(invalid(key, "applies only to type = \"gcp\""));
        }
        return Ok(());
    }
    let pyroscope_keys = [
        (keys::PYROSCOPE_ENDPOINT, e.pyroscope_endpoint.is_some()),
        (keys::BASIC_AUTH_USER, e.basic_auth_user.is_some()),
        (keys::TENANT_ID, e.tenant_id.is_some()),
        (keys::HEADERS, !e.headers.is_empty()),
    ];
    if let Some((key, _)) = pyroscope_keys.iter().find(|(_, set)| *set) {
        return Err(invalid(
            key,
            "applies only to type = \"pyroscope\"; Cloud Profiler authenticates with Google \
             credentials (gcp_credentials_file, or bearer_token for a fixed token)",
        ));
    }
    if let Some(project) = &e.gcp_project_id {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c);
        if project.is_empty() || !project.chars().all(allowed) {
            return Err(invalid(
                keys::GCP_PROJECT_ID,
                format!("{project:?} is not a project id (lowercase letters, digits, `-`)"),
            ));
        }
    }
    if let Some(service) = &e.gcp_service {
        if !cloud_profiler_name(service, 255) {
            return Err(invalid(
                keys::GCP_SERVICE,
                format!(
                    "{service:?} is not a Cloud Profiler service name: a lowercase letter, then \
                     lowercase letters, digits, `-`, `_` or `.`, ending in a letter or digit, \
                     at most 255 characters"
                ),
            ));
        }
    }
    for name in e.tags.keys() {
        if GCP_RESERVED_LABELS.contains(&name.as_str()) {
            return Err(invalid(
                &format!("{}.{name}", keys::TAGS),
                "is set by the agent; use gcp_zone or gcp_service_version",
            ));
        }
    }
    let agents_own = [
        ("version", &e.gcp_service_version, keys::GCP_SERVICE_VERSION),
        ("zone", &e.gcp_zone, keys::GCP_ZONE),
    ];
    for (_, value, key) in &agents_own {
        if value.as_deref() == Some("") {
            return Err(invalid(key, "a label value must not be empty"));
        }
    }
    let labels = e.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(
        agents_own
            .iter()
            .filter_map(|(label, value, _)| Some((*label, value.as_deref()?))),
    );
    if let Err((label, message)) = cloud_profiler_labels(labels) {
        let key = match agents_own.iter().find(|(l, _, _)| *l == label) {
            Some((_, _, key)) => (*key).to_owned(),
            None if label.is_empty() => keys::TAGS.to_owned(),
            None => format!("{}.{label}", keys::TAGS),
        };
        return Err(invalid(&key, message));
    }
    if let Some(url) = &e.gcp_endpoint {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                keys::GCP_ENDPOINT,
                format!(
                    "{:?} is not an http:// or https:// URL",
                    super::redact_url(url)
                ),
            ));
        }
    }
    if e.gcp_credentials_file.is_some() && e.bearer_token.is_some() {
        return Err(invalid(
            keys::BEARER_TOKEN,
            "choose gcp_credentials_file or a fixed bearer_token, not both",
        ));
    }
    let (initial, max) = e.gcp_backoff();
    check_range(keys::GCP_BACKOFF_INITIAL_MS, initial, 1..=86_400_000, "ms")?;
    check_range(
        keys::GCP_BACKOFF_MAX_MS,
        max,
        initial..=86_400_000,
        "ms (at least gcp_backoff_initial_ms)",
    )
}

impl ProfileExporterConfig {
    /// Cloud Profiler's first and longest backoff, ms, defaults applied:
    /// Google's agents' 1 minute and 1 hour.
    pub fn gcp_backoff(&self) -> (u64, u64) {
        let initial = self.gcp_backoff_initial_ms.unwrap_or(60_000);
        (
            initial,
            self.gcp_backoff_max_ms.unwrap_or(3_600_000.max(initial)),
        )
    }
}

/// What goes into a request line or a header, or names a file, must not be
/// able to end it early: no CR, LF or NUL (a value is never quoted back,
/// it may be a secret).
fn check_request_parts(e: &ProfileExporterConfig) -> Result<()> {
    let breaks = |v: &str| v.contains(['\r', '\n', '\0']);
    for (name, value) in &e.headers {
        let token = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        if !token {
            return Err(invalid(
                &format!("{}.{name}", keys::HEADERS),
                "is not a header name (letters, digits and !#$%&'*+-.^_`|~)",
            ));
        }
        if breaks(value.expose()) {
            return Err(invalid(
                &format!("{}.{name}", keys::HEADERS),
                "contains a line break or NUL, which would end the header early",
            ));
        }
    }
    if e.tenant_id.as_deref().is_some_and(breaks) {
        return Err(invalid(
            keys::TENANT_ID,
            "contains a line break or NUL, which would end the header early",
        ));
    }
    for (key, path) in [
        (keys::FILE_OUTPUT_DIR, &e.file_output_dir),
        (keys::GCP_CREDENTIALS_FILE, &e.gcp_credentials_file),
    ] {
        if path.as_deref().is_some_and(|p| p.contains('\0')) {
            return Err(invalid(key, "contains a NUL byte, which no path can hold"));
        }
    }
    Ok(())
}

/// A backend makes a series per distinct label set: labels with a value
/// per invocation or thread would make one per invocation.
fn check_labels(e: &ProfileExporterConfig) -> Result<()> {
    let Some(labels) = &e.labels else {
        return Ok(());
    };
    if e.type_ == ExporterType::File {
        return Err(invalid(
            keys::EXPORTER_LABELS,
            "applies only to type = \"pyroscope\" or \"gcp\"; the labels of local profiles \
             are telemetry.profiling.cpu.labels",
        ));
    }
    if let Some(unbounded) = labels.iter().find(|l| l.unbounded()) {
        return Err(invalid(
            keys::EXPORTER_LABELS,
            format!(
                "{:?} takes a new value per invocation or thread, and the backend would \
                 keep a series of each; it stays in local profiles (cpu.labels, the live \
                 endpoint). Bounded labels: \"agent\", \"function\", \"thread\", and \
                 \"span_id\", which Pyroscope keeps out of its series",
                unbounded.as_str()
            ),
        ));
    }
    Ok(())
}

impl ProfileExporterConfig {
    /// The per-sample labels of the CPU profiles this exporter's backend
    /// receives: `labels`, else the backend's default.
    pub fn backend_labels(&self) -> Vec<SampleLabel> {
        match (&self.labels, self.type_) {
            (Some(labels), _) => labels.clone(),
            (None, ExporterType::Gcp) => SampleLabel::CLOUD_PROFILER_DEFAULT.to_vec(),
            (None, _) => SampleLabel::PYROSCOPE_DEFAULT.to_vec(),
        }
    }
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
        if let Some(min_free) = e.min_free_bytes {
            check_range(keys::MIN_FREE_BYTES, min_free, 0..=1 << 50, "bytes")?;
        }
        check_range(keys::QUEUE_SIZE, e.queue_size as u64, 1..=1024, "windows")?;
        check_range(
            keys::SHUTDOWN_TIMEOUT_MS,
            e.shutdown_timeout_ms,
            0..=600_000,
            "ms",
        )?;
        check_labels(&p.exporter)?;
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
        check_gcp(&p.exporter)?;
        check_request_parts(&p.exporter)?;
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
        if p.exporter.type_ == ExporterType::Gcp && !cfg!(feature = "gcp") {
            return Some(Error::Unsupported {
                key: keys::EXPORTER_TYPE.to_owned(),
                what: "the Cloud Profiler agent (type = \"gcp\")".to_owned(),
                hint: Some(
                    "build agentprof with the `gcp` feature, or use type = \"file\"".to_owned(),
                ),
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
