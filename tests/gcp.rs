//! The Cloud Profiler agent against a loopback server that implements the
//! Profiler API's REST surface as the agent uses it: `CreateProfile`
//! long-polled and answered from a script, `UpdateProfile` with the
//! uploaded pprof decoded and checked, `google.rpc.Status` errors with
//! `RetryInfo`, and an OAuth token endpoint that verifies the service
//! account's JWT against a key pair generated here.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentprof::gcp::{GcpAgent, GcpConfig, GcpCredentials};
use agentprof::pprof::Profile;
use agentprof::{config::Secret, profiled, Config, Profiler};
use base64::Engine as _;
use serde_json::{json, Value};

#[global_allocator]
static ALLOCATOR: agentprof::Allocator = agentprof::Allocator::system();

static SERIAL: Mutex<()> = Mutex::new(());

const PROJECT: &str = "agentprof-test";
const SCOPE: &str = "https://www.googleapis.com/auth/monitoring.write";
const FIXED_TOKEN: &str = "ya29.fixed-test-token-never-logged";

// ---------------------------------------------------------------------------
// What the application does meanwhile.

#[profiled(agent = "planner")]
fn plan() -> u64 {
    common::burn_cpu_ns(3_000_000)
}

#[profiled(agent = "retriever")]
fn retrieve(cache: &mut VecDeque<Vec<u8>>) {
    cache.push_back(vec![7u8; 64 * 1024]);
    if cache.len() > 64 {
        cache.pop_front();
    }
}

/// Agents at work on two threads until dropped; the planner's call
/// latencies are kept for a p99.
struct Workload {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<u64>>>,
}

impl Workload {
    fn start() -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let planner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    plan();
                    latencies.push(started.elapsed().as_micros() as u64);
                }
                latencies
            })
        };
        let retriever = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut cache = VecDeque::new();
                while !stop.load(Ordering::Relaxed) {
                    retrieve(&mut cache);
                    std::thread::sleep(Duration::from_millis(2));
                }
                Vec::new()
            })
        };
        Workload {
            stop,
            threads: vec![planner, retriever],
        }
    }

    /// Stops; the planner's p99 latency, µs.
    fn p99(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let mut latencies: Vec<u64> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        latencies.sort_unstable();
        latencies
            .get(latencies.len() * 99 / 100)
            .copied()
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------
// Log capture: warnings counted, every message kept to look for secrets.

static LOG: Mutex<Vec<(tracing::Level, String)>> = Mutex::new(Vec::new());

struct CaptureLog;

struct MessageText(String);

impl tracing::field::Visit for MessageText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CaptureLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut text = MessageText(event.metadata().target().to_owned());
        event.record(&mut text);
        LOG.lock()
            .unwrap()
            .push((*event.metadata().level(), text.0));
    }
}

fn install_subscriber() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt;
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CaptureLog))
            .unwrap();
    });
}

fn agent_warnings() -> Vec<String> {
    LOG.lock()
        .unwrap()
        .iter()
        .filter(|(level, text)| {
            *level == tracing::Level::WARN && text.starts_with("agentprof::gcp")
        })
        .map(|(_, text)| text.clone())
        .collect()
}

// ---------------------------------------------------------------------------
// The fake Profiler API.

/// One answer to `CreateProfile`, after holding the request `after`.
#[derive(Clone)]
enum Step {
    Profile {
        after: Duration,
        profile_type: &'static str,
        duration: Option<&'static str>,
    },
    Aborted {
        retry_delay: &'static str,
    },
    Fail {
        code: u16,
        status: &'static str,
    },
}

fn profile(after_ms: u64, profile_type: &'static str, duration: Option<&'static str>) -> Step {
    Step::Profile {
        after: Duration::from_millis(after_ms),
        profile_type,
        duration,
    }
}

/// How the server checks `Authorization`.
enum Auth {
    Fixed(&'static str),
    /// Tokens its own token endpoint issued, after verifying the JWT
    /// against this public key.
    ServiceAccount {
        public_key: rsa::RsaPublicKey,
        client_email: String,
        expires_in: u64,
    },
}

struct Upload {
    profile_type: String,
    profile: Profile,
    labels: BTreeMap<String, String>,
}

#[derive(Default)]
struct Seen {
    /// When each `CreateProfile` arrived, and the types it offered.
    polls: Vec<(Instant, Vec<String>)>,
    uploads: Vec<Upload>,
    /// Requests that broke the protocol, described.
    violations: Vec<String>,
    /// Polls whose connection the agent closed while the server held it.
    abandoned: u64,
    tokens_issued: Vec<String>,
    bearer_tokens: Vec<String>,
}

struct Expected {
    target: String,
    labels: BTreeMap<String, String>,
    /// The exact profile types offered, when known.
    types: Option<Vec<String>>,
}

struct FakeProfiler {
    url: String,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
}

struct ServerState {
    script: Mutex<VecDeque<Step>>,
    /// Profiles handed out: name -> (type, deployment).
    issued: Mutex<BTreeMap<String, (String, Value)>>,
    seen: Arc<Mutex<Seen>>,
    auth: Auth,
    expected: Expected,
    stop: Arc<AtomicBool>,
    token_url: String,
    next_id: AtomicU64,
}

type Request = common::HttpRequest;

impl FakeProfiler {
    /// A listener and its URL, for a key file that must name the token
    /// endpoint before the server starts.
    fn bind() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        (listener, url)
    }

