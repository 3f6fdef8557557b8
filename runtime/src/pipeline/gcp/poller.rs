//! The agent's loop: ask, collect, upload; wait as the server says on
//! `ABORTED`, back off with jitter on failures, warn once per streak.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::watch;

use super::auth::Tokens;
use super::collect::{self, Failure};
use super::protocol::{CreateProfileRequest, Deployment, ErrorAnswer, ProfileType, Requested};
use super::{until_stopped, Counters, GcpConfig, LONG_POLL_TIMEOUT};
use crate::config::Secret;

const TARGET: &str = "agentprof::gcp";

/// The longest wait the agent accepts from the server's `RetryInfo`.
const MAX_SERVER_DELAY: Duration = Duration::from_secs(86_400);

/// The metadata server, as Google's client libraries address it;
/// `GCE_METADATA_HOST` moves it.
const METADATA_HOST: &str = "metadata.google.internal";

pub(super) struct Poller {
    config: GcpConfig,
    client: reqwest::Client,
    tokens: Tokens,
    project: Option<String>,
    counters: Arc<Counters>,
    backoff: Backoff,
    streak: u64,
    profile_labels: BTreeMap<String, String>,
}

/// Why a request failed, and the wait before the next.
struct Failed {
    message: String,
    /// The server's own delay, when it gave one.
    server_delay: Option<Duration>,
}

impl Failed {
    fn new(message: impl Into<String>) -> Failed {
        Failed {
            message: message.into(),
            server_delay: None,
        }
    }
}

enum Answer {
    Profile(Requested),
    /// `ABORTED` with a retry delay: not yet; ask again after it.
    NotYet(Duration),
}

