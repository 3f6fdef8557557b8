//! What the whole pipeline costs a service: peak RSS, wall and CPU of an
//! agent service doing a fixed amount of work, with the profiler started at
//! its defaults (5 s windows, heap profiling, file export, and the live
//! endpoint when built with `http`) against the same binary with the
//! profiler not started; plus the profiler's own bill as the report shows
//! it (its heap, its threads' CPU, the first window's cut).
//!
//! ```text
//! cargo bench --bench footprint --features http
//! CARGO_PROFILE_BENCH_DEBUG=0 cargo bench --bench footprint --features http
//! ```
//!
//! The bench runs itself as the service, in fresh processes, in three
//! modes per round (`ROUNDS` rounds): the profiler not started, recording
//! only (invocations and the counting allocator), and the whole pipeline;
//! it prints the medians, and the medians of each round's ratios to the
//! first.
//! Peak RSS is the child's `ru_maxrss`, CPU its user + system time, both
//! from `wait4`. `AGENTPROF_FOOTPRINT_SESSIONS` scales the work (default:
//! about 20 s on the 2-core development VM).
//!
//! To look inside one run of a mode (`off`, `attribution`, `pipeline`):
//! `AGENTPROF_FOOTPRINT_CHILD=pipeline` runs it directly,
//! `AGENTPROF_FOOTPRINT_STAGES=1` prints heap and RSS at each stage,
//! `AGENTPROF_FOOTPRINT_HEAP=path` writes the heap profile after the work
//! (agentprof's own allocations under `agent = "agentprof"`), and
//! `AGENTPROF_FOOTPRINT_KEEP=1` keeps the windows it exported.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use agentprof::{profiled, Profiler};

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

const ROUNDS: usize = 3;
const CHILD: &str = "AGENTPROF_FOOTPRINT_CHILD";

/// A document as a retrieval step gets it.
fn document(session: u64, i: u64) -> String {
    format!(
        r#"{{"id":{i},"session":{session},"title":"document {i}","body":"{}","tags":["a","b","c"]}}"#,
        "lorem ipsum dolor sit amet ".repeat(20 + (i % 7) as usize)
    )
}

#[profiled(agent = "planner")]
async fn handle_session(session: u64) -> usize {
    let mut answer = 0;
    for turn in 0..4 {
        let found = research(session, turn).await;
        answer += write_answer(found).await.len();
        tokio::task::yield_now().await;
    }
    answer
}

#[profiled(agent = "researcher")]
async fn research(session: u64, turn: u64) -> Vec<u64> {
    let mut scores = Vec::new();
    for i in 0..24 {
        let text = document(session, turn * 100 + i);
        scores.push(parse_and_score(&text));
        if i % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
    scores.push(fingerprint(session ^ turn));
    scores
}

#[profiled]
fn parse_and_score(text: &str) -> u64 {
    let value: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
    let body = value["body"].as_str().unwrap_or_default();
    body.split_whitespace().map(|w| w.len() as u64).sum()
}

#[profiled]
fn fingerprint(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..150_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

#[profiled(agent = "writer")]
async fn write_answer(scores: Vec<u64>) -> String {
    let mut text = String::new();
    for s in scores {
        text.push_str(&format!("score {s}; "));
    }
    text
}

/// The service: a fixed number of sessions, 16 at a time, on two workers.
fn serve(sessions: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut next = 0;
        while next < sessions {
            let batch: Vec<_> = (next..(next + 16).min(sessions))
                .map(|s| tokio::spawn(handle_session(s)))
                .collect();
            next += 16;
            for b in batch {
                black_box(b.await.unwrap());
            }
        }
    });
}

fn stage(name: &str) {
    if std::env::var_os("AGENTPROF_FOOTPRINT_STAGES").is_none() {
        return;
    }
    let heap = agentprof::memory::memory_stats().map_or(0, |m| m.current_usage >> 20);
    let rss = agentprof::memory::system_memory().map_or(0, |m| m.rss_bytes >> 20);
    eprintln!("{name:>10}: heap {heap} MiB, rss {rss} MiB");
}

/// How the measured process runs.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The profiler not started, recording off: the baseline.
    Off,
    /// Recording on (invocations and the counting allocator), nothing
    /// started: what the per-call accounting costs alone.
    Attribution,
    /// The whole pipeline at its defaults.
    Pipeline,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Off, Mode::Attribution, Mode::Pipeline];

    fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Attribution => "attribution",
            Mode::Pipeline => "pipeline",
        }
    }
}

