//! Continuous profiling: the collector cuts windows, the file exporter
//! writes them, and a slow or failing exporter costs windows, not the
//! application. CPU profiling is process-wide, so these run one at a time.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentprof::export::{Payloads, ProfileExporter, Window};
use agentprof::{profiled, Profiler};

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[profiled(agent = "windowed")]
fn windowed_work() -> u64 {
    let buffer = vec![1u8; 64 * 1024];
    common::burn_cpu_ns(2_000_000) + buffer.len() as u64
}

fn run_for(duration: Duration) {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        windowed_work();
    }
}

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agentprof-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn files(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    found.sort();
    found
}

/// Windows in which the process sat idle have no CPU samples to draw;
/// they still get every file, their flamegraph saying why it is empty.
#[test]
fn idle_windows_still_get_every_file() {
    let _serial = serial();
    let dir = fresh_dir("idle-windows");
    let _cleanup = common::RemoveOnDrop(dir.clone());
    let profiler = Profiler::builder()
        .window(Duration::from_millis(300))
        .cpu_frequency(100)
        .file_exporter(dir.to_string_lossy())
        .build()
        .unwrap()
        .start()
        .unwrap();
    // Wait for windows rather than for a time: a busy machine may cut them late.
    let give_up = Instant::now() + Duration::from_secs(60);
    while profiler.stats().windows < 2 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary = profiler.shutdown().unwrap();
    let windows = summary.stats.windows as usize;
    assert!(windows >= 2, "{summary:?}");
    assert_eq!(summary.stats.exported, summary.stats.windows);
    let flamegraphs = files(&dir, "flamegraph_");
    assert_eq!(flamegraphs.len(), windows, "flamegraph_ files");
    assert_eq!(
        files(&dir, "cpu_profile_").len(),
        windows,
        "cpu_profile_ files"
    );
    // Sleeping threads are not sampled, but the profiler's start and its
    // window cuts may be: each file is a drawing or says why it is not.
    for path in &flamegraphs {
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"),
            "{path:?}"
        );
        assert!(
            svg.contains("No flamegraph for this window") || svg.contains("id=\"frames\""),
            "{path:?}: {svg}"
        );
    }
}

#[test]
fn the_file_exporter_writes_every_window_readably_and_privately() {
    let _serial = serial();
    let dir = fresh_dir("windows");
    let _cleanup = common::RemoveOnDrop(dir.clone());
    let profiler = Profiler::builder()
        .window(Duration::from_millis(400))
        .cpu_frequency(250)
        .heap_profiling(true)
        .file_exporter(dir.to_string_lossy())
        .build()
        .unwrap()
        .start()
        .unwrap();
    run_for(Duration::from_millis(1000));
    let summary = profiler.shutdown().unwrap();
    assert!(!summary.export_timed_out);
    // Full windows and the partial last one (how many full ones depends on
    // how long the first symbolization takes).
    assert!(summary.stats.windows >= 2, "{summary:?}");
    assert_eq!(summary.stats.exported, summary.stats.windows);
    assert_eq!(summary.stats.errors, 0);
    let windows = summary.stats.windows as usize;
    for prefix in ["cpu_profile_", "mem_profile_", "flamegraph_"] {
        assert_eq!(files(&dir, prefix).len(), windows, "{prefix} files");
    }
    // A JSON and an HTML report per window.
    assert_eq!(files(&dir, "report_").len(), 2 * windows, "report files");
    let name = files(&dir, "cpu_profile_")[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.len() == "cpu_profile_20261126_104655.pb.gz".len() || name.contains("_2."),
        "{name}"
    );
    assert!(!std::fs::read_dir(&dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "profiles reveal code and labels: owner-only");

    let reports = files(&dir, "report_");
    let json = reports
        .iter()
        .rfind(|p| p.extension().is_some_and(|e| e == "json"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json.unwrap()).unwrap()).unwrap();
    let html = reports
        .iter()
        .rfind(|p| p.extension().is_some_and(|e| e == "html"));
    let html = std::fs::read_to_string(html.unwrap()).unwrap();
    assert!(
        html.contains("<td class=\"text\">windowed</td>"),
        "the agent's row"
    );
    assert!(
        html.contains("data-agent=\"windowed\""),
        "the agent's flamegraph"
    );
    assert!(html.contains("<svg"), "flamegraphs inline");
    assert!(html.contains("id=\"memory-timeline\""), "the memory chart");
    // The window's slowest calls, embedded (a file has no endpoint to
    // link to), and the function row linking to them.
    let row = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agent"] == "windowed")
        .unwrap();
    let slowest = row["exemplars"][0]["id"].as_u64().expect("exemplars");
    assert!(html.contains("<section id=\"slowest\">"));
    assert!(html.contains(&format!("<details id=\"invocation-{slowest}\">")));
    assert!(html.contains(&format!("href=\"#invocation-{slowest}\"")));
    assert!(report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["agent"] == "windowed"));
    let cpu = files(&dir, "cpu_profile_");
    let profile = agentprof::pprof::Profile::decode(&std::fs::read(&cpu[0]).unwrap()).unwrap();
    assert!(profile
        .sample
        .iter()
        .any(|s| profile.label(s, "agent") == Some("windowed")));
    if let Some(top) = common::go_pprof(&["-top"], &cpu[1]) {
        assert!(top.contains("burn_cpu_ns"), "{top}");
    }
    if let Some(top) = common::go_pprof(
        &["-sample_index=alloc_space", "-top"],
        &files(&dir, "mem_profile_")[0],
    ) {
        assert!(top.contains("alloc"), "{top}");
    }
}