    fn start(
        (listener, url): (TcpListener, String),
        script: Vec<Step>,
        auth: Auth,
        expected: Expected,
    ) -> FakeProfiler {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(ServerState {
            script: Mutex::new(script.into()),
            issued: Mutex::new(BTreeMap::new()),
            seen: seen.clone(),
            auth,
            expected,
            stop: stop.clone(),
            token_url: format!("{url}/token"),
            next_id: AtomicU64::new(1),
        });
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !state.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let state = state.clone();
                        std::thread::spawn(move || state.serve(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeProfiler { url, seen, stop }
    }

    fn seen<R>(&self, f: impl FnOnce(&Seen) -> R) -> R {
        f(&self.seen.lock().unwrap())
    }
}

impl Drop for FakeProfiler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn respond(mut stream: TcpStream, code: u16, body: &Value) {
    let body = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

fn error_body(code: u16, status: &str, details: Value) -> Value {
    json!({"error": {"code": code, "message": format!("{status} from the test server"),
                     "status": status, "details": details}})
}

fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl ServerState {
    fn violation(&self, what: String) {
        self.seen.lock().unwrap().violations.push(what);
    }

    fn serve(&self, stream: TcpStream) {
        let Some(request) = common::read_http_request(&stream) else {
            return;
        };
        let create_path = format!("/v2/projects/{PROJECT}/profiles");
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/token") => self.token(stream, &request),
            ("POST", path) if path == create_path => self.create(stream, &request),
            ("PATCH", path) if path.starts_with(&format!("{create_path}/")) => {
                self.update(stream, &request)
            }
            (method, path) => {
                self.violation(format!("unexpected request {method} {path}"));
                respond(stream, 404, &error_body(404, "NOT_FOUND", json!([])));
            }
        }
    }

    /// Checks `Authorization` and JSON content; false (answered) when bad.
    fn authorized(&self, stream: &TcpStream, request: &Request) -> bool {
        let bearer = request
            .headers
            .get("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        let mut seen = self.seen.lock().unwrap();
        let valid = match &self.auth {
            Auth::Fixed(token) => bearer == *token,
            Auth::ServiceAccount { .. } => seen.tokens_issued.contains(&bearer),
        };
        seen.bearer_tokens.push(bearer.clone());
        if request.headers.get("content-type").map(String::as_str) != Some("application/json") {
            seen.violations.push(format!(
                "{} {}: content-type {:?}",
                request.method,
                request.path,
                request.headers.get("content-type")
            ));
        }
        if !valid {
            seen.violations.push(format!(
                "{} {}: bad bearer token",
                request.method, request.path
            ));
            drop(seen);
            respond(
                stream.try_clone().unwrap(),
                401,
                &error_body(401, "UNAUTHENTICATED", json!([])),
            );
            return false;
        }
        true
    }

    fn create(&self, stream: TcpStream, request: &Request) {
        if !self.authorized(&stream, request) {
            return;
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let types: Vec<String> = body["profileType"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let deployment = body["deployment"].clone();
        let mut problems = Vec::new();
        if deployment["projectId"] != PROJECT {
            problems.push(format!("projectId {}", deployment["projectId"]));
        }
        if deployment["target"] != self.expected.target.as_str() {
            problems.push(format!("target {}", deployment["target"]));
        }
        let labels: BTreeMap<String, String> =
            serde_json::from_value(deployment["labels"].clone()).unwrap_or_default();
        if labels != self.expected.labels {
            problems.push(format!("labels {labels:?}"));
        }
        let known = ["CPU", "HEAP", "HEAP_ALLOC"];
        if !types.contains(&"CPU".to_owned()) || types.iter().any(|t| !known.contains(&t.as_str()))
        {
            problems.push(format!("profileType {types:?}"));
        }
        if let Some(expected) = &self.expected.types {
            if &types != expected {
                problems.push(format!("profileType {types:?}, expected {expected:?}"));
            }
        }
        if body.as_object().is_none_or(|o| o.len() != 2) {
            problems.push(format!("fields {body}"));
        }
        for problem in problems {
            self.violation(format!("CreateProfile: {problem}"));
        }
        self.seen
            .lock()
            .unwrap()
            .polls
            .push((Instant::now(), types));
        let step = self.script.lock().unwrap().pop_front();
        match step {
            Some(Step::Profile {
                after,
                profile_type,
                duration,
            }) => {
                if !self.hold(&stream, Some(after)) {
                    return;
                }
                let name = format!(
                    "projects/{PROJECT}/profiles/{}",
                    self.next_id.fetch_add(1, Ordering::Relaxed)
                );
                self.issued
                    .lock()
                    .unwrap()
                    .insert(name.clone(), (profile_type.to_owned(), deployment.clone()));
                let mut answer = json!({"name": name, "profileType": profile_type,
                                        "deployment": deployment,
                                        "labels": {"from-server": "kept"}});
                if let Some(d) = duration {
                    answer["duration"] = json!(d);
                }
                respond(stream, 200, &answer);
            }
            Some(Step::Aborted { retry_delay }) => respond(
                stream,
                409,
                &error_body(
                    409,
                    "ABORTED",
                    json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                            "retryDelay": retry_delay}]),
                ),
            ),
            Some(Step::Fail { code, status }) => {
                respond(stream, code, &error_body(code, status, json!([])))
            }
            None => {
                self.hold(&stream, None);
            }
        }
    }

    /// Holds a request for `period` (`None`: until the client goes away or
    /// the server stops). False when the client closed the connection.
    fn hold(&self, stream: &TcpStream, period: Option<Duration>) -> bool {
        let until = period.map(|p| Instant::now() + p);
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut byte = [0u8; 1];
        loop {
            if until.is_some_and(|u| Instant::now() >= u) || self.stop.load(Ordering::Relaxed) {
                return true;
            }
            match stream.peek(&mut byte) {
                Ok(0) => {
                    self.seen.lock().unwrap().abandoned += 1;
                    return false;
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => {}
            }
        }
    }

    fn update(&self, stream: TcpStream, request: &Request) {
        if !self.authorized(&stream, request) {
            return;
        }
        let name = request.path.trim_start_matches("/v2/").to_owned();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let Some((profile_type, deployment)) = self.issued.lock().unwrap().get(&name).cloned()
        else {
            self.violation(format!("UpdateProfile of {name}, never handed out"));
            respond(stream, 404, &error_body(404, "NOT_FOUND", json!([])));
            return;
        };
        let mut problems = Vec::new();
        if body["name"] != name.as_str() {
            problems.push(format!("name {}", body["name"]));
        }
        if body["profileType"] != profile_type.as_str() {
            problems.push(format!("profileType {}", body["profileType"]));
        }
        if body["deployment"] != deployment {
            problems.push(format!("deployment {}", body["deployment"]));
        }
        let labels: BTreeMap<String, String> =
            serde_json::from_value(body["labels"].clone()).unwrap_or_default();
        if labels.get("from-server").map(String::as_str) != Some("kept") {
            problems.push(format!("labels {labels:?} lost the server's"));
        }
        let profile = body["profileBytes"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|gz| gunzip(&gz))
            .and_then(|raw| Profile::decode(raw.as_slice()).ok());
        match profile {
            Some(profile) => {
                self.seen.lock().unwrap().uploads.push(Upload {
                    profile_type: profile_type.clone(),
                    profile,
                    labels,
                });
            }
            None => problems.push("profileBytes is not base64 gzipped pprof".to_owned()),
        }
        for problem in problems {
            self.violation(format!("UpdateProfile: {problem}"));
        }
        let mut answer = body.clone();
        if let Some(o) = answer.as_object_mut() {
            o.remove("profileBytes");
        }
        respond(stream, 200, &answer);
    }

    /// The OAuth token endpoint of the service-account flow.
    fn token(&self, stream: TcpStream, request: &Request) {
        let Auth::ServiceAccount {
            public_key,
            client_email,
            expires_in,
        } = &self.auth
        else {
            self.violation("a token request with fixed credentials".to_owned());
            return respond(stream, 400, &json!({"error": "invalid_request"}));
        };
        let form: BTreeMap<String, String> =
            url_decode_form(&String::from_utf8_lossy(&request.body));
        let checked = (|| {
            if form.get("grant_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
            {
                return Err(format!("grant_type {:?}", form.get("grant_type")));
            }
            let jwt = form.get("assertion").ok_or("no assertion")?;
            let claims = verify_jwt(jwt, public_key)?;
            let now = unix_now();
            let problems = [
                (claims["iss"] != client_email.as_str(), "iss"),
                (claims["aud"] != self.token_url.as_str(), "aud"),
                (
                    !claims["scope"]
                        .as_str()
                        .unwrap_or_default()
                        .split(' ')
                        .any(|s| s == SCOPE),
                    "scope",
                ),
                (
                    claims["iat"].as_i64().is_none_or(|iat| iat > now + 5),
                    "iat",
                ),
                (
                    claims["exp"].as_i64().is_none_or(|exp| {
                        exp <= now || exp - claims["iat"].as_i64().unwrap_or(0) > 3600
                    }),
                    "exp",
                ),
            ];
            match problems.iter().find(|(bad, _)| *bad) {
                Some((_, claim)) => Err(format!("claim {claim} in {claims}")),
                None => Ok(()),
            }
        })();
        if let Err(why) = checked {
            self.violation(format!("token request: {why}"));
            return respond(stream, 400, &json!({"error": "invalid_grant"}));
        }
        let token = {
            let mut seen = self.seen.lock().unwrap();
            let token = format!("ya29.issued-{}", seen.tokens_issued.len() + 1);
            seen.tokens_issued.push(token.clone());
            token
        };
        respond(
            stream,
            200,
            &json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}),
        );
    }
}

fn url_decode_form(text: &str) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                if let Ok(b) =
                    u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
                {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// Checks an RS256 JWT's header and signature; its claims.
fn verify_jwt(jwt: &str, key: &rsa::RsaPublicKey) -> Result<Value, String> {
    use rsa::signature::Verifier as _;
    let b64 = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|e| format!("bad base64url: {e}"))
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(format!("{} parts", parts.len()));
    };
    let header: Value = serde_json::from_slice(&b64(header)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("header {header}"));
    }
    let signature = rsa::pkcs1v15::Signature::try_from(b64(signature)?.as_slice())
        .map_err(|e| format!("signature: {e}"))?;
    let signed = &jwt[..jwt.rfind('.').unwrap_or(jwt.len())];
    rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(key.clone())
        .verify(signed.as_bytes(), &signature)
        .map_err(|e| format!("signature does not verify: {e}"))?;
    serde_json::from_slice(&b64(claims)?).map_err(|e| e.to_string())
}

