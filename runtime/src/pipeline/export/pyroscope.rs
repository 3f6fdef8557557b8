//! Pushes profiles to a Pyroscope server: `POST {endpoint}/push.v1.PusherService/Push`
//! with a gzipped protobuf `PushRequest` (the Connect protocol's binary
//! encoding). Series labels are `__name__` (the profile type),
//! `service_name` and the static tags; the raw pprof keeps its per-sample
//! labels, `span_id` and `trace_id` among them, which Pyroscope uses for
//! span profiles.
//!
//! A blocking client on the export thread: the collector never runs on the
//! application's runtime. Timeouts, and retries with exponential backoff on
//! 5xx, timeouts and connection errors; a 4xx is not retried.

use std::io::Write;
use std::time::Duration;

use super::{Payloads, ProfileExporter, Window};
use crate::config::{redact_url, SampleLabel, Secret};
use crate::error::{Error, Result};
use crate::pprof::Profile;

/// `push.v1.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// One series per profile type.
    #[prost(message, repeated, tag = "1")]
    pub series: Vec<RawProfileSeries>,
}

/// `push.v1.RawProfileSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawProfileSeries {
    /// Series labels.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<LabelPair>,
    /// Profiles of the series.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<RawSample>,
}

/// `types.v1.LabelPair`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LabelPair {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `push.v1.RawSample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawSample {
    /// A pprof profile (gzipped).
    #[prost(bytes = "vec", tag = "1")]
    pub raw_profile: Vec<u8>,
    /// Unique id of the profile.
    #[prost(string, tag = "2")]
    pub id: String,
}

/// How to authenticate to the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PyroscopeAuth {
    /// None.
    #[default]
    None,
    /// HTTP basic auth.
    Basic {
        /// User.
        user: String,
        /// Password.
        password: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
}

/// Where and how to push. `Debug` shows the endpoint without credentials
/// and secrets as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct PyroscopeConfig {
    /// Base URL, e.g. `http://localhost:4040`.
    pub endpoint: String,
    /// The `service_name` label.
    pub application_name: String,
    /// Static series labels.
    pub tags: Vec<(String, String)>,
    /// Authentication.
    pub auth: PyroscopeAuth,
    /// `X-Scope-OrgID` for multi-tenant servers.
    pub tenant_id: Option<String>,
    /// More headers (values are secrets: they often carry keys).
    pub headers: Vec<(String, Secret)>,
    /// Per request.
    pub timeout: Duration,
    /// Retries after the first attempt (5xx, timeouts, connection errors).
    pub max_retries: u32,
    /// First backoff; doubles per retry, up to [`MAX_BACKOFF`].
    pub backoff: Duration,
    /// The per-sample labels CPU profiles keep when pushed (default
    /// [`SampleLabel::PYROSCOPE_DEFAULT`]): Pyroscope makes a series per
    /// distinct label set, except for `span_id`.
    pub labels: Vec<SampleLabel>,
}

/// The longest wait between two attempts of one push.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl std::fmt::Debug for PyroscopeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyroscopeConfig")
            .field("endpoint", &redact_url(&self.endpoint))
            .field("application_name", &self.application_name)
            .field("tags", &self.tags)
            .field("auth", &self.auth)
            .field("tenant_id", &self.tenant_id)
            .field("headers", &self.headers)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff", &self.backoff)
            .field("labels", &self.labels)
            .finish()
    }
}

impl PyroscopeConfig {
    /// Defaults for `endpoint` and `application_name`.
    pub fn new(endpoint: impl Into<String>, application_name: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            application_name: application_name.into(),
            tags: Vec::new(),
            auth: PyroscopeAuth::None,
            tenant_id: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            max_retries: 2,
            backoff: Duration::from_millis(200),
            labels: SampleLabel::PYROSCOPE_DEFAULT.to_vec(),
        }
    }
}

/// Pushes each window's CPU and heap profiles to Pyroscope.
pub struct PyroscopeExporter {
    client: reqwest::blocking::Client,
    url: String,
    config: PyroscopeConfig,
}

