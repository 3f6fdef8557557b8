//! The Cloud Profiler agent (online mode): it long-polls the Profiler API's
//! `CreateProfile` with the deployment and the profile types this process
//! can provide, collects exactly the profile the server then asks for, and
//! uploads it with `UpdateProfile`. The server, not a timer, decides what
//! is profiled and when, spreading the cost across a service's instances.
//!
//! It runs on its own thread (`agentprof-gcp`) with a private
//! current-thread tokio runtime, never on the application's. Every wait
//! (the long poll, a CPU profile, a backoff) also waits for shutdown, so
//! shutdown ends a pending poll at once by dropping its request.

mod auth;
mod collect;
mod poller;
mod protocol;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

pub use auth::GcpCredentials;
pub use protocol::{Deployment, ProfileType};

use crate::config::{keys, redact_url};
use crate::error::{Error, Result};
use crate::fork::StartedIn;

/// The public Profiler API.
pub const DEFAULT_ENDPOINT: &str = "https://cloudprofiler.googleapis.com";

/// How long the agent lets the server hold a `CreateProfile` request (the
/// server answers well within it; Google's agents allow an hour).
pub const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(3600);

/// Where and as what the agent reports, and how it behaves. `Debug` shows
/// a fixed token as `<redacted>` and the endpoint without credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct GcpConfig {
    /// The Google Cloud project; `None`: the credentials' project.
    pub project_id: Option<String>,
    /// The service name (the deployment's target).
    pub service: String,
    /// The `version` deployment label.
    pub service_version: Option<String>,
    /// The `zone` deployment label; `None`: the metadata server's, when
    /// the credentials came from it (on Google Cloud).
    pub zone: Option<String>,
    /// More deployment labels.
    pub labels: BTreeMap<String, String>,
    /// The API's base URL.
    pub endpoint: String,
    /// How to authenticate.
    pub credentials: GcpCredentials,
    /// The CPU sampling rate when no sampler runs and the agent starts one
    /// for a profile, Hz.
    pub cpu_hz: u32,
    /// The per-sample labels of uploaded CPU profiles (default
    /// [`SampleLabel::CLOUD_PROFILER_DEFAULT`](crate::model::SampleLabel::CLOUD_PROFILER_DEFAULT):
    /// bounded ones only).
    pub sample_labels: Vec<crate::model::SampleLabel>,
    /// Timeout of an upload (`UpdateProfile`).
    pub upload_timeout: Duration,
    /// First wait after a failed request; each further failure waits 1.3
    /// times longer, up to `backoff_max`, each wait jittered between half
    /// and all of it.
    pub backoff_initial: Duration,
    /// Longest wait after failures.
    pub backoff_max: Duration,
    /// How long `shutdown` waits for the agent's thread.
    pub shutdown_timeout: Duration,
}

impl std::fmt::Debug for GcpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpConfig")
            .field("project_id", &self.project_id)
            .field("service", &self.service)
            .field("service_version", &self.service_version)
            .field("zone", &self.zone)
            .field("labels", &self.labels)
            .field("endpoint", &redact_url(&self.endpoint))
            .field("credentials", &self.credentials)
            .field("cpu_hz", &self.cpu_hz)
            .field("sample_labels", &self.sample_labels)
            .field("upload_timeout", &self.upload_timeout)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

