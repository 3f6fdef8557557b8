//! The runtime API as an application's `main` would use it. Built without
//! agentprof's `enabled` feature it must compile unchanged and run as
//! no-ops; the opt-out test runs it and reads what it prints.

fn main() {
    let mut config = agentprof::Config::default();
    config.telemetry.profiling.enabled = true;
    agentprof::init(&config).expect("a valid configuration");
    let running = agentprof::Profiler::from_config(&config)
        .and_then(agentprof::Profiler::start)
        .expect("starting does nothing");
    let cpu = agentprof::CpuProfiler::with_frequency(100);
    if let Ok(mut cpu) = cpu {
        let _ = cpu.start();
        let _ = cpu.stop_and_collect().map(|report| report.sample_count());
    }
    let heap = agentprof::HeapProfiler::running().map(|h| h.snapshot().to_pprof_gzip());
    let spawned = agentprof::spawn_thread(|| 7).join().unwrap();
    let report = agentprof::report();
    let summary = running.shutdown();
    println!(
        "cpu_refused={} heap_absent={} spawned={spawned} functions={} windows={} enabled={}",
        agentprof::CpuProfiler::with_frequency(100).is_err(),
        heap.is_none(),
        report.functions.len(),
        summary.stats.windows,
        agentprof::is_enabled()
    );
}