#[test]
fn retention_keeps_the_newest_windows() {
    let _serial = serial();
    let dir = fresh_dir("retention");
    let _cleanup = common::RemoveOnDrop(dir.clone());
    let mut config = agentprof::Config::default();
    let p = &mut config.telemetry.profiling;
    p.enabled = true;
    p.cpu.continuous = true;
    p.cpu.duration = Duration::from_secs(1);
    p.exporter.file_output_dir = Some(dir.to_string_lossy().into_owned());
    p.exporter.max_windows = 2;
    let profiler = Profiler::from_config(&config).unwrap().start().unwrap();
    run_for(Duration::from_millis(3200));
    let summary = profiler.shutdown().unwrap();
    assert!(summary.stats.windows >= 4, "{summary:?}");
    assert_eq!(
        files(&dir, "cpu_profile_").len(),
        2,
        "only the newest 2 windows stay"
    );
    assert_eq!(
        files(&dir, "report_").len(),
        4,
        "JSON and HTML of 2 windows"
    );
}

#[test]
fn a_directory_that_cannot_be_written_fails_at_start_naming_it() {
    let _serial = serial();
    let blocker = fresh_dir("blocker");
    std::fs::write(&blocker, b"a file where the directory should be").unwrap();
    let _cleanup = common::RemoveOnDrop(blocker.clone());
    for dir in [
        blocker.join("profiles"),
        "/proc/self/agentprof-profiles".into(),
    ] {
        let error = Profiler::builder()
            .file_exporter(dir.to_string_lossy())
            .build()
            .unwrap()
            .start()
            .err()
            .expect("an unwritable directory is refused");
        assert!(
            error.to_string().contains(&*dir.to_string_lossy()),
            "{error}"
        );
    }
}

/// An exporter that blocks far longer than any test waits.
struct Hanging(Arc<AtomicU64>);

impl ProfileExporter for Hanging {
    fn export_report(
        &mut self,
        _: &Window,
        _: &agentprof::report::Report,
    ) -> agentprof::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(30));
        Ok(())
    }
}

#[test]
fn a_hanging_exporter_costs_windows_not_memory_and_shutdown_stays_bounded() {
    let _serial = serial();
    let calls = Arc::new(AtomicU64::new(0));
    let profiler = Profiler::builder()
        .window(Duration::from_millis(50))
        .queue_size(2)
        .shutdown_timeout(Duration::from_millis(300))
        .exporter(Hanging(calls.clone()))
        .build()
        .unwrap()
        .start()
        .unwrap();
    // The first window symbolizes everything (slow in a debug build); wait
    // for windows rather than for a time.
    let give_up = Instant::now() + Duration::from_secs(60);
    while profiler.stats().windows < 10 && Instant::now() < give_up {
        run_for(Duration::from_millis(50));
    }
    let stats = profiler.stats();
    assert!(stats.windows >= 10, "{stats:?}");
    assert!(
        stats.dropped >= stats.windows - 3,
        "queue of 2 plus the one being exported: {stats:?}"
    );
    let started = Instant::now();
    let timed_out = profiler.shutdown().unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(timed_out, agentprof::Error::ExportTimedOut { .. }),
        "{timed_out}"
    );
    assert!(
        took < Duration::from_secs(10),
        "shutdown took {took:?} with a 30 s exporter"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the exporter never got past its first window"
    );
}