impl Poller {
    pub(super) fn new(
        config: GcpConfig,
        client: reqwest::Client,
        tokens: Tokens,
        project: Option<String>,
        counters: Arc<Counters>,
    ) -> Poller {
        let mut profile_labels = BTreeMap::new();
        if let Some(host) = hostname() {
            profile_labels.insert("instance".to_owned(), host);
        }
        Poller {
            backoff: Backoff::new(config.backoff_initial, config.backoff_max),
            config,
            client,
            tokens,
            project,
            counters,
            streak: 0,
            profile_labels,
        }
    }

    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let Some(deployment) = self.deployment(&mut stop).await else {
            return;
        };
        loop {
            let types = collect::available();
            let answer = match until_stopped(&mut stop, self.create(&deployment, &types)).await {
                None => return,
                Some(answer) => answer,
            };
            let requested = match answer {
                Ok(Answer::Profile(requested)) => {
                    self.succeeded();
                    requested
                }
                Ok(Answer::NotYet(delay)) => {
                    self.succeeded();
                    self.counters.server_delays.fetch_add(1, Relaxed);
                    tracing::debug!(target: TARGET, "the server asks to wait {delay:?}");
                    if until_stopped(&mut stop, tokio::time::sleep(delay))
                        .await
                        .is_none()
                    {
                        return;
                    }
                    continue;
                }
                Err(failed) => {
                    if !self
                        .wait_after(failed, "asking for a profile", &mut stop)
                        .await
                    {
                        return;
                    }
                    continue;
                }
            };
            let Some(profile_type) = requested.profile_type.filter(|t| types.contains(t)) else {
                self.collect_failed(format!(
                    "the server asked for a {} profile, which this agent did not offer",
                    requested.type_name
                ));
                continue;
            };
            let collected = match collect::collect(
                profile_type,
                requested.duration,
                self.config.cpu_hz,
                &self.config.sample_labels,
                &mut stop,
            )
            .await
            {
                Ok(collected) => collected,
                Err(Failure::Stopped) => return,
                Err(Failure::Failed(why)) => {
                    self.collect_failed(format!(
                        "could not collect a {} profile: {why}",
                        profile_type.as_str()
                    ));
                    continue;
                }
            };
            let name = requested.name.clone();
            let body = requested.into_upload(
                base64::engine::general_purpose::STANDARD.encode(&collected.pprof_gzip),
                &self.profile_labels,
            );
            match until_stopped(&mut stop, self.upload(&name, body)).await {
                None => return,
                Some(Ok(())) => {
                    self.succeeded();
                    let c = &self.counters;
                    c.uploaded.fetch_add(1, Relaxed);
                    match profile_type {
                        ProfileType::Cpu => {
                            c.cpu_profiles.fetch_add(1, Relaxed);
                            if collected.shared_sampler {
                                c.cpu_profiles_shared.fetch_add(1, Relaxed);
                            }
                        }
                        ProfileType::Heap => {
                            c.heap_profiles.fetch_add(1, Relaxed);
                        }
                        ProfileType::HeapAlloc => {
                            c.heap_alloc_profiles.fetch_add(1, Relaxed);
                        }
                    }
                    tracing::debug!(
                        target: TARGET,
                        "uploaded a {} profile ({} bytes)",
                        profile_type.as_str(),
                        collected.pprof_gzip.len()
                    );
                }
                // Like Google's agents, a profile that failed to upload is
                // not retried: the server asks for the next one.
                Some(Err(failed)) => {
                    if !self
                        .wait_after(failed, "uploading a profile", &mut stop)
                        .await
                    {
                        return;
                    }
                }
            }
        }
    }

    /// The deployment, once the credentials and the project are known.
    async fn deployment(&mut self, stop: &mut watch::Receiver<bool>) -> Option<Deployment> {
        let mut labels = self.config.labels.clone();
        // As Google's Go and Node.js agents send theirs.
        labels.insert("language".to_owned(), "rust".to_owned());
        if let Some(version) = &self.config.service_version {
            labels.insert("version".to_owned(), version.clone());
        }
        let mut zone = self.config.zone.clone();
        while self.tokens.pending() {
            match until_stopped(stop, self.tokens.discover()).await? {
                Ok(project) => {
                    self.succeeded();
                    self.project = self.project.take().or(project);
                    if zone.is_none() {
                        let host = std::env::var("GCE_METADATA_HOST")
                            .unwrap_or_else(|_| METADATA_HOST.to_owned());
                        zone = until_stopped(stop, metadata_zone(&self.client, &host)).await?;
                    }
                }
                Err(why) => {
                    if !self
                        .wait_after(Failed::new(why), "finding credentials", stop)
                        .await
                    {
                        return None;
                    }
                }
            }
        }
        if self.project.is_none() {
            self.counters.warnings.fetch_add(1, Relaxed);
            tracing::warn!(
                target: TARGET,
                "Cloud Profiler agent stopped: no project; set \
                 telemetry.profiling.exporter.gcp_project_id"
            );
            return None;
        }
        if let Some(zone) = zone {
            labels.insert("zone".to_owned(), zone);
        }
        Some(Deployment {
            project_id: self.project.clone().unwrap_or_default(),
            target: self.config.service.clone(),
            labels,
        })
    }

    async fn token(&self) -> Result<Secret, Failed> {
        self.tokens.token().await.map_err(Failed::new)
    }

    /// `CreateProfile`: held by the server until it wants a profile.
    async fn create(
        &self,
        deployment: &Deployment,
        types: &[ProfileType],
    ) -> Result<Answer, Failed> {
        let token = self.token().await?;
        self.counters.polls.fetch_add(1, Relaxed);
        let url = format!(
            "{}/v2/projects/{}/profiles",
            self.config.endpoint.trim_end_matches('/'),
            deployment.project_id
        );
        let body = serde_json::to_vec(&CreateProfileRequest {
            deployment,
            profile_type: types,
        })
        .unwrap_or_default();
        let (status, body) = self
            .call(reqwest::Method::POST, url, &token, body, LONG_POLL_TIMEOUT)
            .await?;
        if status.is_success() {
            return Requested::parse(&body)
                .map(Answer::Profile)
                .map_err(|why| Failed::new(format!("CreateProfile: {why}")));
        }
        let answer = ErrorAnswer::parse(&body);
        match answer.retry_delay {
            Some(delay) if answer.status.as_deref() == Some("ABORTED") || status == 409 => {
                Ok(Answer::NotYet(delay.min(MAX_SERVER_DELAY)))
            }
            delay => Err(Failed {
                message: format!("CreateProfile: {}", describe(status, &answer)),
                server_delay: delay.map(|d| d.min(MAX_SERVER_DELAY)),
            }),
        }
    }

    /// `UpdateProfile`: the collected bytes.
    async fn upload(&self, name: &str, body: Vec<u8>) -> Result<(), Failed> {
        let token = self.token().await?;
        let url = format!("{}/v2/{name}", self.config.endpoint.trim_end_matches('/'));
        let (status, body) = self
            .call(
                reqwest::Method::PATCH,
                url,
                &token,
                body,
                self.config.upload_timeout,
            )
            .await?;
        if status.is_success() {
            return Ok(());
        }
        let answer = ErrorAnswer::parse(&body);
        Err(Failed {
            message: format!("UpdateProfile: {}", describe(status, &answer)),
            server_delay: answer.retry_delay.map(|d| d.min(MAX_SERVER_DELAY)),
        })
    }

    /// One JSON request with the access token; the answer's status and body.
    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        token: &Secret,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), Failed> {
        let response = self
            .client
            .request(method, url)
            .bearer_auth(token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| Failed::new(request_error(e, timeout)))?;
        let status = response.status();
        let body = read_bounded(response, MAX_REPLY_BYTES)
            .await
            .map_err(|e| Failed::new(e.describe(timeout)))?;
        Ok((status, body))
    }

    /// Counts a failure, warns if it starts a streak, and waits the
    /// server's delay or the next backoff. `false`: shutdown came first.
    async fn wait_after(
        &mut self,
        failed: Failed,
        doing: &str,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        self.counters.failures.fetch_add(1, Relaxed);
        let wait = failed
            .server_delay
            .unwrap_or_else(|| self.backoff.next_wait());
        if self.streak == 0 {
            self.counters.warnings.fetch_add(1, Relaxed);
            tracing::warn!(
                target: TARGET,
                "Cloud Profiler: failed {doing}: {}; retrying in {wait:?} (further failures \
                 are logged at debug level until one succeeds)",
                failed.message
            );
        } else {
            tracing::debug!(
                target: TARGET,
                "Cloud Profiler: failed {doing} again ({} in a row): {}; retrying in {wait:?}",
                self.streak + 1,
                failed.message
            );
        }
        self.streak += 1;
        until_stopped(stop, tokio::time::sleep(wait))
            .await
            .is_some()
    }

    fn succeeded(&mut self) {
        if self.streak > 0 {
            tracing::info!(
                target: TARGET,
                "Cloud Profiler: reachable again after {} failed requests",
                self.streak
            );
        }
        self.streak = 0;
        self.backoff.reset();
    }

    fn collect_failed(&self, why: String) {
        if self.counters.collect_failures.fetch_add(1, Relaxed) == 0 {
            self.counters.warnings.fetch_add(1, Relaxed);
            tracing::warn!(target: TARGET, "Cloud Profiler: {why}");
        } else {
            tracing::debug!(target: TARGET, "Cloud Profiler: {why}");
        }
    }
}