/// A service-account key file for the fake token endpoint, and the public
/// half to verify its JWTs.
fn service_account_key(
    dir: &std::path::Path,
    token_url: &str,
) -> (std::path::PathBuf, rsa::RsaPublicKey, String) {
    use rsa::pkcs8::EncodePrivateKey as _;
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pem = private.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let client_email = format!("profiler@{PROJECT}.iam.gserviceaccount.com");
    let key = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": pem.as_str(),
        "client_email": client_email,
        "client_id": "1234567890",
        "token_uri": token_url,
    });
    let path = dir.join("service-account.json");
    std::fs::write(&path, key.to_string()).unwrap();
    (path, private.to_public_key(), client_email)
}

// ---------------------------------------------------------------------------
// Checks on uploaded profiles.

fn strings(profile: &Profile, index: i64) -> &str {
    &profile.string_table[index as usize]
}

fn sample_types(profile: &Profile) -> Vec<(String, String)> {
    profile
        .sample_type
        .iter()
        .map(|t| {
            (
                strings(profile, t.r#type).to_owned(),
                strings(profile, t.unit).to_owned(),
            )
        })
        .collect()
}

/// The sum of sample value `index` over samples labelled `agent`.
fn total_for_agent(profile: &Profile, agent: &str, index: usize) -> i64 {
    profile
        .sample
        .iter()
        .filter(|s| {
            s.label
                .iter()
                .any(|l| strings(profile, l.key) == "agent" && strings(profile, l.str) == agent)
        })
        .map(|s| s.value[index])
        .sum()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// `go tool pprof -raw` reads the uploaded profile.
fn go_reads(profile: &Profile, name: &str) -> Option<String> {
    let dir = common::TempDir::new(&format!("gcp-{name}"));
    let path = dir.0.join(format!("{name}.pb.gz"));
    std::fs::write(&path, profile.encode_gzip()).unwrap();
    common::go_pprof(&["-raw"], &path)
}

// ---------------------------------------------------------------------------

fn checkout_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("language".to_owned(), "rust".to_owned()),
        ("team".to_owned(), "agents".to_owned()),
        ("version".to_owned(), "1.4.2".to_owned()),
        ("zone".to_owned(), "europe-west1-b".to_owned()),
    ])
}

