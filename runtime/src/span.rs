//! `tracing` integration: the fields an invocation records on its span.
//!
//! The span itself is built by the code `#[profiled]` generates, so that its
//! callsite is the user's function and a subscriber's filters apply to it;
//! here we only record values. With no subscriber the span is disabled and
//! every `record` returns at its first check.

use tracing::Span;

use crate::invocation::Finished;
use crate::labels::Labels;

pub(crate) fn record_labels(span: &Span, labels: &Labels) {
    for (key, value) in labels.iter() {
        span.record(key, value);
    }
}

pub(crate) fn record_finish(span: &Span, finished: &Finished<'_>) {
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
