//! Validation: every value checked against what it allows, with errors
//! that name the key.

use super::keys::{self, Key, Kind, Scope};
use super::{Config, ExporterType, HttpConfig, ProfileExporterConfig, SampleLabel};
use crate::error::{Error, Result};

/// Checks a value given in code (not read from a configuration) against
/// `key`'s range, naming `parameter`, what the caller passed it as: a
/// program that never wrote the key should not be told about it.
pub(crate) fn check_parameter(key: &Key, value: u64, parameter: &str) -> Result<()> {
    check_key(key, value).map_err(|e| match e {
        Error::InvalidConfig { message, .. } => Error::InvalidConfig {
            key: parameter.to_owned(),
            message,
        },
        other => other,
    })
}

/// Checks an integer key's value against the table's range.
pub(crate) fn check_key(key: &Key, value: u64) -> Result<()> {
    let Kind::Integer { min, max, unit, .. } = key.kind else {
        return Ok(());
    };
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(invalid(
        key.path,
        format!("{value} is out of range; allowed: {min} to {max} {unit}"),
    ))
}

/// Every integer key that is set, against its range in the table.
fn check_ranges(config: &Config) -> Result<()> {
    for key in keys::ALL {
        if let Some(value) = key.read.and_then(|read| read(config)) {
            check_key(key, value)?;
        }
    }
    Ok(())
}

/// Shortest token accepted: guessable tokens guard nothing.
const MIN_TOKEN_LEN: usize = 16;

impl HttpConfig {
    /// Checks the live endpoint's section on its own (what
    /// [`Config::validate`] checks of it), for a server started from code
    /// with only this section.
    pub fn validate(&self) -> Result<()> {
        check_http(self)?;
        check_key(keys::HTTP_MAX_SECONDS, self.max_seconds)
    }
}

fn check_http(http: &HttpConfig) -> Result<()> {
    if let Some(listen) = &http.listen {
        if listen.trim().is_empty() {
            return Err(invalid(keys::HTTP_LISTEN.path, "must not be empty"));
        }
        if !listen.contains(':') {
            return Err(invalid(
                keys::HTTP_LISTEN.path,
                format!("{listen:?} has no port; write host:port, e.g. \"127.0.0.1:6060\""),
            ));
        }
    }
    if let Some(token) = &http.token {
        let token = token.expose();
        if token.len() < MIN_TOKEN_LEN {
            return Err(invalid(
                keys::HTTP_TOKEN.path,
                format!("is {} bytes; use at least {MIN_TOKEN_LEN}", token.len()),
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                keys::HTTP_TOKEN.path,
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

/// What validation does with keys of an exporter other than the one chosen.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ExporterKeys {
    /// Refused, naming the key: a file that sets `type = "file"` and
    /// `tenant_id` has a mistake in it.
    Refused,
    /// Left unused: the environment switched the exporter
    /// (`AGENTPROF_EXPORTER_TYPE`), so the file's keys for the one it
    /// named no longer apply.
    Unused,
}

/// An exporter's keys given under another exporter are refused, naming the
/// key, rather than silently ignored.
fn check_exporter_scope(config: &Config) -> Result<()> {
    let exporter = config.telemetry.profiling.exporter.type_;
    for key in keys::ALL {
        let belongs = match key.scope {
            Scope::Any => true,
            Scope::File => exporter == ExporterType::File,
            Scope::Pyroscope => exporter == ExporterType::Pyroscope,
            Scope::Gcp => exporter == ExporterType::Gcp,
            Scope::Requests => exporter != ExporterType::File,
        };
        if belongs || !key.given.is_some_and(|given| given(config)) {
            continue;
        }
        let message = match (key.scope, exporter) {
            (Scope::Pyroscope, ExporterType::Gcp) => {
                "applies only to type = \"pyroscope\"; Cloud Profiler authenticates with Google \
                 credentials (gcp_credentials_file, or bearer_token for a fixed token)"
            }
            (Scope::Pyroscope, _) => "applies only to type = \"pyroscope\"",
            (Scope::Gcp, _) => "applies only to type = \"gcp\"",
            _ => "applies only to type = \"pyroscope\" or type = \"gcp\"",
        };
        return Err(invalid(key.path, message));
    }
    Ok(())
}

fn check_gcp(e: &ProfileExporterConfig) -> Result<()> {
    if e.type_ != ExporterType::Gcp {
        return Ok(());
    }
    if let Some(project) = &e.gcp_project_id {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c);
        if project.is_empty() || !project.chars().all(allowed) {
            return Err(invalid(
                keys::GCP_PROJECT_ID.path,
                format!("{project:?} is not a project id (lowercase letters, digits, `-`)"),
            ));
        }
    }
    if let Some(service) = &e.gcp_service {
        if !cloud_profiler_name(service, 255) {
            return Err(invalid(
                keys::GCP_SERVICE.path,
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
                &format!("{}.{name}", keys::TAGS.path),
                "is set by the agent; use gcp_zone or gcp_service_version",
            ));
        }
    }
    let agents_own = [
        (
            "version",
            &e.gcp_service_version,
            keys::GCP_SERVICE_VERSION.path,
        ),
        ("zone", &e.gcp_zone, keys::GCP_ZONE.path),
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
            None if label.is_empty() => keys::TAGS.path.to_owned(),
            None => format!("{}.{label}", keys::TAGS.path),
        };
        return Err(invalid(&key, message));
    }
    if let Some(url) = &e.gcp_endpoint {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                keys::GCP_ENDPOINT.path,
                format!(
                    "{:?} is not an http:// or https:// URL",
                    super::redact_url(url)
                ),
            ));
        }
    }
    if e.gcp_credentials_file.is_some() && e.bearer_token.is_some() {
        return Err(invalid(
            keys::BEARER_TOKEN.path,
            "choose gcp_credentials_file or a fixed bearer_token, not both",
        ));
    }
    let (initial, max) = e.gcp_backoff();
    if max < initial {
        return Err(invalid(
            keys::GCP_BACKOFF_MAX_MS.path,
            format!(
                "{max} is out of range; allowed: {initial} to {} ms (at least gcp_backoff_initial_ms)",
                keys::GCP_BACKOFF_MAX_MS.integer_max()
            ),
        ));
    }
    Ok(())
}