impl GcpConfig {
    /// Defaults for `service`: the public endpoint, Application Default
    /// Credentials, the backoff of Google's agents (1 min growing to 1 h).
    pub fn new(service: impl Into<String>) -> GcpConfig {
        GcpConfig {
            project_id: None,
            service: service.into(),
            service_version: None,
            zone: None,
            labels: BTreeMap::new(),
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            credentials: GcpCredentials::ApplicationDefault,
            cpu_hz: 100,
            sample_labels: crate::model::SampleLabel::CLOUD_PROFILER_DEFAULT.to_vec(),
            upload_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(60),
            backoff_max: Duration::from_secs(3600),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// What the agent has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcpStats {
    /// `CreateProfile` requests sent.
    pub polls: u64,
    /// Profiles uploaded, of every type.
    pub uploaded: u64,
    /// CPU profiles uploaded.
    pub cpu_profiles: u64,
    /// Of those, taken from a sampler another consumer (the collector)
    /// runs rather than one started for the profile.
    pub cpu_profiles_shared: u64,
    /// Heap profiles uploaded.
    pub heap_profiles: u64,
    /// Allocation profiles uploaded.
    pub heap_alloc_profiles: u64,
    /// Waits the server asked for (`ABORTED` with a retry delay).
    pub server_delays: u64,
    /// Failed requests: token, `CreateProfile` or `UpdateProfile`.
    pub failures: u64,
    /// Warnings logged: one per streak of failures.
    pub warnings: u64,
    /// Profiles asked for that could not be collected.
    pub collect_failures: u64,
}

#[derive(Default)]
struct Counters {
    polls: AtomicU64,
    uploaded: AtomicU64,
    cpu_profiles: AtomicU64,
    cpu_profiles_shared: AtomicU64,
    heap_profiles: AtomicU64,
    heap_alloc_profiles: AtomicU64,
    server_delays: AtomicU64,
    failures: AtomicU64,
    warnings: AtomicU64,
    collect_failures: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> GcpStats {
        GcpStats {
            polls: self.polls.load(Relaxed),
            uploaded: self.uploaded.load(Relaxed),
            cpu_profiles: self.cpu_profiles.load(Relaxed),
            cpu_profiles_shared: self.cpu_profiles_shared.load(Relaxed),
            heap_profiles: self.heap_profiles.load(Relaxed),
            heap_alloc_profiles: self.heap_alloc_profiles.load(Relaxed),
            server_delays: self.server_delays.load(Relaxed),
            failures: self.failures.load(Relaxed),
            warnings: self.warnings.load(Relaxed),
            collect_failures: self.collect_failures.load(Relaxed),
        }
    }
}

/// A running Cloud Profiler agent. Dropping it stops it like `shutdown`.
pub struct GcpAgent {
    stop: watch::Sender<bool>,
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    shutdown_timeout: Duration,
    started_in: StartedIn,
}

impl std::fmt::Debug for GcpAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpAgent")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl GcpAgent {
    /// Checks the configuration, reads a key file when one is named (a
    /// missing or broken one fails here, naming where it came from), and
    /// starts polling.
    pub fn start(config: GcpConfig) -> Result<GcpAgent> {
        if !(config.endpoint.starts_with("http://") || config.endpoint.starts_with("https://")) {
            return Err(Error::InvalidConfig {
                key: keys::GCP_ENDPOINT.path.to_owned(),
                message: format!(
                    "{:?} is not an http:// or https:// URL",
                    redact_url(&config.endpoint)
                ),
            });
        }
        if !crate::config::cloud_profiler_name(&config.service, 255) {
            return Err(Error::InvalidConfig {
                key: keys::GCP_SERVICE.path.to_owned(),
                message: format!(
                    "{:?} is not a Cloud Profiler service name: a lowercase letter, then \
                     lowercase letters, digits, `-`, `_` or `.`, ending in a letter or digit, \
                     at most 255 characters (set gcp_service; it defaults to \
                     application_name, then the executable's name)",
                    config.service
                ),
            });
        }
        crate::config::check_parameter(
            keys::CPU_FREQUENCY,
            config.cpu_hz.into(),
            "GcpConfig::cpu_hz",
        )?;
        let labels = config
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(
                [("version", &config.service_version), ("zone", &config.zone)]
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.as_deref()?))),
            );
        if let Err((label, message)) = crate::config::cloud_profiler_labels(labels) {
            return Err(Error::InvalidConfig {
                key: format!("{}.{label}", keys::TAGS.path),
                message,
            });
        }
        let (tokens, key_project) = auth::Tokens::resolve(&config.credentials)?;
        let project = config.project_id.clone().or(key_project);
        if project.is_none() && !tokens.pending() {
            return Err(Error::InvalidConfig {
                key: keys::GCP_PROJECT_ID.path.to_owned(),
                message: "is required: the credentials do not name a project".to_owned(),
            });
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("agentprof/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Export {
                exporter: "gcp".to_owned(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = watch::channel(false);
        let (done_tx, done) = mpsc::channel();
        let poller = poller::Poller::new(config.clone(), client, tokens, project, counters.clone());
        let thread = std::thread::Builder::new()
            .name("agentprof-gcp".to_owned())
            .spawn(move || {
                crate::profiler_cost::enter_profiler_thread();
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(poller.run(stopped)),
                    Err(e) => tracing::warn!(
                        target: "agentprof::gcp",
                        "Cloud Profiler agent not started: no runtime ({e})"
                    ),
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| Error::Resource {
                what: "the Cloud Profiler agent's thread".to_owned(),
                source: e,
            })?;
        Ok(GcpAgent {
            stop,
            done,
            thread: Some(thread),
            counters,
            shutdown_timeout: config.shutdown_timeout,
            started_in: StartedIn::this_process(),
        })
    }

    /// What the agent has done so far.
    pub fn stats(&self) -> GcpStats {
        self.counters.snapshot()
    }

    /// Stops the agent: a pending poll or profile is abandoned (its
    /// request dropped, its sampler tap detached). Returns whether the
    /// thread ended within the shutdown timeout; if not, it is left to end
    /// on its own.
    pub fn shutdown(mut self) -> bool {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> bool {
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let _ = self.stop.send(true);
        if !self.started_in.is_current() {
            // A forked child has no such thread to wait for.
            std::mem::forget(thread);
            return true;
        }
        match self.done.recv_timeout(self.shutdown_timeout) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
                true
            }
            Err(mpsc::RecvTimeoutError::Timeout) => false,
        }
    }
}

impl Drop for GcpAgent {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// Runs `work` unless shutdown comes first (`None`). Dropping `work`
/// cancels it: a request in flight is abandoned, its connection closed.
async fn until_stopped<F: Future>(stop: &mut watch::Receiver<bool>, work: F) -> Option<F::Output> {
    if *stop.borrow_and_update() {
        return None;
    }
    tokio::select! {
        biased;
        _ = stop.changed() => None,
        out = work => Some(out),
    }
}