#[test]
fn the_agent_long_polls_collects_what_is_asked_and_uploads_it_with_service_account_credentials() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_subscriber();
    let dir = common::TempDir::new("gcp-key");
    let (listener, url) = FakeProfiler::bind();
    let (key_path, public_key, client_email) = service_account_key(&dir.0, &format!("{url}/token"));
    let server = FakeProfiler::start(
        (listener, url.clone()),
        vec![
            profile(1000, "CPU", Some("2s")),
            profile(0, "HEAP", None),
            profile(0, "HEAP_ALLOC", Some("1s")),
        ],
        Auth::ServiceAccount {
            public_key,
            client_email,
            expires_in: 3600,
        },
        Expected {
            target: "checkout".to_owned(),
            labels: checkout_labels(),
            types: Some(vec!["CPU".into(), "HEAP".into(), "HEAP_ALLOC".into()]),
        },
    );
    // The project comes from the key file: no gcp_project_id.
    let config = Config::from_toml_str(&format!(
        r#"
[telemetry.profiling]
enabled = true
[telemetry.profiling.cpu]
continuous = true
duration_seconds = 1
[telemetry.profiling.memory]
heap_profiling = true
sample_interval_bytes = 4096
[telemetry.profiling.exporter]
type = "gcp"
gcp_service = "checkout"
gcp_service_version = "1.4.2"
gcp_zone = "europe-west1-b"
gcp_endpoint = "{url}"
gcp_credentials_file = "{}"
shutdown_timeout_ms = 3000
[telemetry.profiling.exporter.tags]
team = "agents"
"#,
        key_path.display()
    ))
    .unwrap();
    let warnings_before = agent_warnings().len();
    let workload = Workload::start();
    let profiler = Profiler::from_config(&config).unwrap().start().unwrap();
    common::wait_until("the first poll", || server.seen(|s| !s.polls.is_empty()));
    let windows_at_first_poll = profiler.stats().windows;
    common::wait_until("three uploads", || server.seen(|s| s.uploads.len() == 3));
    // The collector's sampler, shared: its windows go on alongside.
    common::wait_until("the collector's windows to go on", || {
        profiler.stats().windows >= windows_at_first_poll + 2
    });
    common::wait_until("the fourth poll, held", || {
        server.seen(|s| s.polls.len() == 4)
    });
    let stats = profiler.gcp_stats().unwrap();
    let started = Instant::now();
    let summary = profiler.shutdown().unwrap();
    let took = started.elapsed();
    common::wait_until("the held poll abandoned", || {
        server.seen(|s| s.abandoned == 1)
    });
    let p99 = workload.p99();
    eprintln!("{stats:?}; shutdown {took:?}; planner p99 {p99} µs; {summary:?}");

    server.seen(|seen| {
        assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
        // One token, cached for every request; every request carried it.
        assert_eq!(seen.tokens_issued, ["ya29.issued-1"]);
        assert_eq!(seen.bearer_tokens.len(), 4 + 3, "{:?}", seen.bearer_tokens);
        assert!(seen.bearer_tokens.iter().all(|t| t == "ya29.issued-1"));

        let cpu = &seen.uploads[0];
        assert_eq!(cpu.profile_type, "CPU");
        assert_eq!(
            sample_types(&cpu.profile),
            pairs(&[("samples", "count"), ("cpu", "nanoseconds")])
        );
        // The asked duration, measured from the tap's attach to its finish.
        let duration = Duration::from_nanos(cpu.profile.duration_nanos as u64);
        assert!(
            duration >= Duration::from_millis(1900) && duration < Duration::from_secs(4),
            "{duration:?}"
        );
        let planner_cpu = Duration::from_nanos(total_for_agent(&cpu.profile, "planner", 1) as u64);
        let all_cpu: i64 = cpu.profile.sample.iter().map(|s| s.value[1]).sum();
        assert!(
            planner_cpu >= Duration::from_millis(300)
                && Duration::from_nanos(all_cpu as u64) <= duration * 2 + duration / 2,
            "planner {planner_cpu:?}, all {all_cpu} ns in {duration:?} on at most 2 busy threads"
        );
        assert!(cpu.labels.contains_key("instance"), "{:?}", cpu.labels);

        let heap = &seen.uploads[1];
        assert_eq!(heap.profile_type, "HEAP");
        assert_eq!(
            sample_types(&heap.profile),
            pairs(&[
                ("alloc_objects", "count"),
                ("alloc_space", "bytes"),
                ("inuse_objects", "count"),
                ("inuse_space", "bytes"),
            ])
        );
        // The retriever keeps up to 64 buffers of 64 KiB.
        let retained = total_for_agent(&heap.profile, "retriever", 3);
        assert!(retained >= 1 << 20, "retriever in use: {retained} bytes");

        let alloc = &seen.uploads[2];
        assert_eq!(alloc.profile_type, "HEAP_ALLOC");
        assert_eq!(
            sample_types(&alloc.profile),
            pairs(&[("alloc_objects", "count"), ("alloc_space", "bytes")])
        );
        let stretch = Duration::from_nanos(alloc.profile.duration_nanos as u64);
        assert!(
            stretch >= Duration::from_millis(950) && stretch < Duration::from_secs(3),
            "{stretch:?}"
        );
        // About 64 KiB every ~2 ms over the second: far more than one buffer,
        // far less than everything since the start.
        let allocated = total_for_agent(&alloc.profile, "retriever", 1);
        let since_start = total_for_agent(&heap.profile, "retriever", 1);
        assert!(
            allocated >= 1 << 20 && allocated < since_start,
            "allocated {allocated} in {stretch:?}, {since_start} since start"
        );
        // The reference reader takes each, types and labels as sent.
        for (upload, name) in seen.uploads.iter().zip(["cpu", "heap", "heap-alloc"]) {
            if let Some(raw) = go_reads(&upload.profile, name) {
                let types: Vec<String> = sample_types(&upload.profile)
                    .iter()
                    .map(|(t, u)| format!("{t}/{u}"))
                    .collect();
                assert!(
                    raw.contains(&types.join(" ")),
                    "{name}: {types:?} in\n{raw}"
                );
                assert!(raw.contains("agent:["), "{name}: no agent labels in\n{raw}");
            }
        }
    });
    assert_eq!(
        (
            stats.polls,
            stats.uploaded,
            stats.cpu_profiles,
            stats.heap_profiles
        ),
        (4, 3, 1, 1)
    );
    assert_eq!(stats.heap_alloc_profiles, 1);
    assert_eq!(stats.cpu_profiles_shared, 1, "{stats:?}");
    assert_eq!((stats.failures, stats.warnings), (0, 0), "{stats:?}");
    assert_eq!(
        agent_warnings().len(),
        warnings_before,
        "{:?}",
        agent_warnings()
    );
    // Within the 3 s shutdown timeout, with the poll held by the server.
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
}

