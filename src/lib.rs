//! agentprof shows where an agent service's CPU time and memory go: per
//! agent, per function, per invocation, linked to traces.
//!
//! ```
//! #[agentprof::profiled(agent = "planner")]
//! fn plan(goal: &str) -> Result<Vec<String>, String> {
//!     Ok(goal.split(' ').map(str::to_owned).collect())
//! }
//!
//! plan("find a flight").unwrap();
//! let report = agentprof::report();
//! let row = report.functions_named("::plan").next().unwrap();
//! assert_eq!(row.calls, 1);
//! assert_eq!(row.agent.as_deref(), Some("planner"));
//! println!("{report}");
//! ```
//!
//! # What is measured
//!
//! Every call of a `#[profiled]` function is an *invocation*. For each one
//! agentprof records wall time, thread CPU time summed over every poll (so an
//! async task that moves between tokio worker threads is charged for each
//! thread's share, and time spent suspended is not charged), the poll count,
//! the outcome (ok, error for functions returning `Result`, panicked, or
//! cancelled when a future is dropped first), its parent invocation, and
//! self and total figures: self excludes the instrumented calls it made.
//! Finished invocations go into per-(function, agent) aggregates with
//! latency and CPU percentiles ([`report()`]), a bounded ring of recent
//! invocations ([`report::recent_invocations`]) and, unless `span = false`,
//! the fields of a `tracing` span.
//!
//! # The attribute
//!
//! ```
//! # use std::fmt::Display;
//! #[agentprof::profiled(
//!     agent = "researcher",          // optional; default: the caller's agent
//!     name = "researcher::search",   // optional; default: the fn's path (module::Type::method)
//!     labels(session = session, k = top_k), // evaluated once per call
//!     span = false,                  // optional; default: a tracing span
//!     errors = false,                // optional; default: `Err` is an error
//! )]
//! async fn search(session: &str, top_k: usize) -> Vec<u32> {
//!     (0..top_k as u32).collect()
//! }
//! ```
//!
//! The `errors` column counts invocations that returned `Err` (functions
//! returning `Result`, sync or async). Where `Err` is ordinary control flow
//! (a parser's "need more bytes"), `errors = false` records it as `ok`;
//! panics and cancellations are counted either way.
//!
//! With `agent` absent an invocation inherits the agent of the invocation
//! it runs inside (a tool called by the planner is charged to the planner);
//! with no caller either, its agent is absent (`null` in JSON), not invented.
//!
//! An `async fn` is expanded to the same `async fn` whose body is a wrapped
//! future:
//!
//! ```ignore
//! async fn search(session: &str, top_k: usize) -> Vec<u32> {
//!     static __AGENTPROF_CALLSITE: Callsite = Callsite::new("researcher::search", Some("researcher"), file!(), line!());
//!     ProfiledFuture::new(async move { /* body */ }, &__AGENTPROF_CALLSITE, labels, span, output_never_failed).await
//! }
//! ```
//!
//! A sync fn keeps its body in place behind a stack guard: no closure, so
//! references borrowed through `&mut self` can be returned and
//! `#[track_caller]` reaches the body. In a fn returning `Result`, each
//! `return` reports its value to the guard on the way out, and an exit by
//! `?` (which can only carry an `Err`) counts as an error. A fn whose body ends in
//! an `async` block, or in `Box::pin(async move ..)` as `#[async_trait]`
//! writes it, has that future wrapped. Per call there is no allocation, no
//! hashing and no formatting unless `labels(...)` is used.
//!
//! Futures and async blocks: [`profile!`] and
//! [`propagation::FutureExt::profiled`]. Work handed to other tasks or
//! threads: [`spawn`], [`spawn_blocking`], [`spawn_thread`],
//! [`propagation::FutureExt::in_current_invocation`] and
//! [`propagation::Context`].
//!
//! # Where things are
//!
//! The root holds what a service calls: the attribute, [`report()`],
//! [`Profiler`] and its builder, [`init`] with a [`Config`], the
//! [`Allocator`], the spawn helpers and the runtime switch
//! ([`set_enabled`]). The rest is grouped by what it is for:
//!
//! | module | for |
//! |---|---|
//! | [`report`](mod@report) | the report's rows, recent and running invocations, HTML |
//! | [`cpu`] | the CPU sampler on its own: `CpuProfiler`, `CpuReport` |
//! | [`heap`] | the sampled heap profiler |
//! | [`memory`] | allocation totals, system memory, the memory timeline |
//! | [`attribution`] | explicit invocations with their usage read back |
//! | [`propagation`] | `Context`, `FutureExt`, carrying an invocation across tasks |
//! | [`export`] | the exporter trait, the file and Pyroscope exporters, metrics |
//! | `live` | the live endpoint (`http` feature) |
//! | `gcp` | the Cloud Profiler agent (`gcp` feature) |
//! | [`config`] | the configuration file's sections and the environment overrides |
//! | [`pprof`] | the profile.proto model, to read what agentprof writes |
//! | [`prelude`] | the attribute, `profile!` and `FutureExt` |
//!
//! # Features
//!
//! - `enabled` (default): record. Without it `#[profiled]` expands to the
//!   item exactly as written, `profile!` to its future, and every function
//!   here is a no-op (profilers refuse to start, reports are empty), so no
//!   `cfg` is needed in user code.
//! - `tokio` (default): [`spawn`] and [`spawn_blocking`].
//! - `pyroscope`: `export::PyroscopeExporter` (reqwest with rustls).
//! - `opentelemetry`: CPU samples labelled with the OpenTelemetry span and
//!   trace ids of their invocation's span; the span gets
//!   `pyroscope.profile.id`.
//! - `metrics`: the key metrics through the `metrics` facade
//!   (`export::publish_metrics`, and on every collector window).
//! - `http`: the live endpoint, `live::HttpServer` (`/debug/pprof/*` for
//!   `go tool pprof`, `/debug/agentprof/*` for a browser), hyper on a
//!   thread of its own.
//! - `gcp`: the Cloud Profiler agent, `gcp::GcpAgent` (reqwest with
//!   rustls, Google credentials through gcp_auth).
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Profiles every call of a function, method or `async fn`.
///
/// Arguments, all optional: `agent = "name"`, `name = "label"`,
/// `labels(key = expr, ..)`, `span = false`, `errors = false`. See the
/// [crate docs](crate).
///
/// ```
/// use agentprof::profiled;
///
/// struct Planner {
///     steps: usize,
/// }
///
/// impl Planner {
///     // A method: its row is named `module::Planner::plan`.
///     #[profiled(agent = "planner", labels(steps = self.steps))]
///     fn plan(&self, goal: &str) -> Result<Vec<String>, String> {
///         if goal.is_empty() {
///             return Err("no goal".to_owned()); // counted as an error
///         }
///         Ok(goal.split(' ').take(self.steps).map(str::to_owned).collect())
///     }
/// }
///
/// let planner = Planner { steps: 2 };
/// assert_eq!(planner.plan("book a flight").unwrap().len(), 2);
/// assert!(planner.plan("").is_err());
///
/// let report = agentprof::report();
/// let row = report
///     .functions
///     .iter()
///     .find(|f| f.function.ends_with("Planner::plan"))
///     .expect("a row for the method");
/// assert_eq!((row.calls, row.errors), (2, 1));
/// assert_eq!(row.agent.as_deref(), Some("planner"));
/// ```
pub use agentprof_macros::profiled;

/// Profiles a future or async block: `profile!(agent = "x", async { .. })`.
///
/// Takes the arguments of [`profiled`](macro@profiled), then the future.
/// Without `name` the function label is `module::{async@LINE}`.
pub use agentprof_macros::profile;

pub use agentprof_runtime::api::*;

/// What most code imports: `use agentprof::prelude::*;`.
pub mod prelude {
    pub use crate::propagation::FutureExt;
    pub use crate::{profile, profiled};
}

/// The README's examples, compiled (and the runnable ones run) as doctests,
/// so that what a user copies from it builds.
#[cfg(all(doctest, feature = "http", feature = "tokio"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[doc(hidden)]
#[cfg(feature = "enabled")]
pub mod __private {
    pub use agentprof_runtime::__private::*;
}

#[doc(hidden)]
#[cfg(feature = "enabled")]
pub mod __test_hooks {
    pub use agentprof_runtime::__test_hooks::*;
}
