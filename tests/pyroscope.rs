//! The Pyroscope exporter against a loopback HTTP server that speaks the
//! push API: what it sends, and how it behaves when the server refuses,
//! fails, hangs or rejects.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentprof::export::pyroscope::PushRequest;
use agentprof::export::{PyroscopeAuth, PyroscopeConfig, PyroscopeExporter};
use agentprof::{profiled, Profiler};

static SERIAL: Mutex<()> = Mutex::new(());

/// Counts the collector's export warnings, process-wide (they are logged
/// on the export thread).
static WARNINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct CountWarnings;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountWarnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN
            && event.metadata().target().starts_with("agentprof")
        {
            WARNINGS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The global subscriber: counts warnings and, with the `opentelemetry`
/// feature, gives invocation spans OpenTelemetry ids.
fn install_subscriber() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let registry = tracing_subscriber::registry().with(CountWarnings);
        #[cfg(feature = "opentelemetry")]
        let registry = {
            use opentelemetry::trace::TracerProvider as _;
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
            registry
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("pyroscope-test")))
        };
        tracing::subscriber::set_global_default(registry).unwrap();
    });
}

#[derive(Clone, Copy)]
enum Behaviour {
    Accept,
    Status(u16),
    Hang,
}

type Captured = common::HttpRequest;

