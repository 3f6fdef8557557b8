//! The live endpoint of a running, instrumented program: `go tool pprof`
//! reads its CPU and heap profiles over HTTP, Chromium renders its HTML
//! report, and its bounds hold (token, loopback, seconds cap, one profile
//! at a time, stalled clients).
//!
//! One profiler with the endpoint runs for the whole test process, with
//! agents working on background threads; tests that take a CPU profile
//! from it take turns, as one profile runs at a time.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use agentprof::pprof::Profile;
use agentprof::{config::HttpConfig, config::Secret, live::HttpServer, profiled};

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

#[profiled(agent = "planner")]
fn plan_route(steps: u64) -> u64 {
    common::burn_cpu_ns(2_000_000) + steps
}

#[profiled(agent = "retriever")]
fn fetch_documents(count: usize) -> usize {
    let pages: Vec<Vec<u8>> = (0..count).map(|i| vec![i as u8; 4096]).collect();
    common::burn_cpu_ns(1_000_000) as usize + pages.iter().map(Vec::len).sum::<usize>()
}

/// A cache the retriever fills and never empties: heap in use that a heap
/// profile must show.
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[profiled(agent = "retriever")]
fn remember(bytes: usize) {
    let mut kept = KEPT.lock().unwrap();
    if kept.len() < 2000 {
        kept.push(vec![7u8; bytes]);
    }
}

#[inline(never)]
fn score_steps_hot_loop() -> u64 {
    std::hint::black_box(common::burn_cpu_ns(20_000_000))
}

/// Now and then a planner call that is slower than the rest: the one whose
/// page, tree and profile the endpoint serves.
#[profiled(agent = "planner")]
fn review_plan() -> u64 {
    plan_route(1) + score_steps()
}

#[profiled(agent = "planner")]
fn score_steps() -> u64 {
    score_steps_hot_loop()
}

const TOKEN: &str = "test-token-0123456789abcdef";

struct Service {
    address: SocketAddr,
    profiler: Mutex<agentprof::RunningProfiler>,
}

/// The program under test: profiling with 1-second windows, the heap
/// profiler, the endpoint on a free loopback port, and agents at work.
fn service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let profiler = agentprof::Profiler::builder()
            .window(Duration::from_secs(1))
            .cpu_frequency(250)
            .heap_sample_interval(4096)
            .http("127.0.0.1:0")
            .build()
            .expect("a valid profiler")
            .start()
            .expect("the profiler starts");
        let address = profiler.http_addr().expect("the endpoint runs");
        for worker in 0..2 {
            std::thread::spawn(move || {
                for round in 0u64.. {
                    plan_route(worker);
                    fetch_documents(8);
                    remember(1024);
                    if round % 25 == 0 {
                        review_plan();
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
        common::wait_until("a collector window", || {
            agentprof::report()
                .agents
                .iter()
                .any(|a| a.agent.as_deref() == Some("planner"))
        });
        Service {
            address,
            profiler: Mutex::new(profiler),
        }
    })
}

/// CPU profiles from the shared endpoint, one at a time.
fn profile_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The head of a GET with `headers` that closes its connection.
fn request(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// One HTTP/1.1 GET with `headers`, the connection closed after it.
fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(address).expect("connect to the endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    stream
        .write_all(request(address, path, headers).as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the reply");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a reply head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked")
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = chunked.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(
            std::str::from_utf8(&chunked[..line_end]).unwrap().trim(),
            16,
        )
        .unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunked[line_end + 2..line_end + 2 + size]);
        chunked = &chunked[line_end + 4 + size..];
    }
}

fn decode(gzipped: &[u8]) -> Profile {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gzipped)
        .read_to_end(&mut raw)
        .expect("gzip");
    Profile::decode(raw.as_slice()).expect("a pprof profile")
}

