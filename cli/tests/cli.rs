//! The command line run as a user runs it, on reports and profiles a real
//! workload produced.

use std::path::{Path, PathBuf};
use std::process::Command;

use agentprof::profiled;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("agentprof-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn thread_cpu_ns() -> u64 {
    agentprof::__test_hooks::read_thread_cpu_clock().unwrap()
}

#[inline(never)]
fn burn(ns: u64) -> u64 {
    let start = thread_cpu_ns();
    let mut x = 1u64;
    while thread_cpu_ns() - start < ns {
        for _ in 0..1000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
    }
    x
}

#[profiled(agent = "planner")]
fn plan_route(ns: u64) -> u64 {
    burn(ns)
}

#[profiled(agent = "researcher")]
fn search_documents(ns: u64) -> u64 {
    burn(ns)
}

/// One run of the workload, its report as JSON; the planner's step costs
/// `planner_ns` of CPU.
fn run(planner_ns: u64) -> String {
    agentprof::report::reset();
    for _ in 0..150 {
        plan_route(planner_ns);
        search_documents(400_000);
    }
    agentprof::report().to_json_pretty().unwrap()
}

fn cli(args: &[&str], dir: &Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_agentprof-cli"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every test of this file shares the process-wide stores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_slower_agent_fails_the_gate_and_an_unchanged_run_passes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("diff");
    std::fs::write(dir.0.join("before.json"), run(1_000_000)).unwrap();
    std::fs::write(dir.0.join("again.json"), run(1_000_000)).unwrap();
    std::fs::write(dir.0.join("slower.json"), run(1_300_000)).unwrap();
    let gate = ["--fail-on", "cpu_p50>+10%", "--fail-on", "cpu_mean>+10%"];

    let mut args = vec!["diff", "before.json", "slower.json"];
    args.extend(gate);
    let (code, out, err) = cli(&args, &dir.0);
    assert_eq!(code, 1, "{out}{err}");
    let failed = out
        .split("Changed beyond")
        .next()
        .unwrap()
        .split("Failed thresholds")
        .nth(1)
        .expect("a failed thresholds section");
    assert!(
        failed.contains("planner") && failed.contains("plan_route"),
        "names the agent and the function: {out}"
    );
    assert!(!failed.contains("search_documents"), "{out}");
    // Around +30% (CPU time, not wall: stable on a busy machine).
    let line = failed
        .lines()
        .find(|l| l.contains("cpu_p50>+10%") && l.contains("plan_route"))
        .unwrap();
    let percent: f64 = line
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches([')', '%'])
        .parse()
        .unwrap();
    assert!((20.0..=45.0).contains(&percent), "{line}");

    let mut args = vec!["diff", "before.json", "again.json"];
    args.extend(gate);
    let (code, out, err) = cli(&args, &dir.0);
    assert_eq!(code, 0, "an unchanged run passes: {out}{err}");

    // Markdown for a pull request.
    let mut args = vec!["diff", "before.json", "slower.json", "--format", "markdown"];
    args.extend(gate);
    let (code, out, _) = cli(&args, &dir.0);
    assert_eq!(code, 1);
    assert!(
        out.contains("| row | metric | before | after | change | floor |"),
        "{out}"
    );
}

#[test]
fn show_prints_a_saved_report_and_bad_input_is_named() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("show");
    let report = run(200_000);
    std::fs::write(dir.0.join("report.json"), &report).unwrap();
    let (code, out, err) = cli(&["show", "report.json"], &dir.0);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("plan_route") && out.contains("planner"),
        "{out}"
    );

    let newer = report.replacen(
        &format!("\"schema_version\": {}", agentprof::report::SCHEMA_VERSION),
        "\"schema_version\": 99",
        1,
    );
    assert_ne!(newer, report);
    std::fs::write(dir.0.join("newer.json"), newer).unwrap();
    let (code, _, err) = cli(&["diff", "report.json", "newer.json"], &dir.0);
    assert_eq!(code, 2);
    assert!(
        err.contains("schema_version 99")
            && err.contains(&agentprof::report::SCHEMA_VERSION.to_string()),
        "{err}"
    );

    let (code, _, err) = cli(
        &[
            "diff",
            "report.json",
            "report.json",
            "--fail-on",
            "cpu_p5>+10%",
        ],
        &dir.0,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("\"cpu_p5\"") && err.contains("cpu_p50"),
        "{err}"
    );

    let (code, _, err) = cli(&["diff", "report.json", "missing.json"], &dir.0);
    assert_eq!(code, 2);
    assert!(err.contains("missing.json"), "{err}");

    std::fs::write(dir.0.join("not.json"), "{\"functions\": 3}").unwrap();
    let (code, _, err) = cli(&["show", "not.json"], &dir.0);
    assert_eq!(code, 2);
    assert!(err.contains("not.json is not an agentprof report"), "{err}");
}

#[test]
fn two_cpu_profiles_make_a_differential_flamegraph() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("profiles");
    for (name, ns) in [("before.pb.gz", 100_000_000), ("after.pb.gz", 150_000_000)] {
        let mut profiler = agentprof::cpu::CpuProfiler::with_frequency(250).unwrap();
        profiler.start().unwrap();
        let start = thread_cpu_ns();
        plan_route(ns);
        // Signals come as CPU is spent: wait for one that saw the burn.
        while agentprof::__test_hooks::this_thread_sampled_cpu_ns() < start + ns / 2 {
            burn(1_000_000);
        }
        let report = profiler.stop_and_collect().unwrap();
        std::fs::write(dir.0.join(name), report.pprof_gzip()).unwrap();
    }
    let (code, out, err) = cli(&["diff", "before.pb.gz", "after.pb.gz"], &dir.0);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("--output"), "{err}");
    let (code, out, err) = cli(
        &[
            "diff",
            "before.pb.gz",
            "after.pb.gz",
            "--output",
            "diff.svg",
        ],
        &dir.0,
    );
    assert_eq!(code, 0, "{out}{err}");
    let svg = std::fs::read_to_string(dir.0.join("diff.svg")).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("plan_route"),
        "{}",
        &svg[..200.min(svg.len())]
    );
    let (code, _, err) = cli(&["diff", "before.pb.gz", "diff.svg", "-o", "x.svg"], &dir.0);
    assert_eq!(code, 2);
    assert!(err.contains("diff.svg"), "{err}");
}