impl ProfileExporterConfig {
    /// Cloud Profiler's first and longest backoff, ms, defaults applied:
    /// Google's agents' 1 minute and 1 hour.
    pub fn gcp_backoff(&self) -> (u64, u64) {
        let initial = self
            .gcp_backoff_initial_ms
            .unwrap_or(keys::GCP_BACKOFF_INITIAL_MS.integer_default());
        (
            initial,
            self.gcp_backoff_max_ms
                .unwrap_or(keys::GCP_BACKOFF_MAX_MS.integer_default().max(initial)),
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
                &format!("{}.{name}", keys::HEADERS.path),
                "is not a header name (letters, digits and !#$%&'*+-.^_`|~)",
            ));
        }
        if breaks(value.expose()) {
            return Err(invalid(
                &format!("{}.{name}", keys::HEADERS.path),
                "contains a line break or NUL, which would end the header early",
            ));
        }
    }
    if e.tenant_id.as_deref().is_some_and(breaks) {
        return Err(invalid(
            keys::TENANT_ID.path,
            "contains a line break or NUL, which would end the header early",
        ));
    }
    for (key, path) in [
        (keys::FILE_OUTPUT_DIR.path, &e.file_output_dir),
        (keys::GCP_CREDENTIALS_FILE.path, &e.gcp_credentials_file),
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
            keys::EXPORTER_LABELS.path,
            "applies only to type = \"pyroscope\" or \"gcp\"; the labels of local profiles \
             are telemetry.profiling.cpu.labels",
        ));
    }
    if let Some(unbounded) = labels.iter().find(|l| l.unbounded()) {
        return Err(invalid(
            keys::EXPORTER_LABELS.path,
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
        self.validate_keys(ExporterKeys::Refused)
    }

    pub(super) fn validate_keys(&self, other_exporters: ExporterKeys) -> Result<()> {
        let p = &self.telemetry.profiling;
        check_ranges(self)?;
        // Sub-second windows come only from the builder; the key counts
        // whole seconds.
        let max = keys::CPU_DURATION.integer_max();
        if p.cpu.duration < std::time::Duration::from_millis(10) || p.cpu.duration.as_secs() > max {
            return Err(invalid(
                keys::CPU_DURATION.path,
                format!(
                    "{:?} is out of range; allowed: 1 to {max} seconds",
                    p.cpu.duration
                ),
            ));
        }
        check_labels(&p.exporter)?;
        if p.exporter.type_ == ExporterType::Pyroscope {
            match p.exporter.pyroscope_endpoint.as_deref() {
                None => {
                    return Err(invalid(
                        keys::PYROSCOPE_ENDPOINT.path,
                        "is required when type = \"pyroscope\"",
                    ))
                }
                Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                    return Err(invalid(
                        keys::PYROSCOPE_ENDPOINT.path,
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
                keys::BASIC_AUTH_USER.path,
                "basic_auth_user and basic_auth_password go together",
            ));
        }
        if p.exporter.basic_auth_user.is_some() && p.exporter.bearer_token.is_some() {
            return Err(invalid(
                keys::BEARER_TOKEN.path,
                "choose basic auth or a bearer token, not both",
            ));
        }
        if other_exporters == ExporterKeys::Refused {
            check_exporter_scope(self)?;
        }
        check_gcp(&p.exporter)?;
        check_request_parts(&p.exporter)?;
        if p.exporter.file_output_dir.as_deref() == Some("") {
            return Err(invalid(keys::FILE_OUTPUT_DIR.path, "must not be empty"));
        }
        check_http(&p.http)?;
        Ok(())
    }

    /// Whether invocations are to be recorded.
    pub fn recording(&self) -> bool {
        self.telemetry.enabled && self.telemetry.profiling.enabled
    }

    /// Keys that turn on capabilities this build does not have. Each is
    /// refused by [`init`](crate::api::init) rather than accepted and ignored.
    pub fn unsupported(&self) -> Option<Error> {
        let p = &self.telemetry.profiling;
        if !self.recording() {
            return None;
        }
        if p.http.listen.is_some() && !cfg!(feature = "http") {
            return Some(Error::Unsupported {
                key: keys::HTTP_LISTEN.path.to_owned(),
                what: "the live HTTP endpoint".to_owned(),
                hint: Some("build agentprof with the `http` feature".to_owned()),
            });
        }
        if p.exporter.type_ == ExporterType::Gcp && !cfg!(feature = "gcp") {
            return Some(Error::Unsupported {
                key: keys::EXPORTER_TYPE.path.to_owned(),
                what: "the Cloud Profiler agent (type = \"gcp\")".to_owned(),
                hint: Some(
                    "build agentprof with the `gcp` feature, or use type = \"file\"".to_owned(),
                ),
            });
        }
        if p.exporter.type_ == ExporterType::Pyroscope && !cfg!(feature = "pyroscope") {
            return Some(Error::Unsupported {
                key: keys::EXPORTER_TYPE.path.to_owned(),
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
