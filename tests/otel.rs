//! Trace-to-profile correlation with the real OpenTelemetry SDK: CPU
//! samples taken inside an invocation carry its span's OpenTelemetry span
//! and trace ids, and the exported span carries `pyroscope.profile.id`.

mod common;

use agentprof::{cpu::CpuProfiler, profiled};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;

#[profiled(agent = "traced-agent")]
fn traced_work() -> u64 {
    common::burn_cpu_ns(300_000_000)
}

#[test]
fn samples_carry_the_otel_span_and_trace_ids_of_their_span() {
    common::setup();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("agentprof-test");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));

    let mut profiler = CpuProfiler::with_frequency(250).unwrap();
    profiler.start().unwrap();
    tracing::subscriber::with_default(subscriber, || {
        traced_work();
    });
    let report = profiler.stop_and_collect().unwrap();
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let span = spans
        .iter()
        .find(|s| s.name == "traced_work")
        .expect("the invocation's span was exported");
    let profile_id = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "pyroscope.profile.id")
        .map(|kv| kv.value.as_str().into_owned())
        .expect("pyroscope.profile.id attribute");
    let span_id = format!(
        "{:016x}",
        u64::from_be_bytes(span.span_context.span_id().to_bytes())
    );
    let trace_id = format!(
        "{:032x}",
        u128::from_be_bytes(span.span_context.trace_id().to_bytes())
    );
    assert_eq!(profile_id, span_id);

    let pprof = report.pprof();
    let inside: Vec<_> = pprof
        .sample
        .iter()
        .filter(|s| pprof.label(s, "agent") == Some("traced-agent"))
        .collect();
    assert!(inside.len() > 5, "{} samples inside the span", inside.len());
    for sample in &inside {
        assert_eq!(pprof.label(sample, "span_id"), Some(span_id.as_str()));
        assert_eq!(pprof.label(sample, "trace_id"), Some(trace_id.as_str()));
    }
}
