//! Invocations run inside `tracing` spans carrying their figures, as seen by
//! a real `tracing-subscriber` layer.

mod common;

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use agentprof::profiled;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[derive(Clone, Debug, Default)]
struct CapturedSpan {
    name: String,
    fields: BTreeMap<String, String>,
    events: Vec<String>,
    /// `on_record` calls the span got.
    records: usize,
    closed: bool,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<CapturedSpan>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut span = CapturedSpan {
            name: attrs.metadata().name().to_owned(),
            ..Default::default()
        };
        attrs.record(&mut Fields(&mut span.fields));
        let mut spans = self.0.lock().unwrap();
        let index = spans.len();
        spans.push(span);
        drop(spans);
        let _ = (id, index);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let name = span.name();
        let mut spans = self.0.lock().unwrap();
        if let Some(captured) = spans.iter_mut().rev().find(|s| s.name == name && !s.closed) {
            values.record(&mut Fields(&mut captured.fields));
            captured.records += 1;
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(current) = ctx.lookup_current() else {
            return;
        };
        let mut message = BTreeMap::new();
        event.record(&mut Fields(&mut message));
        let mut spans = self.0.lock().unwrap();
        if let Some(captured) = spans
            .iter_mut()
            .rev()
            .find(|s| s.name == current.name() && !s.closed)
        {
            captured
                .events
                .push(message.get("message").cloned().unwrap_or_default());
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let mut spans = self.0.lock().unwrap();
        if let Some(captured) = spans
            .iter_mut()
            .rev()
            .find(|s| s.name == span.name() && !s.closed)
        {
            captured.closed = true;
        }
    }
}

#[profiled(agent = "traced", labels(session = session))]
async fn traced_step(session: &str) -> Result<u64, String> {
    tracing::info!("inside the step");
    tokio::task::yield_now().await;
    common::burn_cpu_ns(3_000_000);
    let buffer = vec![0u8; 100_000];
    std::hint::black_box(&buffer);
    tracing::info!("after the await");
    Ok(common::current_id())
}

#[profiled(agent = "traced", span = false)]
fn untraced() -> u64 {
    tracing::info!("no span of ours");
    common::current_id()
}

#[profiled(agent = "traced")]
fn traced_failure() -> Result<(), String> {
    Err("nope".to_owned())
}

#[test]
fn spans_carry_agent_invocation_and_resource_fields() {
    common::setup();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (id, untraced_id) = tracing::subscriber::with_default(subscriber, || {
        let id = runtime.block_on(traced_step("s-42")).unwrap();
        let untraced_id = untraced();
        let _ = traced_failure();
        (id, untraced_id)
    });
    let spans = capture.0.lock().unwrap().clone();
    let step = spans
        .iter()
        .find(|s| s.name == "traced_step")
        .expect("a span named after the fn");
    let record = common::finished(id);
    assert_eq!(step.fields.get("agent").map(String::as_str), Some("traced"));
    assert_eq!(step.fields.get("invocation_id"), Some(&id.to_string()));
    assert_eq!(step.fields.get("session").map(String::as_str), Some("s-42"));
    assert_eq!(step.fields.get("outcome").map(String::as_str), Some("ok"));
    assert_eq!(
        step.fields.get("resource.polls"),
        Some(&record.polls.to_string())
    );
    assert_eq!(
        step.fields.get("resource.cpu.micros"),
        Some(&(record.cpu_ns.unwrap() / 1000).to_string())
    );
    assert_eq!(
        step.fields.get("resource.wall.micros"),
        Some(&(record.wall_ns / 1000).to_string())
    );
    assert!(record.cpu_ns.unwrap() >= 3_000_000);
    assert_eq!(
        step.fields.get("resource.memory.bytes"),
        Some(&record.alloc_bytes.unwrap().to_string())
    );
    assert_eq!(
        step.fields.get("resource.memory.peak"),
        Some(&record.peak_bytes.unwrap().to_string())
    );
    assert_eq!(
        step.fields.get("resource.memory.allocations"),
        Some(&record.allocs.unwrap().to_string())
    );
    assert!(record.peak_bytes.unwrap() >= 100_000);
    assert_eq!(
        step.events,
        vec!["inside the step", "after the await"],
        "every poll runs inside the span"
    );
    assert!(step.closed);

    assert!(
        !spans.iter().any(|s| s.name == "untraced"),
        "span = false creates no span"
    );
    assert!(
        common::finished(untraced_id).cpu_ns.is_some(),
        "but the invocation is still measured"
    );
    let failure = spans.iter().find(|s| s.name == "traced_failure").unwrap();
    assert_eq!(
        failure.fields.get("outcome").map(String::as_str),
        Some("error")
    );

    // The figures reach the subscriber in one dispatch at the end, not one
    // per field (and the label in one at the start).
    assert_eq!(failure.records, 1, "{failure:?}");
    assert!(failure.fields.contains_key("resource.wall.micros"));
    assert_eq!(step.records, 2, "the label, then the figures: {step:?}");
}

#[profiled(agent = "reentrant")]
fn audited(n: u64) -> u64 {
    n * 2
}

#[profiled(agent = "reentrant", name = "reentrant::audit")]
fn audit(n: u64) -> u64 {
    n + 1
}

/// Runs instrumented code from inside the subscriber while agentprof is
/// recording a span's figures.
struct Auditing;

impl<S: Subscriber> Layer<S> for Auditing {
    fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        values.record(&mut Fields(&mut fields));
        thread_local!(static AUDITING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        if fields.contains_key("resource.wall.micros") && !AUDITING.with(|a| a.replace(true)) {
            std::hint::black_box(audit(1));
            AUDITING.with(|a| a.set(false));
        }
    }
}

#[test]
fn a_subscriber_may_run_instrumented_code_while_a_call_finishes() {
    common::setup();
    let subscriber = tracing_subscriber::registry().with(Auditing);
    let calls = 300;
    tracing::subscriber::with_default(subscriber, || {
        for n in 0..calls {
            assert_eq!(audited(n), n * 2);
        }
    });
    let report = agentprof::report();
    let row = |name: &str| {
        report
            .functions
            .iter()
            .find(|f| f.function.ends_with(name))
            .unwrap_or_else(|| panic!("a row for {name}: {report}"))
            .calls
    };
    assert_eq!(row("::audited"), calls);
    // Every finish of `audited` ran one `audit` (whose own finish, nested,
    // does not run another).
    assert_eq!(row("reentrant::audit"), calls);
    let recent = agentprof::report::recent_invocations();
    assert!(recent
        .iter()
        .filter(|r| r.function.ends_with("::audited"))
        .all(|r| r.agent.as_deref() == Some("reentrant")
            && r.outcome == agentprof::report::Outcome::Ok));
}

#[profiled(agent = "kept")]
fn maybe_kept(ns: u64) -> u64 {
    common::burn_cpu_ns(ns);
    common::current_id()
}

#[test]
fn the_span_of_a_kept_slow_call_says_so_and_a_quick_one_does_not() {
    common::setup();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let (slow, quick) = tracing::subscriber::with_default(subscriber, || {
        let slow: Vec<u64> = (0..4).map(|_| maybe_kept(20_000_000)).collect();
        // Drained: the function's floor is now its fourth slowest call.
        let _ = agentprof::report();
        (slow, maybe_kept(0))
    });
    let spans = capture.0.lock().unwrap().clone();
    let field = |id: u64| {
        spans
            .iter()
            .find(|s| s.fields.get("invocation_id") == Some(&id.to_string()))
            .unwrap_or_else(|| panic!("no span of {id}"))
            .fields
            .get("agentprof.exemplar")
            .cloned()
    };
    for id in slow {
        assert_eq!(field(id).as_deref(), Some("true"));
        // Its id finds it, as a trace UI's span field would.
        assert!(agentprof::invocation_detail(id).is_ok());
    }
    assert_eq!(field(quick), None);
    assert!(agentprof::invocation_detail(quick).is_err());
}