#[test]
fn server_delays_are_honoured_and_failures_back_off_with_one_warning_per_streak() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_subscriber();
    let server = FakeProfiler::start(
        FakeProfiler::bind(),
        vec![
            Step::Aborted {
                retry_delay: "1.5s",
            },
            Step::Fail {
                code: 401,
                status: "UNAUTHENTICATED",
            },
            Step::Fail {
                code: 403,
                status: "PERMISSION_DENIED",
            },
            Step::Fail {
                code: 500,
                status: "INTERNAL",
            },
            profile(0, "CPU", Some("1s")),
            Step::Fail {
                code: 500,
                status: "INTERNAL",
            },
            Step::Fail {
                code: 503,
                status: "UNAVAILABLE",
            },
            profile(0, "CPU", Some("0.5s")),
        ],
        Auth::Fixed(FIXED_TOKEN),
        Expected {
            target: "checkout".to_owned(),
            labels: checkout_labels(),
            types: None,
        },
    );
    let mut config = GcpConfig::new("checkout");
    config.project_id = Some(PROJECT.to_owned());
    config.service_version = Some("1.4.2".to_owned());
    config.zone = Some("europe-west1-b".to_owned());
    config.labels = BTreeMap::from([("team".to_owned(), "agents".to_owned())]);
    config.endpoint = server.url.clone();
    config.credentials = GcpCredentials::Token(Secret::new(FIXED_TOKEN));
    config.backoff_initial = Duration::from_millis(200);
    config.backoff_max = Duration::from_millis(400);
    config.shutdown_timeout = Duration::from_secs(3);
    assert!(!format!("{config:?}").contains(FIXED_TOKEN), "{config:?}");

    let warnings_before = agent_warnings().len();
    let workload = Workload::start();
    let agent = GcpAgent::start(config).unwrap();
    common::wait_until("the ninth poll, held", || {
        server.seen(|s| s.polls.len() == 9)
    });
    let stats = agent.stats();
    assert!(agent.shutdown(), "the agent's thread did not end in time");
    let p99 = workload.p99();
    eprintln!("{stats:?}; planner p99 {p99} µs");

    let polls: Vec<Instant> = server.seen(|s| s.polls.iter().map(|p| p.0).collect());
    let gap = |i: usize| polls[i + 1] - polls[i];
    // The server's delay, to the letter.
    assert!(gap(0) >= Duration::from_millis(1500), "{:?}", gap(0));
    // Backoff after 401, 403, 500: each at least half its nominal delay
    // (200, 260, 338 ms), and after the success it starts again at 200 ms.
    for (i, nominal_ms) in [(1, 200), (2, 260), (3, 338), (5, 200), (6, 260)] {
        assert!(
            gap(i) >= Duration::from_millis(nominal_ms / 2),
            "gap {i}: {:?} for a nominal {nominal_ms} ms",
            gap(i)
        );
    }
    // Nine polls for eight answers and the held one: nothing was retried
    // in a loop.
    assert_eq!(stats.polls, 9, "{stats:?}");
    assert_eq!(stats.server_delays, 1);
    assert_eq!(stats.failures, 5);
    assert_eq!((stats.cpu_profiles, stats.uploaded), (2, 2));
    // No collector runs: the agent started a sampler for each profile.
    assert_eq!(stats.cpu_profiles_shared, 0);
    // Two streaks (401-403-500, then 500-503), two warnings.
    assert_eq!(stats.warnings, 2, "{stats:?}");
    let warnings = agent_warnings()[warnings_before..].to_vec();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].contains("401"), "{}", warnings[0]);
    assert!(warnings[1].contains("500"), "{}", warnings[1]);
    server.seen(|seen| {
        assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
        assert!(seen.bearer_tokens.iter().all(|t| t == FIXED_TOKEN));
        let cpu = &seen.uploads[0];
        let duration = Duration::from_nanos(cpu.profile.duration_nanos as u64);
        assert!(
            duration >= Duration::from_millis(950) && duration < Duration::from_secs(3),
            "{duration:?}"
        );
        assert!(total_for_agent(&cpu.profile, "planner", 0) > 0);
    });
    let log = LOG.lock().unwrap();
    assert!(
        log.iter().all(|(_, text)| !text.contains(FIXED_TOKEN)),
        "the token reached the log"
    );
}