fn sample_types(profile: &Profile) -> Vec<String> {
    profile
        .sample_type
        .iter()
        .map(|t| {
            format!(
                "{}/{}",
                profile.string_table[t.r#type as usize], profile.string_table[t.unit as usize]
            )
        })
        .collect()
}

fn label_values(profile: &Profile, key: &str) -> std::collections::BTreeSet<String> {
    let key = profile
        .string_table
        .iter()
        .position(|s| s == key)
        .map(|i| i as i64);
    profile
        .sample
        .iter()
        .flat_map(|s| &s.label)
        .filter(|l| Some(l.key) == key)
        .map(|l| profile.string_table[l.str as usize].clone())
        .collect()
}

#[test]
fn go_tool_pprof_reads_the_cpu_profile_over_http_while_the_collector_samples() {
    let service = service();
    let windows_before = service.profiler.lock().unwrap().stats().windows;
    let _turn = profile_turn();
    let url = format!("http://{}/debug/pprof/profile?seconds=2", service.address);
    if let Some(tags) = common::go_pprof(&["-tags"], &url) {
        for expected in [
            "agent:",
            "planner",
            "retriever",
            "function:",
            "plan_route",
            "invocation_id:",
            "thread:",
        ] {
            assert!(tags.contains(expected), "-tags lacks {expected}:\n{tags}");
        }
    }
    if let Some(raw) = common::go_pprof(&["-raw"], &url) {
        assert!(raw.contains("samples/count cpu/nanoseconds"), "{raw}");
        assert!(raw.contains("plan_route"), "{raw}");
    }
    // The same profile read directly: labels, and CPU that adds up to what
    // two busy workers spend in two seconds.
    let reply = get(service.address, "/debug/pprof/profile?seconds=2", &[]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-agentprof-shared-sampler"), Some("true"));
    assert_eq!(reply.header("x-agentprof-seconds"), Some("2"));
    let profile = decode(&reply.body);
    assert_eq!(sample_types(&profile), ["samples/count", "cpu/nanoseconds"]);
    let agents = label_values(&profile, "agent");
    assert!(
        agents.contains("planner") && agents.contains("retriever"),
        "{agents:?}"
    );
    for key in ["function", "invocation_id", "thread"] {
        assert!(!label_values(&profile, key).is_empty(), "no {key} labels");
    }
    // However busy the machine, two threads cannot spend more than 2 s
    // each in 2 s (the rest of this process is not labelled `planner` or
    // `retriever`).
    let cpu_ns: i64 = profile
        .sample
        .iter()
        .filter(|s| {
            s.label.iter().any(|l| {
                profile.string_table[l.key as usize] == "agent"
                    && ["planner", "retriever"]
                        .contains(&profile.string_table[l.str as usize].as_str())
            })
        })
        .map(|s| s.value[1])
        .sum();
    assert!(
        (1..=4_500_000_000).contains(&cpu_ns),
        "two busy threads over 2 s sampled {cpu_ns} ns"
    );
    // The collector goes on cutting windows from the same sampler.
    common::wait_until("the collector's windows to go on", || {
        service.profiler.lock().unwrap().stats().windows >= windows_before + 2
    });
}

#[test]
fn go_tool_pprof_reads_the_heap_profile_over_http() {
    let service = service();
    common::wait_until("heap kept by the retriever", || {
        KEPT.lock().unwrap().len() >= 200
    });
    let url = format!("http://{}/debug/pprof/heap", service.address);
    if let Some(raw) = common::go_pprof(&["-raw"], &url) {
        assert!(
            raw.contains(
                "alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes"
            ),
            "{raw}"
        );
    }
    if let Some(tags) = common::go_pprof(&["-tags"], &url) {
        assert!(tags.contains("retriever"), "{tags}");
    }
    // Go's parameters that mean nothing here are ignored.
    let reply = get(service.address, "/debug/pprof/heap?gc=1&debug=0", &[]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let profile = decode(&reply.body);
    assert_eq!(
        sample_types(&profile),
        [
            "alloc_objects/count",
            "alloc_space/bytes",
            "inuse_objects/count",
            "inuse_space/bytes"
        ]
    );
    // `remember` keeps ~1 KiB per call: the retriever holds heap in use.
    let agent = profile
        .string_table
        .iter()
        .position(|s| s == "agent")
        .unwrap() as i64;
    let retriever = profile
        .string_table
        .iter()
        .position(|s| s == "retriever")
        .unwrap() as i64;
    let inuse: i64 = profile
        .sample
        .iter()
        .filter(|s| s.label.iter().any(|l| l.key == agent && l.str == retriever))
        .map(|s| s.value[3])
        .sum();
    assert!(inuse >= 100 << 10, "retriever's heap in use: {inuse} bytes");
}

#[test]
fn the_index_reports_and_filtered_flamegraphs() {
    let service = service();
    let index = get(service.address, "/debug/pprof/", &[]);
    assert_eq!(index.status, 200);
    for path in [
        "/debug/pprof/profile",
        "/debug/pprof/heap",
        "/debug/agentprof/",
        "/debug/agentprof/report",
        "/debug/agentprof/flamegraph.svg",
    ] {
        assert!(index.text().contains(path), "the index lists {path}");
    }

    let json = get(service.address, "/debug/agentprof/report", &[]);
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let report: serde_json::Value = serde_json::from_slice(&json.body).expect("JSON");
    assert_eq!(report["schema_version"], agentprof::report::SCHEMA_VERSION);
    let planner = report["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "planner")
        .expect("the planner's row");
    assert!(planner["calls"].as_u64().unwrap() > 0);

    let table = get(service.address, "/debug/agentprof/report.txt", &[]);
    assert_eq!(table.status, 200);
    assert!(table.text().contains("planner") && table.text().contains("retriever"));

    let _turn = profile_turn();
    let svg = get(
        service.address,
        "/debug/agentprof/flamegraph.svg?seconds=1&agent=planner",
        &[],
    );
    assert_eq!(svg.status, 200, "{}", svg.text());
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    let svg = svg.text();
    assert!(svg.starts_with("<?xml") && svg.contains("plan_route"));
    assert!(
        !svg.contains("fetch_documents"),
        "the planner's flamegraph shows only the planner"
    );
    let function = get(
        service.address,
        "/debug/agentprof/flamegraph.svg?seconds=1&function=http%3A%3Afetch_documents",
        &[],
    );
    assert_eq!(function.status, 200, "{}", function.text());
    assert!(function.text().contains("fetch_documents") && !function.text().contains("plan_route"));
    let nobody = get(
        service.address,
        "/debug/agentprof/flamegraph.svg?seconds=1&agent=nobody",
        &[],
    );
    assert_eq!(nobody.status, 404);
    assert!(
        nobody.text().contains("agent=\"nobody\""),
        "{}",
        nobody.text()
    );

    for (path, status) in [
        ("/debug/pprof/profile?seconds=abc", 400),
        ("/debug/pprof/profile?seconds=1&hz=0", 400),
        ("/debug/nothing", 404),
    ] {
        let reply = get(service.address, path, &[]);
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
    }
}

#[test]
fn chromium_renders_the_live_report() {
    let service = service();
    common::wait_until("two collector windows", || {
        service.profiler.lock().unwrap().stats().windows >= 2
    });
    let Some(browser) = common::chromium() else {
        return;
    };
    let dir = common::TempDir::new("http-chromium");
    let url = format!("http://{}/debug/agentprof/", service.address);
    let (dom, log) = common::run_chromium(&browser, &dir.0.join("profile"), &url, &["--dump-dom"]);
    for agent in ["planner", "retriever"] {
        assert!(
            dom.contains(&format!("<td class=\"text\">{agent}</td>")),
            "the agents table lists {agent}"
        );
    }
    assert!(
        dom.contains("<select id=\"flame-agent\">"),
        "the agent selector"
    );
    assert!(
        dom.contains("class=\"flame\" data-agent=\"planner\""),
        "the planner's flamegraph"
    );
    assert!(dom.contains("id=\"memory-timeline\""), "the memory chart");
    assert!(
        dom.contains("id=\"agent-cpu\"") && dom.contains("class=\"agent\" data-agent=\"planner\""),
        "CPU per agent over the windows"
    );
    assert!(dom.contains("<dt>host</dt>") && dom.contains("<dt>process start</dt>"));
    for error in [
        "Uncaught",
        "SyntaxError",
        "ERR_NAME_NOT_RESOLVED",
        "Failed to load",
    ] {
        assert!(!log.contains(error), "{error} in the browser's log:\n{log}");
    }
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("agentprof-live-report.png");
    let _ = std::fs::remove_file(&shot);
    common::run_chromium(
        &browser,
        &dir.0.join("profile"),
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
}

/// A `review_plan` call kept with CPU samples of its own: its id.
fn kept_review() -> u64 {
    let mut found = 0;
    common::wait_until("a kept review_plan call with CPU samples", || {
        let report = agentprof::report();
        let Some(row) = report.functions_named("::review_plan").next() else {
            return false;
        };
        found = row
            .exemplars
            .iter()
            .map(|e| e.id)
            .find(|id| agentprof::invocation_detail(*id).is_ok_and(|d| d.profile_samples > 0))
            .unwrap_or(0);
        found != 0
    });
    found
}

#[test]
fn a_slow_call_has_its_page_json_and_pprof_and_bad_ids_get_404_or_400() {
    let service = service();
    // Windows of 1 s keep exemplars for about 3 s: an id may go while it is
    // fetched (a 404 saying so), and the next one is tried.
    let mut served = false;
    for _ in 0..20 {
        let id = kept_review();
        let json = get(
            service.address,
            &format!("/debug/agentprof/invocations/{id}?format=json"),
            &[],
        );
        if json.status == 404 {
            assert!(json.text().contains("evicted"), "{}", json.text());
            continue;
        }
        assert_eq!(json.status, 200, "{}", json.text());
        let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(value["invocation"]["id"], id);
        let callees: Vec<String> = value["tree"]["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["function"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            callees.iter().any(|f| f.ends_with("::plan_route"))
                && callees.iter().any(|f| f.ends_with("::score_steps")),
            "{callees:?}"
        );
        assert!(value["profile_samples"].as_u64().unwrap() > 0);

        let pprof = get(
            service.address,
            &format!("/debug/agentprof/invocations/{id}/pprof"),
            &[],
        );
        if pprof.status == 404 {
            continue;
        }
        assert_eq!(pprof.status, 200, "{}", pprof.text());
        let profile = decode(&pprof.body);
        assert_eq!(sample_types(&profile), ["samples/count", "cpu/nanoseconds"]);
        // Only its own work: the other functions the workers run meanwhile
        // on the same threads are not in it.
        let names: Vec<&str> = profile
            .function
            .iter()
            .map(|f| profile.string_table[f.name as usize].as_str())
            .collect();
        assert!(names.iter().any(|n| n.contains("score_steps_hot_loop")));
        assert!(
            !names.iter().any(|n| n.contains("fetch_documents")),
            "{names:?}"
        );
        let file = common::TempDir::new("invocation-pprof");
        let path = file.0.join("invocation.pb.gz");
        std::fs::write(&path, &pprof.body).unwrap();
        if let Some(top) = common::go_pprof(&["-top"], &path) {
            assert!(top.contains("score_steps_hot_loop"), "{top}");
        }

        let page = get(
            service.address,
            &format!("/debug/agentprof/invocations/{id}"),
            &[],
        );
        if page.status == 404 {
            continue;
        }
        assert_eq!(page.status, 200);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let Some(browser) = common::chromium() else {
            served = true;
            break;
        };
        let dir = common::TempDir::new("invocation-chromium");
        let url = format!(
            "http://{}/debug/agentprof/invocations/{id}",
            service.address
        );
        let (dom, log) =
            common::run_chromium(&browser, &dir.0.join("profile"), &url, &["--dump-dom"]);
        if dom.contains("404: invocation") {
            continue;
        }
        assert!(dom.contains("<table class=\"tree\">"), "{dom}");
        assert!(dom.matches("<tr class=\"node\"").count() >= 3, "{dom}");
        assert!(dom.contains("score_steps"));
        assert!(dom.contains("<svg"), "its flamegraph");
        assert!(!log.contains("Uncaught"), "{log}");
        served = true;
        break;
    }
    assert!(
        served,
        "every kept call was evicted before it could be fetched"
    );

    // The live page links function rows to their slowest calls.
    let live = get(service.address, "/debug/agentprof/?seconds=1", &[]);
    assert!(
        live.text().contains("href=\"/debug/agentprof/invocations/"),
        "no links to invocation pages"
    );
    // Bad ids: 400 naming the text, 404 saying what became of the id.
    let bad = get(service.address, "/debug/agentprof/invocations/abc", &[]);
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("\"abc\""), "{}", bad.text());
    let unknown = get(
        service.address,
        &format!("/debug/agentprof/invocations/{}", u64::MAX),
        &[],
    );
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.text().contains("is not known"),
        "{}",
        unknown.text()
    );
    let format = get(
        service.address,
        "/debug/agentprof/invocations/1?format=xml",
        &[],
    );
    assert_eq!(format.status, 400);
    assert!(format.text().contains("xml"));
}

fn loopback_with(token: Option<&str>, max_seconds: u64) -> HttpServer {
    HttpServer::start(
        &HttpConfig {
            listen: Some("127.0.0.1:0".to_owned()),
            token: token.map(Secret::new),
            max_seconds,
        },
        100,
    )
    .expect("the endpoint starts")
}

#[test]
fn beyond_loopback_the_endpoint_needs_a_token() {
    let e = HttpServer::start(
        &HttpConfig {
            listen: Some("0.0.0.0:0".to_owned()),
            ..HttpConfig::default()
        },
        100,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("telemetry.profiling.http.token"), "{e}");
    assert!(e.contains("0.0.0.0"), "{e}");

    // The same through configuration and the environment.
    let mut config = agentprof::Config::default();
    config.telemetry.profiling.enabled = true;
    config
        .apply_env(|v| match v {
            "AGENTPROF_HTTP_LISTEN" => Some("0.0.0.0:0".to_owned()),
            _ => None,
        })
        .unwrap();
    let e = agentprof::Profiler::from_config(&config)
        .and_then(|p| p.start())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("telemetry.profiling.http.token"), "{e}");
    let short = HttpServer::start(
        &HttpConfig {
            listen: Some("127.0.0.1:0".to_owned()),
            token: Some(Secret::new("short")),
            ..HttpConfig::default()
        },
        100,
    )
    .unwrap_err()
    .to_string();
    assert!(
        short.contains("telemetry.profiling.http.token") && !short.contains("short\""),
        "{short}"
    );
}

#[test]
fn with_a_token_only_requests_that_carry_it_are_answered() {
    service();
    let server = loopback_with(Some(TOKEN), 60);
    let address = server.local_addr();
    let none = get(address, "/debug/agentprof/report.txt", &[]);
    assert_eq!(none.status, 401);
    assert!(none.header("www-authenticate").is_some());
    assert!(!none.text().contains("planner"), "a 401 says nothing more");
    let wrong = get(
        address,
        "/debug/agentprof/report.txt",
        &[("Authorization", "Bearer test-token-0123456789abcdeX")],
    );
    assert_eq!(wrong.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let right = get(
        address,
        "/debug/agentprof/report.txt",
        &[("Authorization", &bearer)],
    );
    assert_eq!(right.status, 200);
    assert!(right.text().contains("planner"));
    // `go tool pprof http://user:TOKEN@host/...` sends basic auth.
    let url = format!("http://pprof:{TOKEN}@{address}/debug/pprof/heap");
    if let Some(raw) = common::go_pprof(&["-raw"], &url) {
        assert!(raw.contains("inuse_space/bytes"), "{raw}");
    }
    let stats = server.shutdown();
    assert_eq!(stats.unauthorized, 2);
}

#[test]
fn seconds_are_capped_and_one_profile_runs_at_a_time() {
    service();
    let server = loopback_with(None, 2);
    let address = server.local_addr();
    let first =
        std::thread::spawn(move || get(address, "/debug/pprof/profile?seconds=100000", &[]));
    common::wait_until("the first profile to start", || {
        server.stats().profile_in_progress
    });
    let second = get(address, "/debug/pprof/profile?seconds=1", &[]);
    assert_eq!(second.status, 409, "{}", second.text());
    assert!(second.text().contains("already"), "{}", second.text());
    let first = first.join().unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-agentprof-seconds"), Some("2"));
    assert_eq!(first.header("x-agentprof-seconds-capped"), Some("true"));
    let profile = decode(&first.body);
    assert!(
        (2_000_000_000..10_000_000_000).contains(&profile.duration_nanos),
        "a capped profile of {} ns",
        profile.duration_nanos
    );
    assert!(!label_values(&profile, "agent").is_empty());
    let stats = server.shutdown();
    assert_eq!(stats.profiles_refused, 1);
    assert!(!stats.profile_in_progress);
}

#[test]
fn a_stalled_client_blocks_neither_other_requests_nor_the_collector() {
    let service = service();
    let server = loopback_with(None, 60);
    let address = server.local_addr();
    let calls = || {
        agentprof::report()
            .agents
            .iter()
            .find(|a| a.agent.as_deref() == Some("planner"))
            .map_or(0, |a| a.calls)
    };
    let (windows_before, calls_before) =
        (service.profiler.lock().unwrap().stats().windows, calls());
    // A client that sends its request head one byte a second.
    let slow = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let head = b"GET /debug/agentprof/report.txt HTTP/1.1\r\nHost: slow\r\n\r\n";
        let mut sent = 0;
        for byte in head {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_secs(1));
        }
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        (sent, rest)
    });
    // Meanwhile the endpoint answers others, the collector cuts windows and
    // the application runs.
    for _ in 0..5 {
        let reply = get(address, "/debug/agentprof/report.txt", &[]);
        assert_eq!(reply.status, 200);
        std::thread::sleep(Duration::from_millis(500));
    }
    common::wait_until("the collector's windows to go on", || {
        service.profiler.lock().unwrap().stats().windows >= windows_before + 3
    });
    common::wait_until("the application to go on", || calls() > calls_before);
    let (sent, rest) = slow.join().unwrap();
    assert!(
        sent < 57,
        "the stalled client was cut off before its head was complete ({sent} bytes)"
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("planner"),
        "the stalled client got no report"
    );
    let stats = server.shutdown();
    assert!(stats.connections_timed_out >= 1, "{stats:?}");
    assert!(stats.requests >= 5);
}