struct Failing(Arc<AtomicU64>);

impl ProfileExporter for Failing {
    fn export_cpu_profile(&mut self, _: &Window, _: &[u8]) -> agentprof::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(agentprof::Error::Export {
            exporter: "failing".to_owned(),
            message: "disk full".to_owned(),
        })
    }
}

#[test]
fn export_errors_are_counted_and_do_not_stop_the_collector() {
    let _serial = serial();
    let attempts = Arc::new(AtomicU64::new(0));
    let profiler = Profiler::builder()
        .window(Duration::from_millis(100))
        .exporter(Failing(attempts.clone()))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(60);
    while profiler.stats().windows < 4 && Instant::now() < give_up {
        run_for(Duration::from_millis(50));
    }
    let summary = profiler.shutdown().unwrap();
    assert!(summary.stats.windows >= 4, "{summary:?}");
    assert_eq!(summary.stats.errors, attempts.load(Ordering::SeqCst));
    assert_eq!(summary.stats.errors, summary.stats.windows);
    assert_eq!(summary.stats.exported, 0);
}

/// Counts the payloads it is handed, taking only those `takes` names.
struct Counting {
    takes: Payloads,
    calls: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl Counting {
    fn count(&self, payload: &'static str) -> agentprof::Result<()> {
        *self.calls.lock().unwrap().entry(payload).or_default() += 1;
        Ok(())
    }
}

impl ProfileExporter for Counting {
    fn payloads(&self) -> Payloads {
        self.takes
    }
    fn export_cpu_profile(&mut self, _: &Window, _: &[u8]) -> agentprof::Result<()> {
        self.count("cpu_profile")
    }
    fn export_memory_profile(&mut self, _: &Window, _: &[u8]) -> agentprof::Result<()> {
        self.count("memory_profile")
    }
    fn export_flamegraph(&mut self, _: &Window, _: &[u8]) -> agentprof::Result<()> {
        self.count("flamegraph")
    }
    fn export_report(
        &mut self,
        _: &Window,
        _: &agentprof::report::Report,
    ) -> agentprof::Result<()> {
        self.count("report")
    }
    fn export_html_report(&mut self, _: &Window, _: &str) -> agentprof::Result<()> {
        self.count("html_report")
    }
    fn finish_window(&mut self, _: &Window) -> agentprof::Result<()> {
        self.count("finish_window")
    }
}

#[test]
fn exporters_get_only_the_payloads_they_take() {
    let _serial = serial();
    let only_profiles = Arc::new(Mutex::new(BTreeMap::new()));
    let everything = Arc::new(Mutex::new(BTreeMap::new()));
    let profiles = Payloads {
        cpu_profile: true,
        memory_profile: true,
        ..Payloads::NONE
    };
    let profiler = Profiler::builder()
        .window(Duration::from_millis(100))
        .exporter(Counting {
            takes: profiles,
            calls: only_profiles.clone(),
        })
        .exporter(Counting {
            takes: Payloads::ALL,
            calls: everything.clone(),
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(60);
    while profiler.stats().windows < 3 && Instant::now() < give_up {
        run_for(Duration::from_millis(50));
    }
    let windows = profiler.shutdown().unwrap().stats.windows;
    assert!(windows >= 3, "{windows} windows");
    let only_profiles = only_profiles.lock().unwrap().clone();
    let everything = everything.lock().unwrap().clone();
    for payload in ["flamegraph", "report", "html_report"] {
        assert_eq!(only_profiles.get(payload), None, "{only_profiles:?}");
    }
    // Every window ends for both; the CPU profile is there each window.
    assert_eq!(only_profiles.get("finish_window"), Some(&windows));
    assert_eq!(only_profiles.get("cpu_profile"), Some(&windows));
    for payload in ["cpu_profile", "report", "html_report", "finish_window"] {
        assert_eq!(
            everything.get(payload),
            Some(&windows),
            "{payload}: {everything:?}"
        );
    }
    // A window without samples has no flamegraph to draw.
    let flamegraphs = everything.get("flamegraph").copied().unwrap_or(0);
    assert!((1..=windows).contains(&flamegraphs), "{everything:?}");
}