#[test]
fn shutdown_abandons_a_pending_long_poll_and_a_hanging_server_costs_the_application_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_subscriber();
    let baseline = {
        let workload = Workload::start();
        std::thread::sleep(Duration::from_secs(2));
        workload.p99()
    };
    let server = FakeProfiler::start(
        FakeProfiler::bind(),
        Vec::new(),
        Auth::Fixed(FIXED_TOKEN),
        Expected {
            target: "checkout".to_owned(),
            labels: BTreeMap::from([("language".to_owned(), "rust".to_owned())]),
            types: None,
        },
    );
    let mut config = GcpConfig::new("checkout");
    config.project_id = Some(PROJECT.to_owned());
    config.endpoint = server.url.clone();
    config.credentials = GcpCredentials::Token(Secret::new(FIXED_TOKEN));
    config.shutdown_timeout = Duration::from_secs(2);
    let workload = Workload::start();
    let agent = GcpAgent::start(config).unwrap();
    common::wait_until("the poll", || server.seen(|s| s.polls.len() == 1));
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let stopped_in_time = agent.shutdown();
    let took = started.elapsed();
    let p99 = workload.p99();
    eprintln!(
        "shutdown {took:?}; planner p99 {p99} µs while the server hung, {baseline} µs before"
    );
    assert!(
        stopped_in_time,
        "not stopped within the 2 s shutdown timeout"
    );
    common::wait_until("the held poll abandoned", || {
        server.seen(|s| s.abandoned == 1)
    });
    server.seen(|s| {
        assert!(s.violations.is_empty(), "{:#?}", s.violations);
        assert_eq!(s.polls.len(), 1);
    });
}

