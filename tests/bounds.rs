//! Stores that grow with traffic stay bounded, and what they cut is counted.
//! Runs with the default bounds (no `init`): a ring of 1024 invocations.

mod common;

use std::future::Future;

use agentprof::profiled;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("procfs");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[profiled(agent = "bounded")]
fn tiny(x: u64) -> u64 {
    x ^ 0x55
}

#[profiled(agent = "bounded")]
async fn tiny_async(x: u64) -> u64 {
    x ^ 0xaa
}

#[test]
fn a_million_invocations_grow_memory_by_at_most_a_few_mib() {
    // Warm up: first calls create the row, histograms and ring slots.
    for i in 0..10_000 {
        tiny(i);
    }
    let before = rss_bytes();
    for i in 0..1_000_000 {
        std::hint::black_box(tiny(std::hint::black_box(i)));
    }
    let cx = &mut std::task::Context::from_waker(std::task::Waker::noop());
    for i in 0..100_000 {
        let mut f = std::pin::pin!(tiny_async(i));
        assert!(f.as_mut().poll(cx).is_ready());
    }
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 4 << 20,
        "RSS grew by {grown} bytes over 1.1M invocations"
    );
    let report = agentprof::report();
    let row = report
        .function(Some("bounded"), &format!("{}::tiny", module_path!()))
        .unwrap();
    assert_eq!(row.calls, 1_010_000);
    assert!(agentprof::report::recent_invocations().len() <= 1024);
    assert!(report.dropped.recent_invocations_evicted >= 1_000_000);
}

#[profiled(agent = "bounded", labels(request = request))]
fn per_request(request: u32) {}

#[test]
fn distinct_label_values_per_key_are_capped_and_counted() {
    for request in 0..1_500 {
        per_request(request);
    }
    let report = agentprof::report();
    assert!(
        report.dropped.label_values_overflowed >= 500,
        "{:?}",
        report.dropped
    );
    let overflowed = agentprof::report::recent_invocations()
        .into_iter()
        .filter(|r| {
            r.labels
                .iter()
                .any(|(k, v)| k == "request" && v == "__overflow__")
        })
        .count();
    assert!(
        overflowed > 0,
        "values past the limit are replaced, not kept"
    );
}

#[profiled(agent = "schema")]
fn schema_probe(x: u64) -> u64 {
    x + 1
}

#[test]
fn without_the_allocator_memory_figures_are_absent_and_the_report_says_why() {
    schema_probe(2);
    let report = agentprof::report();
    assert!(report.memory.is_none());
    assert!(report
        .memory_note
        .as_deref()
        .unwrap()
        .contains("#[global_allocator]"));
    let row = report.functions_named("::schema_probe").next().unwrap();
    assert_eq!(
        (row.alloc_bytes, row.peak_bytes, row.retained_bytes),
        (None, None, None)
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert!(
        json["functions"][0]["alloc_bytes"].is_null(),
        "absent, not zero"
    );
    assert!(report.to_string().contains("#[global_allocator]"));
}

#[test]
fn report_json_has_the_stable_schema() {
    schema_probe(1);
    let json: serde_json::Value =
        serde_json::from_str(&agentprof::report().to_json().unwrap()).unwrap();
    assert_eq!(json["schema_version"], 2);
    let row = json["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["function"]
                .as_str()
                .is_some_and(|f| f.ends_with("::schema_probe"))
        })
        .unwrap();
    for key in [
        "agent",
        "function",
        "calls",
        "errors",
        "panics",
        "cancelled",
        "cpu_ns",
        "self_cpu_ns",
        "wall_ns",
        "wall_ns_p50",
        "wall_ns_p99",
        "cpu_ns_p99",
        "polls",
    ] {
        assert!(row.get(key).is_some(), "functions[].{key} missing");
    }
    assert!(row["cpu_ns"].as_u64().is_some());
    let agent = json["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "schema")
        .unwrap();
    for key in ["agent", "calls", "cpu_ns", "wall_ns"] {
        assert!(agent.get(key).is_some(), "agents[].{key} missing");
    }
}