impl std::fmt::Debug for PyroscopeExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyroscopeExporter")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl PyroscopeExporter {
    /// An exporter for `config`; fails on an endpoint that is not an
    /// http(s) URL.
    pub fn new(config: PyroscopeConfig) -> Result<Self> {
        if !(config.endpoint.starts_with("http://") || config.endpoint.starts_with("https://")) {
            return Err(Error::InvalidConfig {
                key: crate::config::keys::PYROSCOPE_ENDPOINT.path.to_owned(),
                message: format!(
                    "{:?} is not an http:// or https:// URL",
                    redact_url(&config.endpoint)
                ),
            });
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| Error::Export {
                exporter: "pyroscope".to_owned(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let url = format!(
            "{}/push.v1.PusherService/Push",
            config.endpoint.trim_end_matches('/')
        );
        Ok(Self {
            client,
            url,
            config,
        })
    }

    /// The body of one push: a gzipped `PushRequest`.
    fn body(&self, profile_type: &str, window: &Window, profile: &[u8]) -> Vec<u8> {
        let mut labels = vec![
            LabelPair {
                name: "__name__".to_owned(),
                value: profile_type.to_owned(),
            },
            LabelPair {
                name: "service_name".to_owned(),
                value: self.config.application_name.clone(),
            },
        ];
        labels.extend(self.config.tags.iter().map(|(name, value)| LabelPair {
            name: name.clone(),
            value: value.clone(),
        }));
        let request = PushRequest {
            series: vec![RawProfileSeries {
                labels,
                samples: vec![RawSample {
                    raw_profile: profile.to_vec(),
                    id: format!(
                        "{}-{profile_type}-{}",
                        self.config.application_name, window.sequence
                    ),
                }],
            }],
        };
        let raw = prost::Message::encode_to_vec(&request);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = gz.write_all(&raw);
        gz.finish().unwrap_or_default()
    }

    fn push(&self, profile_type: &str, window: &Window, profile: &[u8]) -> Result<()> {
        let body = self.body(profile_type, window, profile);
        let mut delay = self.config.backoff;
        let mut attempt = 0;
        loop {
            let mut request = self
                .client
                .post(&self.url)
                .header("Content-Type", "application/proto")
                .header("Content-Encoding", "gzip")
                .header("Connect-Protocol-Version", "1")
                .body(body.clone());
            request = match &self.config.auth {
                PyroscopeAuth::None => request,
                PyroscopeAuth::Basic { user, password } => {
                    request.basic_auth(user, Some(password.expose()))
                }
                PyroscopeAuth::Bearer(token) => request.bearer_auth(token.expose()),
            };
            if let Some(tenant) = &self.config.tenant_id {
                request = request.header("X-Scope-OrgID", tenant);
            }
            for (name, value) in &self.config.headers {
                request = request.header(name, value.expose());
            }
            let failure = match request.send() {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) if response.status().is_client_error() => {
                    return Err(self.error(format!("rejected with {}", response.status())));
                }
                Ok(response) => format!("answered {}", response.status()),
                Err(e) if e.is_timeout() => format!("timed out after {:?}", self.config.timeout),
                // The error's text would repeat the URL, credentials and all.
                Err(e) => format!("unreachable ({})", e.without_url()),
            };
            if attempt >= self.config.max_retries {
                return Err(
                    self.error(format!("{failure}; gave up after {} attempts", attempt + 1))
                );
            }
            attempt += 1;
            std::thread::sleep(delay);
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }

    fn error(&self, message: String) -> Error {
        Error::Export {
            exporter: "pyroscope".to_owned(),
            message: format!("{}: {message}", redact_url(&self.url)),
        }
    }
}

impl ProfileExporter for PyroscopeExporter {
    /// The backend ingests profiles; it draws its own flamegraphs.
    fn payloads(&self) -> Payloads {
        Payloads {
            cpu_profile: true,
            memory_profile: true,
            ..Payloads::NONE
        }
    }

    fn export_cpu_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        // Windows carry the local labels (invocation ids among them); the
        // backend gets only its own.
        let mut decoded = Profile::decode(profile)?;
        let keys: Vec<&str> = self.config.labels.iter().map(|l| l.as_str()).collect();
        decoded.keep_labels(&keys);
        self.push("process_cpu", window, &decoded.encode_gzip())
    }

    fn export_memory_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        self.push("memory", window, profile)
    }
}