#[test]
fn bad_credentials_and_names_fail_the_start_naming_what_to_fix() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = common::TempDir::new("gcp-bad-key");
    let mut config = GcpConfig::new("checkout");
    config.credentials = GcpCredentials::ServiceAccountKey(dir.0.join("missing.json"));
    let e = GcpAgent::start(config.clone()).unwrap_err().to_string();
    assert!(
        e.contains("gcp_credentials_file") && e.contains("missing.json"),
        "{e}"
    );

    // A broken key file: the error does not quote it.
    let broken = dir.0.join("broken.json");
    std::fs::write(
        &broken,
        r#"{"private_key": "-----BEGIN PRIVATE KEY-----
secret-material
", "client_email": 7}"#,
    )
    .unwrap();
    config.credentials = GcpCredentials::ServiceAccountKey(broken);
    let e = GcpAgent::start(config.clone()).unwrap_err().to_string();
    assert!(e.contains("gcp_credentials_file"), "{e}");
    assert!(!e.contains("secret-material"), "{e}");

    // A fixed token names no project.
    config.credentials = GcpCredentials::Token(Secret::new(FIXED_TOKEN));
    let e = GcpAgent::start(config.clone()).unwrap_err().to_string();
    assert!(e.contains("gcp_project_id"), "{e}");
    assert!(!e.contains(FIXED_TOKEN), "{e}");

    config.project_id = Some(PROJECT.to_owned());
    config.service = "Checkout Service".to_owned();
    let e = GcpAgent::start(config.clone()).unwrap_err().to_string();
    assert!(
        e.contains("gcp_service") && e.contains("Checkout Service"),
        "{e}"
    );

    config.service = "checkout".to_owned();
    config.endpoint = "cloudprofiler.googleapis.com".to_owned();
    let e = GcpAgent::start(config).unwrap_err().to_string();
    assert!(e.contains("gcp_endpoint"), "{e}");

    // Through the configuration file, too.
    let e = Config::from_toml_str(
        "[telemetry.profiling.exporter]\ntype = \"gcp\"\ngcp_service = \"Bad Name\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("telemetry.profiling.exporter.gcp_service"),
        "{e}"
    );
}

