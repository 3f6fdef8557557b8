//! A simulated multi-agent service, profiled.
//!
//! Concurrent sessions each run a planner that calls a researcher (tools
//! doing real CPU work: JSON parsing, hashing, text scoring) and a writer.
//! Some tool calls fail with `Err`, and one slow search per few sessions is
//! cancelled by a timeout. At the end the report is printed and written to
//! `profiles/report.json`; the CPU profile (every sample labelled with its
//! agent, function and invocation) to `profiles/cpu.pb.gz` and
//! `profiles/flamegraph.svg`; the sampled heap profile to
//! `profiles/mem_profile.pb.gz`. Open the profiles with
//! `go tool pprof -top profiles/cpu.pb.gz` (or `-tags`, or `-http=:8080`),
//! the SVG in a browser.
//!
//! ```text
//! cargo run --release --example agents
//! cargo run --release --example agents -- examples/config.toml
//! ```
//!
//! With a configuration file (or `AGENTPROF_CONFIG`) the profiler runs as
//! configured; `continuous = true` exports a window every
//! `duration_seconds` through the configured exporter and flushes the last
//! one at exit.
//!
//! With `--serve ADDR` (and the `http` feature) it keeps simulating
//! sessions until interrupted, with the live endpoint on ADDR:
//!
//! ```text
//! cargo run --release --features http --example agents -- --serve 127.0.0.1:6060
//! go tool pprof -http=: 'http://127.0.0.1:6060/debug/pprof/profile?seconds=5'
//! open http://127.0.0.1:6060/debug/agentprof/
//! ```

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use agentprof::{cpu::CpuProfiler, heap::HeapProfiler, profiled, Config, Profiler};
use serde_json::Value;

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

const SESSIONS: u32 = 64;
const TURNS: usize = 3;
const DOCUMENTS: usize = 200;

#[derive(Debug)]
enum ToolError {
    NotFound(String),
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolError::NotFound(what) => write!(f, "not found: {what}"),
        }
    }
}

#[profiled(agent = "planner", labels(session = session))]
async fn handle_session(session: u32, goal: String) -> Result<String, ToolError> {
    let mut answer = String::new();
    for turn in 0..TURNS {
        let steps = plan_steps(&goal) + turn;
        let findings = research(session, &goal, steps).await?;
        answer = write_answer(&goal, &findings).await;
    }
    Ok(answer)
}

/// Runs inside the planner's invocation; no agent of its own, so it is
/// charged to the planner.
#[profiled]
fn plan_steps(goal: &str) -> usize {
    let words: Vec<&str> = goal.split_whitespace().collect();
    let mut steps = 0;
    for window in words.windows(2) {
        steps += (window[0].len() * 31 + window[1].len()) % 3;
    }
    steps.max(2)
}

#[profiled(agent = "researcher")]
async fn research(session: u32, goal: &str, steps: usize) -> Result<Vec<(usize, f64)>, ToolError> {
    let corpus = fetch_documents(session, steps).await;
    let fingerprints = {
        let corpus = corpus.clone();
        // Blocking-pool work still belongs to this invocation.
        agentprof::spawn_blocking(move || fingerprint(&corpus))
            .await
            .expect("fingerprinting")
    };
    let mut scored = score_documents(goal, &corpus);
    scored.truncate(5);
    if session % 9 == 4 {
        // The web search is slow for these sessions and gets cut off.
        match tokio::time::timeout(Duration::from_millis(20), web_search(goal)).await {
            Ok(extra) => scored.extend(extra),
            Err(_) => tracing::warn!("web search timed out"),
        }
    }
    let mut cited = Vec::new();
    for (doc, score) in scored {
        match lookup_citation(fingerprints[doc]) {
            Ok(_) => cited.push((doc, score)),
            Err(ToolError::NotFound(_)) => continue,
        }
    }
    if cited.is_empty() || session % 16 == 5 {
        return Err(ToolError::NotFound(format!(
            "no citations for session {session}"
        )));
    }
    Ok(cited)
}

