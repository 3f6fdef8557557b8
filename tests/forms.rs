//! Every form `#[profiled]` supports runs, keeps its behaviour, and records
//! one invocation per call under the right name and agent.

mod common;

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use agentprof::{profile, profiled, propagation::FutureExt};
use common::setup;

fn calls(suffix: &str) -> u64 {
    agentprof::report()
        .functions_named(suffix)
        .map(|r| r.calls)
        .sum()
}

fn agent_of(suffix: &str) -> Option<String> {
    agentprof::report()
        .functions_named(suffix)
        .next()
        .and_then(|r| r.agent.clone())
}

/// Doc comments and `#[must_use]` survive.
#[must_use]
#[profiled(agent = "forms")]
pub fn free_fn(a: u32, b: u32) -> u32 {
    a + b
}

struct Planner {
    steps: Vec<String>,
}

impl Planner {
    #[profiled(agent = "forms")]
    fn associated(n: usize) -> Self {
        Planner {
            steps: vec![String::new(); n],
        }
    }

    #[profiled(agent = "forms")]
    fn by_ref(&self) -> usize {
        self.steps.len()
    }

    #[profiled(agent = "forms")]
    fn by_mut(&mut self, step: &str) {
        self.steps.push(step.to_owned());
    }

    #[profiled(agent = "forms")]
    fn by_value(self) -> Vec<String> {
        self.steps
    }

    #[profiled(agent = "forms")]
    fn by_arc(self: Arc<Self>) -> usize {
        self.steps.len() * 2
    }

    #[profiled(agent = "forms")]
    async fn inherent_async(&self, extra: usize) -> usize {
        tokio::task::yield_now().await;
        self.steps.len() + extra
    }
}