#[test]
fn the_example_configurations_gcp_block_is_valid_as_written() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.toml"))
            .unwrap();
    let block: Vec<&str> = example
        .lines()
        .skip_while(|l| *l != "# type = \"gcp\"")
        .take_while(|l| l.starts_with("# "))
        .map(|l| &l[2..])
        .collect();
    assert!(block.len() >= 6, "{block:?}");
    let config = Config::from_toml_str(&format!(
        "[telemetry.profiling]\nenabled = true\n[telemetry.profiling.exporter]\n{}\n",
        block.join("\n")
    ))
    .unwrap();
    let e = &config.telemetry.profiling.exporter;
    assert_eq!(e.type_, agentprof::config::ExporterType::Gcp);
    assert_eq!(e.gcp_project_id.as_deref(), Some("my-project"));
    assert_eq!(e.gcp_service.as_deref(), Some("agents"));
    assert_eq!(e.tags.get("team").map(String::as_str), Some("agents"));
    // The key file it names does not exist here: the start says which key.
    let e = Profiler::from_config(&config)
        .unwrap()
        .start()
        .err()
        .expect("a missing key file fails the start")
        .to_string();
    assert!(
        e.contains("gcp_credentials_file") && e.contains("/secrets/profiler-key.json"),
        "{e}"
    );
}

#[profiled(agent = "leaker")]
fn leak_a_little(kept: &mut Vec<Vec<u8>>) {
    for _ in 0..64 {
        kept.push(vec![1u8; 16 * 1024]);
    }
}

#[test]
fn heap_profiles_for_the_server_leave_the_reports_growth_alone() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_subscriber();
    agentprof::set_enabled(true);
    let heap = agentprof::heap::HeapProfiler::start(agentprof::heap::HeapProfilerConfig {
        sample_interval: 4096,
        ..Default::default()
    })
    .unwrap();
    // The report's growth: between the last two snapshots of the heap
    // profiler's own (the collector takes one per window).
    heap.snapshot();
    let mut kept = Vec::new();
    leak_a_little(&mut kept);
    heap.snapshot();
    let grown = |growth: &[agentprof::heap::HeapGrowth]| {
        growth
            .iter()
            .find(|g| g.agent.as_deref() == Some("leaker"))
            .map(|g| g.growth_bytes)
    };
    let before = grown(&agentprof::report().heap_growth).expect("the leak grew");

    let server = FakeProfiler::start(
        FakeProfiler::bind(),
        vec![
            profile(0, "HEAP", None),
            profile(0, "HEAP_ALLOC", Some("0.2s")),
        ],
        Auth::Fixed(FIXED_TOKEN),
        Expected {
            target: "checkout".to_owned(),
            labels: BTreeMap::from([("language".to_owned(), "rust".to_owned())]),
            types: Some(vec!["CPU".into(), "HEAP".into(), "HEAP_ALLOC".into()]),
        },
    );
    let mut config = GcpConfig::new("checkout");
    config.project_id = Some(PROJECT.to_owned());
    config.endpoint = server.url.clone();
    config.credentials = GcpCredentials::Token(Secret::new(FIXED_TOKEN));
    let agent = GcpAgent::start(config).unwrap();
    common::wait_until("two uploads", || server.seen(|s| s.uploads.len() == 2));
    assert!(agent.shutdown());
    server.seen(|s| assert!(s.violations.is_empty(), "{:#?}", s.violations));
    // Three snapshots taken for the server, none of them counted.
    assert_eq!(grown(&agentprof::report().heap_growth), Some(before));
    heap.stop();
    drop(kept);
}