fn child(mode: Mode, sessions: u64) {
    let dir = std::env::temp_dir().join(format!("agentprof-footprint-{}", std::process::id()));
    let started = Instant::now();
    let profiler = (mode == Mode::Pipeline).then(|| {
        let builder = Profiler::builder()
            .window(Duration::from_secs(5))
            .heap_profiling(true)
            .file_exporter(dir.to_string_lossy());
        #[cfg(feature = "http")]
        let builder = builder.http("127.0.0.1:0");
        builder.build().unwrap().start().unwrap()
    });
    if mode == Mode::Off {
        agentprof::set_enabled(false);
    }
    stage("started");
    serve(sessions);
    stage("served");
    let elapsed = started.elapsed();
    let report = agentprof::report();
    stage("reported");
    if let Ok(path) = std::env::var("AGENTPROF_FOOTPRINT_HEAP") {
        if let Some(heap) = agentprof::heap::HeapProfiler::running() {
            std::fs::write(path, heap.snapshot().to_pprof_gzip()).unwrap();
        }
    }
    if let Some(profiler) = profiler {
        profiler.shutdown().unwrap();
    }
    stage("stopped");
    // `AGENTPROF_FOOTPRINT_KEEP=1` keeps the windows to look into.
    if std::env::var_os("AGENTPROF_FOOTPRINT_KEEP").is_some() {
        eprintln!("windows kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let own = report.profiler.clone().unwrap_or_default();
    println!(
        "wall_ms={} profiler_heap_kib={} reserved_kib={} profiler_cpu_ms={} first_cut_ms={} \
         last_cut_ms={} window_cpu_ms={}",
        elapsed.as_millis(),
        own.heap_inuse_bytes.unwrap_or(0) >> 10,
        own.reserved_bytes >> 10,
        own.cpu_ns / 1_000_000,
        own.first_cut_cpu_ns.unwrap_or(0) / 1_000_000,
        own.last_cut_cpu_ns.unwrap_or(0) / 1_000_000,
        own.window_cpu_ns.unwrap_or(0) / 1_000_000,
    );
}

/// One child run: (wall s, CPU s, peak RSS MiB, its own line).
#[allow(clippy::zombie_processes, reason = "reaped by wait4, for its rusage")]
fn run(mode: Mode, sessions: u64) -> (f64, f64, f64, String) {
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let child = Command::new(exe)
        .env(CHILD, mode.name())
        .env("AGENTPROF_FOOTPRINT_SESSIONS", sessions.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the service child");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut stdout = child.stdout.expect("piped");
    let mut line = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut line).unwrap();
    // SAFETY: `pid` is our child, not yet reaped; both pointers are valid.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4");
    assert_eq!(status, 0, "the service child failed");
    let wall = started.elapsed().as_secs_f64();
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    let rss_mib = usage.ru_maxrss as f64 / 1024.0;
    (wall, cpu, rss_mib, line.trim().to_owned())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let sessions: u64 = std::env::var("AGENTPROF_FOOTPRINT_SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24_000);
    if let Ok(name) = std::env::var(CHILD) {
        let mode = Mode::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .expect("a mode");
        child(mode, sessions);
        return;
    }
    // `cargo bench` passes `--bench`; a plain `cargo test` run of benches
    // passes nothing and gets a short smoke run.
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, sessions) = if bench { (ROUNDS, sessions) } else { (1, 16) };
    let mut runs: Vec<Vec<(f64, f64, f64, String)>> = vec![Vec::new(); Mode::ALL.len()];
    for round in 0..rounds {
        // Each mode in turn first, so that drift within a round does not
        // always favour the same one.
        for step in 0..Mode::ALL.len() {
            let i = (round + step) % Mode::ALL.len();
            let mode = Mode::ALL[i];
            let r = run(mode, sessions);
            eprintln!(
                "round {round} {:<11} {:6.2} s {:6.2} cpu-s {:6.1} MiB  {}",
                mode.name(),
                r.0,
                r.1,
                r.2,
                r.3
            );
            runs[i].push(r);
        }
    }
    let pick =
        |mode: usize, i: usize| median(runs[mode].iter().map(|r| [r.0, r.1, r.2][i]).collect());
    // Ratios to `off` within each round, then their median: the machine's
    // drift between rounds divides out.
    let ratio = |mode: usize, i: usize| {
        median(
            runs[mode]
                .iter()
                .zip(&runs[0])
                .map(|(r, off)| [r.0 / off.0, r.1 / off.1][i])
                .collect(),
        )
    };
    println!(
        "footprint ({sessions} sessions, medians of {rounds} rounds; ratios: medians of each round's)"
    );
    println!(
        "  {:<11} {:>9} {:>9} {:>9}  {:>7} {:>7} {:>9}",
        "", "wall s", "CPU s", "peak RSS", "wall", "CPU", "RSS"
    );
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        println!(
            "  {:<11} {:>9.2} {:>9.2} {:>7.1}Mi  {:>6.3}x {:>6.3}x {:>+7.1}Mi",
            mode.name(),
            pick(i, 0),
            pick(i, 1),
            pick(i, 2),
            ratio(i, 0),
            ratio(i, 1),
            pick(i, 2) - pick(0, 2),
        );
    }
    println!("  targets: pipeline <= 1.03x wall and CPU, <= +16 MiB peak RSS");
    if let Some(line) = runs[2].last() {
        println!("  the pipeline's own bill (last run): {}", line.3);
    }
}