fn describe(status: reqwest::StatusCode, answer: &ErrorAnswer) -> String {
    let mut text = format!("answered {status}");
    if let Some(s) = &answer.status {
        text.push_str(&format!(" {s}"));
    }
    if let Some(m) = &answer.message {
        text.push_str(&format!(": {m}"));
    }
    text
}

fn request_error(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {timeout:?}")
    } else {
        // Without the URL, which could carry credentials of a proxy.
        format!("unreachable ({})", DisplayChain(&e.without_url()))
    }
}

/// An error and its sources, one after the other.
struct DisplayChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// Exponential backoff with jitter: each wait is between half and all of
/// a nominal delay that grows 1.3 times per failure (as Google's agents),
/// so waits never shrink to nothing and instances do not retry in step.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    seed: u64,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
            seed: 0,
        }
    }

    fn next_wait(&mut self) -> Duration {
        let nominal = self.next;
        self.next = nominal.mul_f64(1.3).min(self.max);
        self.seed += 1;
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(self.seed);
        let unit = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
        nominal / 2 + (nominal / 2).mul_f64(unit)
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// The instance's zone from the metadata server (`projects/N/zones/Z`),
/// asked once when the credentials came from discovery; nothing when it
/// does not answer within a second (not on Google Cloud).
async fn metadata_zone(client: &reqwest::Client, host: &str) -> Option<String> {
    let response = client
        .get(format!("http://{host}/computeMetadata/v1/instance/zone"))
        .header("Metadata-Flavor", "Google")
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = read_bounded(response, 4096).await.ok()?;
    String::from_utf8_lossy(&body)
        .trim()
        .rsplit('/')
        .next()
        .filter(|z| !z.is_empty() && z.len() <= 63)
        .map(str::to_owned)
}

/// The most a reply of the Profiler API may hold: 4 MiB, gRPC's default
/// limit, which Google's agents live with. A reply past it is a failure
/// (with backoff), never memory the process runs out of.
const MAX_REPLY_BYTES: usize = 4 << 20;

/// Why a reply's body was not read.
enum ReadError {
    /// The transport failed or timed out.
    Request(reqwest::Error),
    /// The body was longer than allowed.
    TooLong {
        limit: usize,
        announced: Option<u64>,
    },
}

impl ReadError {
    fn describe(self, timeout: Duration) -> String {
        match self {
            ReadError::Request(e) => request_error(e, timeout),
            ReadError::TooLong { limit, announced } => format!(
                "the reply is longer than the {} KiB a reply may have{}",
                limit >> 10,
                announced.map_or(String::new(), |n| format!(" ({n} bytes announced)"))
            ),
        }
    }
}

/// A reply's body, read chunk by chunk and given up past `limit` bytes.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    let announced = response.content_length();
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLong { limit, announced });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Request)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLong { limit, announced });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that announces `length` (or none: chunked) and streams
    /// zeros until the client goes away; the client's verdict.
    fn huge_reply(length: Option<u64>) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/v2/projects/p/profiles",
            listener.local_addr().unwrap()
        );
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = match length {
                Some(n) => format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n"),
                None => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
            };
            stream.write_all(head.as_bytes()).unwrap();
            let block = vec![b'0'; 64 << 10];
            let mut sent = 0usize;
            // At most 64 MiB: the client must give up long before.
            while sent < 64 << 20 {
                let written = match length {
                    Some(_) => stream.write_all(&block),
                    None => write!(stream, "{:x}\r\n", block.len())
                        .and_then(|_| stream.write_all(&block))
                        .and_then(|_| stream.write_all(b"\r\n")),
                };
                if written.is_err() {
                    break;
                }
                sent += block.len();
            }
            sent
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let verdict = runtime.block_on(async {
            let response = reqwest::Client::new().get(url).send().await.unwrap();
            match read_bounded(response, MAX_REPLY_BYTES).await {
                Ok(body) => format!("read {} bytes", body.len()),
                Err(e) => e.describe(Duration::from_secs(1)),
            }
        });
        drop(runtime);
        let sent = server.join().unwrap();
        assert!(sent < 64 << 20, "the client read everything ({sent} bytes)");
        verdict
    }

    #[test]
    fn a_reply_past_the_bound_is_refused_whatever_it_announces() {
        let announced = huge_reply(Some(8_000_000_000));
        assert!(
            announced.contains("longer than the 4096 KiB") && announced.contains("8000000000"),
            "{announced}"
        );
        let chunked = huge_reply(None);
        assert!(chunked.contains("longer than the 4096 KiB"), "{chunked}");
    }

    #[test]
    fn the_zone_comes_from_the_metadata_server_when_it_answers() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 2048];
            let n = stream.read(&mut request).unwrap();
            let request = String::from_utf8_lossy(&request[..n]).to_ascii_lowercase();
            let body = "projects/123456/zones/europe-west1-b";
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            request
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = reqwest::Client::new();
        let zone = runtime.block_on(metadata_zone(&client, &host));
        let request = server.join().unwrap();
        assert_eq!(zone.as_deref(), Some("europe-west1-b"));
        assert!(request.starts_with("get /computemetadata/v1/instance/zone "));
        assert!(request.contains("metadata-flavor: google"), "{request}");
        // Nothing listening: no zone, no error.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_host = closed.local_addr().unwrap().to_string();
        drop(closed);
        assert_eq!(runtime.block_on(metadata_zone(&client, &closed_host)), None);
    }

    #[test]
    fn backoff_grows_by_1_3_with_jitter_and_never_below_half() {
        let mut backoff = Backoff::new(Duration::from_millis(1000), Duration::from_millis(2000));
        let nominal = [1000.0, 1300.0, 1690.0, 2000.0, 2000.0];
        let mut waits = Vec::new();
        for expected in nominal {
            let wait = backoff.next_wait().as_secs_f64() * 1000.0;
            assert!(
                wait >= expected / 2.0 - 1.0 && wait <= expected + 1.0,
                "{wait} ms for a nominal {expected} ms"
            );
            waits.push(wait);
        }
        // Jittered: not all at the same fraction of their nominal delay.
        let fractions: Vec<u64> = waits
            .iter()
            .zip(nominal)
            .map(|(w, n)| (w / n * 1000.0) as u64)
            .collect();
        assert!(fractions.windows(2).any(|w| w[0] != w[1]), "{fractions:?}");
        backoff.reset();
        assert!(backoff.next_wait() <= Duration::from_millis(1000));
    }
}
