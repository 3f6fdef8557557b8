//! `tracing` integration: the fields an invocation records on its span.
//!
//! The span itself is built by the code `#[profiled]` generates, so that its
//! callsite is the user's function and a subscriber's filters apply to it;
//! here we only record values. With no subscriber the span is disabled and
//! every `record` returns at its first check.

use tracing::Span;

use crate::aggregate::{Call, Labels};

pub(crate) fn record_labels(span: &Span, labels: &Labels) {
    for (key, value) in labels.iter() {
        span.record(key, value);
    }
}

pub(crate) fn record_finish(span: &Span, finished: &Call) {
    if span.is_disabled() {
        return;
    }
    if let Some(cpu) = finished.cpu_ns {
        span.record("resource.cpu.micros", cpu / 1_000);
    }
    span.record("resource.wall.micros", finished.wall_ns / 1_000);
    span.record("resource.polls", finished.polls);
    if let Some(memory) = &finished.memory {
        span.record("resource.memory.bytes", memory.alloc_bytes);
        span.record("resource.memory.peak", memory.peak_bytes);
        span.record("resource.memory.allocations", memory.allocs);
    }
    span.record("outcome", finished.outcome.as_str());
}

/// The OpenTelemetry (trace id, span id) of an invocation's span, when
/// tracing-opentelemetry gave it one; the span also gets the attribute
/// `pyroscope.profile.id` = its span id, as Grafana's traces-to-profiles
/// expects. (0, 0) otherwise.
#[cfg(feature = "opentelemetry")]
pub(crate) fn otel_ids(span: &Span) -> (u128, u64) {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if span.is_disabled() {
        return (0, 0);
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if !span_context.is_valid() {
        return (0, 0);
    }
    let span_id = u64::from_be_bytes(span_context.span_id().to_bytes());
    let trace_id = u128::from_be_bytes(span_context.trace_id().to_bytes());
    span.set_attribute("pyroscope.profile.id", format!("{span_id:016x}"));
    (trace_id, span_id)
}

#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn otel_ids(_span: &Span) -> (u128, u64) {
    (0, 0)
}
