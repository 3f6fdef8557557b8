//! The HTML report, rendered by headless Chromium: the tables with the
//! agents, the flamegraphs with their agent selector, the memory chart; no
//! script error, nothing fetched from the network. Chromium is the reader
//! (`AGENTPROF_REQUIRE_CHROMIUM=1`, as CI sets it, makes its absence a
//! failure; elsewhere the browser checks are skipped with a note).

mod common;

use std::path::Path;
use std::time::Duration;

use agentprof::{
    cpu::CpuProfiler, heap::HeapProfiler, heap::HeapProfilerConfig, profiled, report::HtmlReport,
};

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

#[profiled(agent = "planner")]
fn plan_route() -> u64 {
    let steps: Vec<u64> = (0..2000).collect();
    common::burn_cpu_ns(3_000_000) + steps.len() as u64
}

#[profiled(agent = "researcher")]
fn read_sources() -> u64 {
    let pages = vec![vec![0u8; 8192]; 16];
    common::burn_cpu_ns(6_000_000) + pages.len() as u64
}

#[test]
fn the_html_report_renders_tables_flamegraphs_and_the_memory_chart_offline() {
    common::setup();
    agentprof::memory::start_memory_timeline(Duration::from_millis(10), 1000).unwrap();
    let heap = HeapProfiler::start(HeapProfilerConfig {
        sample_interval: 4096,
        ..HeapProfilerConfig::default()
    })
    .unwrap();
    let mut cpu = CpuProfiler::with_frequency(500).unwrap();
    cpu.start().unwrap();
    for _ in 0..20 {
        plan_route();
        read_sources();
    }
    std::thread::sleep(Duration::from_millis(50));
    let cpu = cpu.stop_and_collect().unwrap();
    let report = agentprof::report();
    let html = HtmlReport::new(&report)
        .title("agentprof: html-report test")
        .fact("host", "test")
        .profiles(Some(&cpu), Some(&heap.snapshot()))
        .render();
    heap.stop();

    // Self-contained: nothing the page would fetch.
    for fetch in [
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
        "<link",
        "src=\"//",
    ] {
        assert!(!html.contains(fetch), "the page fetches something: {fetch}");
    }
    assert!(html.contains("data-agent=\"researcher\"") && html.contains("data-agent=\"all\""));

    let dir = common::TempDir::new("html-report");
    let page = dir.0.join("report.html");
    std::fs::write(&page, &html).unwrap();
    let plain = dir.0.join("plain.html");
    std::fs::write(&plain, report.to_html()).unwrap();
    let Some(browser) = common::chromium() else {
        return;
    };
    let url = |page: &Path| format!("file://{}", page.display());

    let (dom, log) = common::run_chromium(
        &browser,
        &dir.0.join("profile"),
        &url(&page),
        &["--dump-dom"],
    );
    for agent in ["planner", "researcher"] {
        assert!(
            dom.contains(&format!("<td class=\"text\">{agent}</td>")),
            "the agents table lists {agent}"
        );
    }
    assert!(dom.contains("::plan_route"), "the functions table");
    assert!(
        dom.contains("<select id=\"flame-agent\">"),
        "the agent selector"
    );
    assert!(
        dom.matches("<svg").count() >= 3,
        "flamegraphs and the chart"
    );
    assert!(
        dom.contains("id=\"memory-timeline\"") && dom.contains("<polyline"),
        "the memory chart"
    );
    // The selector's script ran: every flamegraph but the first is hidden.
    assert!(dom.contains("style=\"display: none;\""), "the script ran");
    assert!(
        !log.contains("Uncaught") && !log.contains("SyntaxError"),
        "script errors: {log}"
    );

    let (plain_dom, plain_log) = common::run_chromium(
        &browser,
        &dir.0.join("profile"),
        &url(&plain),
        &["--dump-dom"],
    );
    assert!(plain_dom.contains("<td class=\"text\">planner</td>"));
    assert!(!plain_log.contains("Uncaught"), "{plain_log}");

    // A screenshot, kept as a test artifact under target/.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("agentprof-report.png");
    let _ = std::fs::remove_file(&shot);
    common::run_chromium(
        &browser,
        &dir.0.join("profile"),
        &url(&page),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2200",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
}
