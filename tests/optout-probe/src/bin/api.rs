//! Every public item of the facade, used as an application would. The
//! opt-out test builds this with and without agentprof's `enabled` feature:
//! both must compile unchanged (no `cfg` in user code), and it runs both,
//! reading what they print.

use std::future::Future;
use std::time::Duration;

use agentprof::export::{Payloads, ProfileExporter};
use agentprof::{
    attribution::AgentResourceStats, attribution::ResourceAttribution,
    attribution::ResourceContext, attribution::ResourceUsage, config::AttributionConfig,
    config::CpuProfilingConfig, config::ExporterType, config::HttpConfig,
    config::MemoryProfilingConfig, config::ProfileExporterConfig, config::ProfilingConfig,
    config::TelemetryConfig, cpu::CpuProfiler, cpu::CpuReport, cpu::CpuSample, cpu::TimerMode,
    export::CollectorStats, export::ShutdownSummary, heap::HeapDropped, heap::HeapGrowth,
    heap::HeapProfile, heap::HeapProfiler, heap::HeapProfilerConfig, heap::HeapStack,
    heap::DEFAULT_SAMPLE_INTERVAL, memory::MemoryStats, memory::MemoryTimelinePoint,
    memory::SystemMemoryInfo, memory::INSTALL_HINT, propagation::Context, propagation::FutureExt,
    propagation::InInvocation, propagation::ProfiledFuture, report::AgentRow, report::CalleeNode,
    report::Dropped, report::Exemplar, report::FunctionRow, report::HeapSite, report::HtmlReport,
    report::InvocationDetail, report::InvocationRecord, report::Outcome, report::Report,
    report::RunningFigures, report::RunningInvocation, report::SlowestBy, report::WindowAgentRow,
    report::WindowFigures, report::WindowFunctionRow, report::SCHEMA_VERSION, Config, Error,
    Profiler, ProfilerBuilder, RunningProfiler,
};

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

#[agentprof::profiled(agent = "probe")]
fn work(n: u64) -> agentprof::Result<u64> {
    Ok((0..n).sum())
}

/// Reads every field and method of a CPU profile (none exists opt-out).
fn read_cpu(report: &CpuReport) -> usize {
    let sample: Option<&CpuSample> = report.samples.first();
    let names = sample.map(|s| {
        (
            s.agent,
            s.function,
            s.invocation_id,
            s.span_id,
            s.trace_id,
            s.thread,
            s.count,
            s.cpu_ns,
        );
        s.function_names().len()
    });
    let _ = (
        report.requested_hz,
        report.period_ns,
        report.started_at,
        report.duration,
        report.mode == TimerMode::PerThread,
        report.modules,
        report.dropped_buffer_full,
        report.dropped_unwinder_busy,
        report.dropped_keys,
        report.sample_count(),
        report.total_cpu_ns(),
        report.delivered_hz(),
        report.cpu_by("agent"),
        report.filter_label("agent", "probe").folded(),
        report.pprof_gzip(),
        report.flamegraph_svg(),
        CpuReport::differential_flamegraph(report, report),
    );
    let profile: agentprof::pprof::Profile = report.pprof();
    profile.sample.len() + names.unwrap_or(0)
}

/// Reads every field and method of a heap snapshot (none exists opt-out).
fn read_heap(profile: &HeapProfile) -> usize {
    let stack: Option<&HeapStack> = profile.stacks.first();
    let names = stack.map(|s| {
        let _ = (
            s.agent,
            s.function,
            s.samples,
            s.alloc_estimate(),
            s.inuse_estimate(),
        );
        s.function_names().len()
    });
    let _ = (
        profile.sample_interval,
        profile.taken_at,
        profile.to_pprof_gzip(),
    );
    profile.to_pprof().sample.len() + names.unwrap_or(0)
}

fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

struct Sink;
impl ProfileExporter for Sink {}

