//! `AGENTPROF_PROFILING_ENABLED=false` wins over code: a service built with
//! `Profiler::builder()` records nothing, starts nothing, writes nothing,
//! and its report says why in one line. Its own process, since the switch
//! is read once.

mod common;

use agentprof::Profiler;

#[agentprof::profiled(agent = "planner")]
fn plan(goal: &str) -> usize {
    goal.len()
}

#[test]
fn the_environment_turns_profiling_off_for_a_service_built_in_code() {
    // Before anything is recorded: as an operator sets it at deploy time.
    std::env::set_var("AGENTPROF_PROFILING_ENABLED", "false");
    let dir = common::TempDir::new("kill-switch");
    let output = dir.0.join("profiles");
    let profiler = Profiler::builder()
        .heap_profiling(true)
        .file_exporter(output.to_string_lossy())
        .build()
        .unwrap()
        .start()
        .unwrap();
    for _ in 0..100 {
        plan("find a flight");
    }
    // Code cannot turn it back on against the environment.
    agentprof::set_enabled(true);
    plan("again");
    assert!(!agentprof::is_enabled());
    assert!(!agentprof::heap::HeapProfiler::is_running());
    let report = agentprof::report();
    assert!(report.functions.is_empty() && report.agents.is_empty());
    assert!(!report.recording);
    let table = report.to_string();
    assert_eq!(table.lines().count(), 1, "{table}");
    assert!(table.contains("recording is off"), "{table}");
    let summary = profiler.shutdown().unwrap();
    assert_eq!(summary.stats.windows, 0);
    assert!(!output.exists(), "nothing written");
}