struct Server {
    url: String,
    requests: Arc<Mutex<Vec<Captured>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (captured, stopping) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        if let Some(request) = common::read_http_request(&stream) {
                            captured.lock().unwrap().push(request);
                        }
                        match behaviour {
                            Behaviour::Accept => respond(stream, 200),
                            Behaviour::Status(code) => respond(stream, code),
                            Behaviour::Hang => held.push(stream),
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            url,
            requests,
            stop,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn respond(mut stream: TcpStream, status: u16) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[profiled(agent = "pushed")]
fn pushed_work() -> u64 {
    common::burn_cpu_ns(2_000_000)
}

/// Runs the workload until `windows` windows were cut; returns the p99
/// latency of the instrumented calls, in µs.
fn work_until(profiler: &agentprof::RunningProfiler, windows: u64) -> u64 {
    let mut latencies = Vec::new();
    let give_up = Instant::now() + Duration::from_secs(60);
    while profiler.stats().windows < windows && Instant::now() < give_up {
        let start = Instant::now();
        pushed_work();
        latencies.push(start.elapsed().as_micros() as u64);
    }
    latencies.sort_unstable();
    latencies
        .get(latencies.len() * 99 / 100)
        .copied()
        .unwrap_or(0)
}

fn config(url: &str) -> PyroscopeConfig {
    let mut config = PyroscopeConfig::new(url, "agentprof-test");
    config.tags = vec![("env".to_owned(), "ci".to_owned())];
    config.timeout = Duration::from_millis(300);
    config.max_retries = 2;
    config.backoff = Duration::from_millis(20);
    config
}

#[test]
fn pushes_follow_the_push_api_with_labels_and_auth() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_subscriber();
    let server = Server::start(Behaviour::Accept);
    let mut config = config(&server.url);
    config.auth = PyroscopeAuth::Basic {
        user: "agent".to_owned(),
        password: "s3cret".into(),
    };
    config.tenant_id = Some("team-a".to_owned());
    config.headers = vec![("X-Extra".to_owned(), "yes".into())];
    let profiler = Profiler::builder()
        .window(Duration::from_millis(300))
        .exporter(PyroscopeExporter::new(config).unwrap())
        .build()
        .unwrap()
        .start()
        .unwrap();
    work_until(&profiler, 2);
    let summary = profiler.shutdown().unwrap();
    assert_eq!(summary.stats.errors, 0, "{summary:?}");

    let requests = server.requests.lock().unwrap();
    assert!(!requests.is_empty());
    let request = &requests[0];
    assert_eq!(request.path, "/push.v1.PusherService/Push");
    assert_eq!(request.headers["content-type"], "application/proto");
    assert_eq!(request.headers["content-encoding"], "gzip");
    assert_eq!(request.headers["authorization"], "Basic YWdlbnQ6czNjcmV0");
    assert_eq!(request.headers["x-scope-orgid"], "team-a");
    assert_eq!(request.headers["x-extra"], "yes");

    let push: PushRequest = prost::Message::decode(gunzip(&request.body).as_slice()).unwrap();
    let series = &push.series[0];
    let labels: BTreeMap<_, _> = series
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(labels["__name__"], "process_cpu");
    assert_eq!(labels["service_name"], "agentprof-test");
    assert_eq!(labels["env"], "ci");
    let raw = &series.samples[0].raw_profile;
    let profile = agentprof::pprof::Profile::decode(raw).unwrap();
    let total: i64 = profile.sample.iter().map(|s| s.value[1]).sum();
    assert!(total > 10_000_000, "cpu/nanoseconds total {total}");
    let sample = profile
        .sample
        .iter()
        .find(|s| profile.label(s, "agent") == Some("pushed"))
        .unwrap();
    // Only bounded labels reach the backend, which keeps a series per
    // label set: no invocation or trace id, and the thread's name, not its
    // number. `span_id` (Pyroscope keeps it out of its series) only when
    // there is a real span id.
    for s in &profile.sample {
        for unbounded in ["invocation_id", "trace_id", "thread_id"] {
            assert_eq!(profile.label(s, unbounded), None, "{unbounded}");
        }
        if let Some(thread) = profile.label(s, "thread") {
            assert!(thread.parse::<u64>().is_err(), "thread {thread}");
        }
        if let Some(span) = profile.label(s, "span_id") {
            assert_eq!(span.len(), 16, "an OpenTelemetry span id: {span}");
        }
    }
    assert!(profile.label(sample, "function").is_some());
    let dir = common::TempDir::new("pushed");
    let file = dir.0.join("pushed.pb.gz");
    std::fs::write(&file, raw).unwrap();
    if let Some(raw) = common::go_pprof(&["-raw"], &file) {
        assert!(
            raw.contains("pushed") && !raw.contains("invocation_id"),
            "{raw}"
        );
    }
}

#[test]
fn faults_are_counted_retried_as_they_should_and_never_block_the_application() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_subscriber();
    let baseline = {
        let profiler = Profiler::builder()
            .window(Duration::from_millis(200))
            .build()
            .unwrap()
            .start()
            .unwrap();
        let p99 = work_until(&profiler, 3);
        profiler.shutdown().unwrap();
        p99
    };
    let refused_url = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let cases: Vec<(&str, Option<Server>, u64)> = vec![
        ("refused", None, 0),
        ("500", Some(Server::start(Behaviour::Status(500))), 3),
        ("hang", Some(Server::start(Behaviour::Hang)), 3),
        ("400", Some(Server::start(Behaviour::Status(400))), 1),
    ];
    for (name, server, attempts_per_push) in cases {
        let url = server
            .as_ref()
            .map_or(refused_url.clone(), |s| s.url.clone());
        let profiler = Profiler::builder()
            .window(Duration::from_millis(200))
            .queue_size(2)
            .shutdown_timeout(Duration::from_secs(3))
            .exporter(PyroscopeExporter::new(config(&url)).unwrap())
            .build()
            .unwrap()
            .start()
            .unwrap();
        let warnings_before = WARNINGS.load(Ordering::SeqCst);
        let p99 = work_until(&profiler, 4);
        let started = Instant::now();
        let summary = profiler.shutdown().unwrap();
        let took = started.elapsed();
        eprintln!(
            "{name}: p99 {p99} µs (no export: {baseline} µs), shutdown {took:?}, {summary:?}"
        );
        assert!(summary.stats.errors >= 1, "{name}: {summary:?}");
        let warnings = WARNINGS.load(Ordering::SeqCst) - warnings_before;
        assert!(
            warnings >= 1 && warnings <= summary.stats.windows,
            "{name}: {warnings} warnings for {} windows",
            summary.stats.windows
        );
        assert_eq!(summary.stats.exported, 0, "{name}");
        assert!(
            took < Duration::from_secs(20),
            "{name}: shutdown did not return ({took:?})"
        );
        if let Some(server) = &server {
            let pushes = server.requests.lock().unwrap().len() as u64;
            // Every failed push made exactly its attempts: retried on 5xx and
            // timeouts, never on 4xx.
            assert!(
                pushes > 0 && pushes % attempts_per_push == 0,
                "{name}: {pushes} requests"
            );
            if name == "400" {
                assert_eq!(pushes, summary.stats.errors, "{name}: one attempt per push");
            }
        }
    }
}
