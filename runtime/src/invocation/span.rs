//! `tracing` integration: the fields an invocation records on its span.
//!
//! The span itself is built by the code `#[profiled]` generates, so that its
//! callsite is the user's function and a subscriber's filters apply to it;
//! here we only record values. With no subscriber the span is disabled and
//! every `record` returns at its first check.

use std::sync::OnceLock;

use tracing::field::{Field, Value};
use tracing::{Metadata, Span};

use crate::aggregate::{Labels, MemoryUsage};
use crate::model::Outcome;

pub(crate) fn record_labels(span: &Span, labels: &Labels) {
    for (key, value) in labels.iter() {
        span.record(key, value);
    }
}

/// What an invocation cost, as its span reports it.
pub(crate) struct Finished<'a> {
    pub(crate) cpu_ns: Option<u64>,
    pub(crate) wall_ns: u64,
    pub(crate) polls: u64,
    pub(crate) memory: Option<&'a MemoryUsage>,
    pub(crate) outcome: Outcome,
    /// Kept as one of its function's slowest invocations of the window.
    pub(crate) exemplar: bool,
}

/// The names of the fields an invocation records when it ends, in the order
/// of [`FinishFields::fields`].
const FINISH_FIELDS: [&str; 8] = [
    "resource.cpu.micros",
    "resource.wall.micros",
    "resource.polls",
    "resource.memory.bytes",
    "resource.memory.peak",
    "resource.memory.allocations",
    "outcome",
    "agentprof.exemplar",
];

/// A span callsite's handles to [`FINISH_FIELDS`], so that ending an
/// invocation records them in one dispatch to the subscriber without
/// looking each name up in the field set.
#[derive(Debug)]
pub(crate) struct FinishFields {
    metadata: &'static Metadata<'static>,
    /// `None` when the span lacks one of them (a span built elsewhere):
    /// then each field it has is recorded by name.
    fields: Option<[Field; 8]>,
}

impl FinishFields {
    fn of(metadata: &'static Metadata<'static>) -> Self {
        let set = metadata.fields();
        let found: Vec<Field> = FINISH_FIELDS.iter().filter_map(|n| set.field(*n)).collect();
        Self {
            metadata,
            fields: found.try_into().ok(),
        }
    }
}

/// Records what the invocation cost on its span: one `record` carrying
/// every field, through handles `cache` keeps for the span's callsite.
pub(crate) fn record_finish(span: &Span, finished: &Finished<'_>, cache: &OnceLock<FinishFields>) {
    if span.is_disabled() {
        return;
    }
    let Some(metadata) = span.metadata() else {
        return;
    };
    let cached = cache.get_or_init(|| FinishFields::of(metadata));
    match &cached.fields {
        Some(fields) if std::ptr::eq(cached.metadata, metadata) => {
            record_finish_at_once(span, metadata, fields, finished)
        }
        _ => record_finish_by_name(span, finished),
    }
}

fn record_finish_at_once(
    span: &Span,
    metadata: &'static Metadata<'static>,
    [cpu, wall, polls, bytes, peak, allocations, outcome, exemplar]: &[Field; 8],
    finished: &Finished<'_>,
) {
    let cpu_micros = finished.cpu_ns.map(|ns| ns / 1_000);
    let wall_micros = finished.wall_ns / 1_000;
    let memory = finished.memory;
    let memory_bytes = memory.map(|m| m.alloc_bytes);
    let memory_peak = memory.map(|m| m.peak_bytes);
    let memory_allocations = memory.map(|m| m.allocs);
    let outcome_name = finished.outcome.as_str();
    let values = [
        (cpu, present(&cpu_micros)),
        (wall, Some(&wall_micros as &dyn Value)),
        (polls, Some(&finished.polls as &dyn Value)),
        (bytes, present(&memory_bytes)),
        (peak, present(&memory_peak)),
        (allocations, present(&memory_allocations)),
        (outcome, Some(&outcome_name as &dyn Value)),
        (exemplar, finished.exemplar.then_some(&true as &dyn Value)),
    ];
    span.record_all(&metadata.fields().value_set(&values));
}

fn present(value: &Option<u64>) -> Option<&dyn Value> {
    value.as_ref().map(|v| v as &dyn Value)
}

fn record_finish_by_name(span: &Span, finished: &Finished<'_>) {
    if let Some(cpu) = finished.cpu_ns {
        span.record("resource.cpu.micros", cpu / 1_000);
    }
    span.record("resource.wall.micros", finished.wall_ns / 1_000);
    span.record("resource.polls", finished.polls);
    if let Some(memory) = finished.memory {
        span.record("resource.memory.bytes", memory.alloc_bytes);
        span.record("resource.memory.peak", memory.peak_bytes);
        span.record("resource.memory.allocations", memory.allocs);
    }
    span.record("outcome", finished.outcome.as_str());
    if finished.exemplar {
        span.record("agentprof.exemplar", true);
    }
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
