//! The key metrics through the `metrics` facade, rendered by the real
//! Prometheus exporter and checked as Prometheus text format.

mod common;

use agentprof::profiled;
use metrics_exporter_prometheus::PrometheusBuilder;

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

#[profiled(agent = "metered", labels(session = session))]
fn metered(session: &str) -> usize {
    let buffer = vec![0u8; 10_000];
    common::burn_cpu_ns(1_000_000);
    buffer.len() + session.len()
}

/// One `name{labels} value` line.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses Prometheus text exposition: `# HELP`/`# TYPE` comments and
/// `name{label="value",...} number` samples.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split_whitespace().next().unwrap();
            assert!(kind == "HELP" || kind == "TYPE", "bad comment: {line}");
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair
                            .split_once("=\"")
                            .unwrap_or_else(|| panic!("bad label: {line}"));
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, Vec::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {name}"
        );
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

#[test]
fn key_metrics_render_as_prometheus_text_with_names_and_labels() {
    common::setup();
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("first recorder in this binary");
    for session in ["s-1", "s-2", "s-1"] {
        metered(session);
    }
    agentprof::export::publish_metrics();
    let text = handle.render();
    let samples = parse(&text);
    let find = |name: &str, label: Option<(&str, &str)>| {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && label.is_none_or(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .unwrap_or_else(|| panic!("{name} {label:?} missing from:\n{text}"))
            .value
    };
    assert!(find("cpu_time_micros", Some(("agent", "metered"))) >= 3_000.0);
    assert!(find("resource_cpu_per_agent", Some(("agent", "metered"))) >= 3_000.0);
    assert!(find("resource_memory_per_agent", Some(("agent", "metered"))) >= 30_000.0);
    assert!(find("resource_memory_per_session", Some(("session", "s-1"))) >= 20_000.0);
    assert!(find("resource_memory_per_session", Some(("session", "s-2"))) >= 10_000.0);
    assert!(find("resource_invocation_overhead", None) > 0.0);
    assert!(find("memory_allocated_bytes", None) >= 30_000.0);
    assert!(find("memory_current_bytes", None) > 0.0);
    assert!(find("memory_peak_bytes", None) >= find("memory_current_bytes", None));
    assert!(find("memory_allocations_count", None) >= 3.0);
    assert!(find("memory_rss_bytes", None) > 1e6);
    find("cpu_profile_samples", None);
}