fn main() {
    let mut config = Config {
        telemetry: TelemetryConfig {
            profiling: ProfilingConfig {
                enabled: true,
                cpu: CpuProfilingConfig::default(),
                memory: MemoryProfilingConfig::default(),
                exporter: ProfileExporterConfig::default(),
                attribution: AttributionConfig::default(),
                http: HttpConfig::default(),
            },
            ..TelemetryConfig::default()
        },
    };
    config.telemetry.profiling.exporter.type_ = ExporterType::File;
    // Cloud Profiler's keys exist in every build; the agent only with `gcp`.
    let mut gcp = ProfileExporterConfig {
        type_: ExporterType::Gcp,
        gcp_project_id: Some("my-project".to_owned()),
        gcp_service: Some("agents".to_owned()),
        gcp_service_version: Some("1".to_owned()),
        gcp_zone: Some("z".to_owned()),
        gcp_endpoint: Some("http://127.0.0.1:9".to_owned()),
        ..ProfileExporterConfig::default()
    };
    gcp.gcp_credentials_file = None;
    gcp.gcp_backoff_initial_ms = Some(1000);
    gcp.gcp_backoff_max_ms = Some(2000);
    assert_eq!(gcp.gcp_backoff(), (1000, 2000));
    let _ = Config::from_toml_str("[telemetry]\n").map(|c| c.recording());
    let overrides = agentprof::config::env_overrides().count();
    agentprof::init(&config).expect("a valid configuration");

    let _: Payloads = Sink.payloads().union(Payloads::ALL);
    let builder: ProfilerBuilder = Profiler::builder()
        .window(Duration::from_secs(60))
        .cpu_frequency(99)
        .heap_profiling(false)
        .heap_sample_interval(1 << 20)
        .heap_profiling(false)
        .queue_size(2)
        .shutdown_timeout(Duration::from_secs(1))
        .exporter(Sink);
    let running: RunningProfiler = builder.build().and_then(Profiler::start).expect("starting");
    let _: CollectorStats = running.stats();

    let mut cpu_refused = true;
    if let Ok(mut cpu) = CpuProfiler::new(CpuProfilingConfig::default()) {
        cpu_refused = false;
        let _ = (cpu.is_running(), cpu.mode(), CpuProfiler::reserved_bytes());
        if cpu.start().is_ok() {
            let _ = cpu.cut_window().map(|r| read_cpu(&r));
            let _ = cpu.stop_and_collect().map(|r| read_cpu(&r));
        }
        let _ = (cpu.flamegraph(), cpu.pprof());
    }
    let heap_config = HeapProfilerConfig {
        sample_interval: DEFAULT_SAMPLE_INTERVAL,
        ..HeapProfilerConfig::default()
    };
    let heap = HeapProfiler::start(heap_config).ok();
    let _: HeapDropped = HeapProfiler::dropped();
    let _ = (HeapProfiler::is_running(), HeapProfiler::reserved_bytes());
    if let Some(heap) = heap.or_else(HeapProfiler::running) {
        read_heap(&heap.snapshot());
        heap.stop();
    }
    let _ = agentprof::memory::start_memory_timeline(Duration::from_millis(10), 16);
    agentprof::memory::stop_memory_timeline();
    let _: Option<SystemMemoryInfo> = agentprof::memory::system_memory().ok();
    let _: Option<MemoryStats> = agentprof::memory::memory_stats();
    let _ = (agentprof::memory::allocator_installed(), INSTALL_HINT);

    let sum = work(10).expect("sum");
    let context: Context = agentprof::propagation::current_context();
    let _ = (context.is_empty(), context.invocation_id(), context.agent());
    let spawned = agentprof::spawn_thread(|| 7).join().unwrap() + context.in_scope(|| 1);
    let scoped: InInvocation<_> = context.scope(async { 1 });
    let labelled: ProfiledFuture<_> = async { 2 }.profiled("probe::future");
    let polled = poll_once(scoped).unwrap_or(0)
        + poll_once(labelled).unwrap_or(0)
        + poll_once(async { 3 }.in_current_invocation()).unwrap_or(0)
        + poll_once(agentprof::profile!(agent = "probe", async { 4 })).unwrap_or(0);

    let attribution = ResourceAttribution::new();
    let who = ResourceContext {
        agent_name: "probe".to_owned(),
        session_id: None,
    };
    let (_, usage): (u64, Option<ResourceUsage>) = attribution.run(&who, || 1);
    let _ = poll_once(attribution.run_future(&who, async { 1 }));
    let _: Option<ResourceUsage> = attribution.get_usage(0);
    let _: Vec<(String, AgentResourceStats)> = attribution.agent_stats();

    let report: Report = agentprof::report();
    let _: Option<&FunctionRow> = report.function(Some("probe"), "work");
    let _: Option<&AgentRow> = report.agent(Some("probe"));
    let _: &Dropped = &report.dropped;
    let _: &[HeapGrowth] = &report.heap_growth;
    let _: &[MemoryTimelinePoint] = &report.memory_timeline;
    let _ = (
        report.to_json(),
        report.to_json_pretty(),
        report.to_string(),
    );
    let _: String = report.to_html();
    let _: String = HtmlReport::new(&report)
        .title("probe")
        .fact("host", "probe")
        .flamegraph("all", b"<svg/>")
        .heap_sites(vec![HeapSite::default()])
        .render();
    let recent: Vec<InvocationRecord> = agentprof::report::recent_invocations();
    let outcome = recent.first().map(|r| r.outcome == Outcome::Ok);
    let _ = agentprof::report::invocation(0);
    let kept: Option<&Exemplar> = report.functions.iter().find_map(|f| f.exemplars.first());
    let detail: Option<agentprof::Result<InvocationDetail>> =
        kept.map(|e| agentprof::invocation_detail(e.id));
    let exemplar = matches!(detail, Some(Ok(_)));
    if let Some(Ok(detail)) = &detail {
        let _: (&CalleeNode, SlowestBy) = (&detail.tree, detail.slowest_by);
        let _ = (
            detail.to_html(),
            detail.to_json(),
            detail.profile.as_ref().map(CpuReport::sample_count),
            detail.tree.walk().len(),
            detail.tree.find("::work").len(),
        );
    }
    let not_kept = agentprof::invocation_detail(u64::MAX).is_err();
    let running_now: Vec<RunningInvocation> = agentprof::report::running_invocations();
    let _: Option<(u64, Option<u64>)> = running_now.first().map(|r| (r.wall_ns, r.cpu_ns));
    let _: &RunningFigures = &report
        .functions
        .first()
        .map(|f| f.running.clone())
        .unwrap_or_default();
    let _: Option<&WindowFigures> = report.window.as_ref();
    let _: Option<(&WindowFunctionRow, &WindowAgentRow)> = report
        .window
        .as_ref()
        .and_then(|w| w.functions.first().zip(w.agents.first()));
    let decoded = agentprof::pprof::Profile::decode(&[]).map(|p| p.sample.len());
    let error: Option<Error> = decoded.err();
    let was = agentprof::is_enabled();
    agentprof::set_enabled(was);
    agentprof::report::reset();
    let summary: ShutdownSummary = running.shutdown().expect("nothing to time out");
    println!(
        "enabled={was} cpu_refused={cpu_refused} sum={sum} spawned={spawned} polled={polled} \
         usage={} rows={} outcome={outcome:?} windows={} schema={SCHEMA_VERSION} overrides={overrides} \
         decode_error={} exemplar={exemplar} not_kept={not_kept}",
        usage.is_some(),
        report.functions.len(),
        summary.stats.windows,
        error.is_some(),
    );
}