#[profiled(agent = "forms")]
fn generic<'a, T, U: Clone>(items: &'a [T], extra: U) -> (&'a T, U)
where
    T: Display + 'a,
{
    (&items[0], extra.clone())
}

#[profiled(agent = "forms")]
fn impl_trait_arg(value: impl Display) -> String {
    value.to_string()
}

#[profiled(agent = "forms")]
fn impl_trait_return(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

/// # Safety
/// `p` must point at a valid `u32`.
#[profiled(agent = "forms")]
unsafe fn unsafe_fn(p: *const u32) -> u32 {
    // SAFETY: the caller promises `p` is valid.
    unsafe { *p }
}

#[profiled(agent = "forms")]
async fn free_async(x: u64) -> u64 {
    tokio::task::yield_now().await;
    x + 1
}

#[profiled(agent = "forms")]
fn returns_future(x: u64) -> impl Future<Output = Result<u64, String>> {
    let doubled = x * 2;
    async move {
        tokio::task::yield_now().await;
        if doubled > 100 {
            Err("too big".to_owned())
        } else {
            Ok(doubled)
        }
    }
}

trait Tool {
    async fn call(&self, input: &str) -> usize;
}

struct Search;

impl Tool for Search {
    #[profiled(agent = "forms")]
    async fn call(&self, input: &str) -> usize {
        tokio::task::yield_now().await;
        input.len()
    }
}

#[async_trait::async_trait]
trait BoxedTool {
    async fn run(&self, input: &str) -> Result<usize, String>;

    #[profiled(agent = "forms")]
    async fn provided(&self) -> usize {
        7
    }
}

struct Fetch;

#[async_trait::async_trait]
impl BoxedTool for Fetch {
    #[profiled(agent = "forms", name = "forms::Fetch::run")]
    async fn run(&self, input: &str) -> Result<usize, String> {
        tokio::task::yield_now().await;
        if input.is_empty() {
            return Err("empty".to_owned());
        }
        Ok(input.len())
    }
}

struct Other;

#[async_trait::async_trait]
impl BoxedTool for Other {
    #[allow(clippy::needless_return)]
    #[profiled(agent = "forms", name = "forms::Other::run")]
    #[inline(never)]
    async fn run(&self, input: &str) -> Result<usize, String> {
        return Ok(input.len() + 1);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_supported_form_records_its_calls() {
    setup();
    assert_eq!(free_fn(2, 3), 5);
    let mut planner = Planner::associated(2);
    assert_eq!(planner.by_ref(), 2);
    planner.by_mut("search");
    assert_eq!(planner.inherent_async(1).await, 4);
    let steps = planner.by_value();
    assert_eq!(Arc::new(Planner { steps }).by_arc(), 6);
    assert_eq!(generic(&[1, 2], "x"), (&1, "x"));
    assert_eq!(impl_trait_arg(42), "42");
    assert_eq!(impl_trait_return(3).sum::<u32>(), 3);
    // SAFETY: points at a live u32.
    assert_eq!(unsafe { unsafe_fn(&9) }, 9);
    assert_eq!(free_async(1).await, 2);
    assert_eq!(returns_future(4).await, Ok(8));
    assert!(returns_future(400).await.is_err());
    assert_eq!(Search.call("abc").await, 3);
    assert_eq!(Fetch.run("abcd").await, Ok(4));
    assert!(Fetch.run("").await.is_err());
    assert_eq!(Other.run("ab").await, Ok(3));
    assert_eq!(Fetch.provided().await, 7);

    for (suffix, expected) in [
        ("::free_fn", 1),
        ("::associated", 1),
        ("::by_ref", 1),
        ("::by_mut", 1),
        ("::by_value", 1),
        ("::by_arc", 1),
        ("::inherent_async", 1),
        ("::generic", 1),
        ("::impl_trait_arg", 1),
        ("::impl_trait_return", 1),
        ("::unsafe_fn", 1),
        ("::free_async", 1),
        ("::returns_future", 2),
        ("<forms::Search as Tool>::call", 1),
        ("forms::Fetch::run", 2),
        ("forms::Other::run", 1),
        ("::provided", 1),
    ] {
        assert_eq!(calls(suffix), expected, "calls of {suffix}");
        assert_eq!(
            agent_of(suffix).as_deref(),
            Some("forms"),
            "agent of {suffix}"
        );
    }
    let report = agentprof::report();
    let run = report.functions_named("forms::Fetch::run").next().unwrap();
    assert_eq!(
        run.errors, 1,
        "Err through Box::pin(async move ..) is an error outcome"
    );
    let fut = report.functions_named("::returns_future").next().unwrap();
    assert_eq!(
        fut.errors, 1,
        "Err from impl Future<Output = Result<..>> is an error outcome"
    );
    assert!(
        fut.polls >= 4,
        "the async block is what is measured: polls {}",
        fut.polls
    );
    let free = report.functions_named("::free_fn").next().unwrap();
    assert_eq!(free.function, format!("{}::free_fn", module_path!()));
}

#[tokio::test(flavor = "current_thread")]
async fn async_blocks_and_futures_are_profiled() {
    setup();
    let value = profile!(agent = "blocks", name = "blocks::summarize", async {
        tokio::task::yield_now().await;
        41 + 1
    })
    .await;
    assert_eq!(value, 42);
    let unnamed = profile!(async { 1 }).await;
    assert_eq!(unnamed, 1);
    let labelled = async { 5 }.profiled("blocks::labelled").await;
    assert_eq!(labelled, 5);

    let report = agentprof::report();
    let named = report
        .function(Some("blocks"), "blocks::summarize")
        .expect("named block");
    assert_eq!(named.calls, 1);
    assert!(named.polls >= 2);
    assert!(report.functions.iter().any(|r| r
        .function
        .starts_with(&format!("{}::{{async@", module_path!()))));
    assert_eq!(
        report.function(None, "blocks::labelled").map(|r| r.calls),
        Some(1)
    );
}

#[profiled(agent = "labels", labels(session = session, turn = turn * 10))]
fn labelled(session: &str, turn: u32) -> u64 {
    common::current_id()
}

#[test]
fn labels_are_evaluated_once_bounded_and_counted() {
    setup();
    let id = labelled("s-1", 3);
    let record = common::finished(id);
    assert_eq!(
        record.labels,
        vec![
            ("session".to_owned(), "s-1".to_owned()),
            ("turn".to_owned(), "30".to_owned())
        ]
    );

    let long = "x".repeat(1000);
    let id = labelled(&long, 1);
    let value = &common::finished(id).labels[0].1;
    assert_eq!(value.len(), 128, "values are cut to label_value_max_len");
    assert!(agentprof::report().dropped.label_values_truncated >= 1);
}