/// The status of one GET, or `None` when the connection was closed
/// without a reply.
fn try_get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Option<u16> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    stream
        .write_all(request(address, path, headers).as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let line = String::from_utf8_lossy(&raw);
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_slowloris_without_the_token_does_not_shut_out_authenticated_requests() {
    service();
    let server = loopback_with(Some(TOKEN), 60);
    let address = server.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    // 40 connections that trickle header bytes, reopened when closed: more
    // than every budget of the endpoint.
    let trickling: Vec<_> = (0..40)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let head = b"GET /debug/agentprof/report.txt HTTP/1.1\r\nHost: x\r\nX-Pad: ";
                let mut reopened = 0u32;
                while !stop.load(SeqCst) {
                    let Ok(mut stream) = TcpStream::connect(address) else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    let mut at = 0;
                    while !stop.load(SeqCst) {
                        let byte = head.get(at).copied().unwrap_or(b'a');
                        if stream.write_all(&[byte]).is_err() {
                            break;
                        }
                        at += 1;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    reopened += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                reopened
            })
        })
        .collect();
    // Let the trickling connections take their places first.
    common::wait_until("the slow connections to crowd the endpoint", || {
        server.stats().slow_heads_closed >= 40
    });
    let bearer = format!("Bearer {TOKEN}");
    let statuses: Vec<Option<u16>> = (0..50)
        .map(|_| {
            try_get(
                address,
                "/debug/agentprof/report.txt",
                &[("Authorization", &bearer)],
            )
        })
        .collect();
    stop.store(true, SeqCst);
    for thread in trickling {
        thread.join().unwrap();
    }
    let served = statuses.iter().filter(|s| **s == Some(200)).count();
    let stats = server.shutdown();
    assert_eq!(
        served,
        statuses.len(),
        "every authenticated request is served: {statuses:?} {stats:?}"
    );
    assert!(stats.slow_heads_closed >= 40, "{stats:?}");
}