#[profiled]
async fn fetch_documents(session: u32, steps: usize) -> Vec<String> {
    let mut docs = Vec::with_capacity(DOCUMENTS);
    for i in 0..DOCUMENTS {
        // A simulated network round trip every few documents.
        if i % 40 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let raw = serde_json::json!({
            "id": i,
            "session": session,
            "title": format!("report {i} on step {}", i % steps.max(1)),
            "body": (0..60).map(|w| format!("term{}", (w * 7 + i + session as usize) % 97)).collect::<Vec<_>>(),
            "meta": {"source": "archive", "rank": i % 13},
        })
        .to_string();
        docs.push(parse_document(&raw));
    }
    docs
}

#[profiled(span = false)]
fn parse_document(raw: &str) -> String {
    let value: Value = serde_json::from_str(raw).expect("valid JSON");
    let words = value["body"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    words
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

#[profiled]
fn fingerprint(corpus: &[String]) -> Vec<u64> {
    corpus
        .iter()
        .map(|doc| {
            let mut h = 0u64;
            for round in 0..600u64 {
                let mut hasher = DefaultHasher::new();
                (doc, round, h).hash(&mut hasher);
                h = hasher.finish();
            }
            h
        })
        .collect()
}

#[profiled]
fn score_documents(goal: &str, corpus: &[String]) -> Vec<(usize, f64)> {
    let terms: Vec<String> = goal.split_whitespace().map(str::to_lowercase).collect();
    let mut scores: Vec<(usize, f64)> = corpus
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            let words: Vec<&str> = doc.split(' ').collect();
            let len_norm = 1.0 / (1.0 + words.len() as f64 / 60.0);
            let score: f64 = terms
                .iter()
                .map(|t| {
                    let tf = words.iter().filter(|w| w.ends_with(t.as_str())).count() as f64;
                    tf * 2.2 / (tf + 1.2) * len_norm
                })
                .sum();
            (i, score)
        })
        .collect();
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    scores
}

#[profiled(agent = "web")]
async fn web_search(goal: &str) -> Vec<(usize, f64)> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    vec![(goal.len() % DOCUMENTS, 0.1)]
}

#[profiled]
fn lookup_citation(fingerprint: u64) -> Result<u64, ToolError> {
    if fingerprint % 5 == 0 {
        return Err(ToolError::NotFound(format!("{fingerprint:x}")));
    }
    Ok(fingerprint.rotate_left(7))
}

#[profiled(agent = "writer")]
async fn write_answer(goal: &str, findings: &[(usize, f64)]) -> String {
    let mut text = format!("Answer to {goal:?}:\n");
    for (doc, score) in findings {
        tokio::task::yield_now().await;
        let sentence = compose_sentence(*doc, *score);
        text.push_str(&sentence);
    }
    text
}

#[profiled]
fn compose_sentence(doc: usize, score: f64) -> String {
    let mut s = String::new();
    for i in 0..400 {
        s.push_str(&format!("{}", (doc * 31 + i) % 10));
    }
    format!("- document {doc} (score {score:.3}) digest {}\n", &s[..16])
}

const GOALS: [&str; 4] = [
    "compare flight prices for a trip to lisbon",
    "summarize term27 and term54 findings for the board",
    "draft a reply about term3 shipping delays",
    "find term88 regulations that apply to term41 exports",
];

/// Runs `SESSIONS` concurrent sessions: (answered, failed).
async fn run_sessions(first: u32, quiet: bool) -> (u32, u32) {
    let sessions: Vec<_> = (first..first + SESSIONS)
        .map(|s| {
            tokio::spawn(handle_session(
                s,
                GOALS[s as usize % GOALS.len()].to_owned(),
            ))
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for session in sessions {
        match session.await.expect("session task") {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                if !quiet {
                    eprintln!("session failed: {e}");
                }
            }
        }
    }
    (ok, failed)
}

/// `--serve ADDR`: sessions until Ctrl-C, the live endpoint on ADDR, a
/// collector window every 10 seconds for the page's CPU-over-time chart.
#[cfg(feature = "http")]
fn serve(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let running = Profiler::builder()
        .window(Duration::from_secs(10))
        .heap_profiling(true)
        .http(address)
        .build()?
        .start()?;
    let bound = running.http_addr().expect("the endpoint runs");
    println!("serving on http://{bound}/debug/pprof/ until Ctrl-C");
    println!("  go tool pprof -http=: 'http://{bound}/debug/pprof/profile?seconds=5'");
    println!("  go tool pprof -http=: http://{bound}/debug/pprof/heap");
    println!("  the HTML report: http://{bound}/debug/agentprof/");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rounds = runtime.block_on(async {
        // The round in flight finishes: its sessions' blocking work would
        // otherwise be cancelled under them.
        let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        tokio::spawn({
            let interrupted = interrupted.clone();
            async move {
                let _ = tokio::signal::ctrl_c().await;
                interrupted.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let mut rounds = 0u32;
        while !interrupted.load(std::sync::atomic::Ordering::Relaxed) {
            run_sessions(rounds.wrapping_mul(SESSIONS), true).await;
            rounds += 1;
        }
        rounds
    });
    let summary = running.shutdown()?;
    println!(
        "stopped after {rounds} rounds of {SESSIONS} sessions ({} windows cut)",
        summary.stats.windows
    );
    Ok(())
}

#[cfg(not(feature = "http"))]
fn serve(_address: &str) -> Result<(), Box<dyn std::error::Error>> {
    Err("--serve needs the live endpoint: \
         cargo run --release --features http --example agents -- --serve ADDR"
        .into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--serve") {
        let address = args
            .next()
            .ok_or("--serve needs an address, e.g. 127.0.0.1:6060")?;
        return serve(&address);
    }
    let config = match first.or_else(|| std::env::var("AGENTPROF_CONFIG").ok()) {
        Some(path) => Config::from_file(path)?,
        None => {
            let mut config = Config::default();
            config.telemetry.profiling.enabled = true;
            config.telemetry.profiling.memory.heap_profiling = true;
            config.apply_env(|name| std::env::var(name).ok())?;
            config
        }
    };
    let recording = config.recording();
    let continuous = recording && config.telemetry.profiling.cpu.continuous;
    // Continuous: the profiler's collector samples and exports windows.
    // Otherwise: one CPU profile of the whole run, written at the end.
    let running = Profiler::from_config(&config)?.start()?;
    let mut cpu = CpuProfiler::new(config.telemetry.profiling.cpu.clone())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if recording && !continuous {
        cpu.start()?;
    }
    let started = Instant::now();
    let (ok, failed) = runtime.block_on(run_sessions(0, false));
    let elapsed = started.elapsed();
    let cpu_report = cpu
        .is_running()
        .then(|| cpu.stop_and_collect())
        .transpose()?;

    let report = agentprof::report();
    println!("{report}");
    println!("{SESSIONS} sessions ({ok} answered, {failed} failed) in {elapsed:.2?}");
    std::fs::create_dir_all("profiles")?;
    std::fs::write("profiles/report.json", report.to_json_pretty()?)?;
    println!("wrote profiles/report.json");
    if let Some(cpu_report) = cpu_report {
        std::fs::write("profiles/cpu.pb.gz", cpu_report.pprof_gzip())?;
        std::fs::write("profiles/flamegraph.svg", cpu_report.flamegraph_svg()?)?;
        println!(
            "wrote profiles/cpu.pb.gz and profiles/flamegraph.svg ({} samples, {:.0} Hz delivered of {} Hz requested, {:?} timers)",
            cpu_report.sample_count(),
            cpu_report.delivered_hz(),
            cpu_report.requested_hz,
            cpu_report.mode
        );
        for (agent, ns) in cpu_report.cpu_by("agent") {
            let agent = if agent.is_empty() {
                "(none)"
            } else {
                agent.as_str()
            };
            println!("  sampled CPU {agent:<12} {:>8.1} ms", ns as f64 / 1e6);
        }
    }
    if continuous {
        let summary = running.shutdown()?;
        println!(
            "exported {} windows to {} ({} dropped, {} errors)",
            summary.stats.exported,
            config
                .telemetry
                .profiling
                .exporter
                .file_output_dir
                .as_deref()
                .unwrap_or("the exporter"),
            summary.stats.dropped,
            summary.stats.errors
        );
        return Ok(());
    }
    drop(running);
    if let Some(heap) = HeapProfiler::running() {
        let heap = heap.snapshot();
        std::fs::write("profiles/mem_profile.pb.gz", heap.to_pprof_gzip())?;
        println!(
            "wrote profiles/mem_profile.pb.gz ({} sampled stacks; the profiler reserves {} KiB)",
            heap.stacks.len(),
            HeapProfiler::reserved_bytes() / 1024
        );
    }
    Ok(())
}
