//! `ResourceAttribution`: the explicit API for code that cannot carry the
//! attribute, such as a runner that starts invocations from request data.
//!
//! Invocations started here are ordinary invocations (same frame, same
//! aggregates, same propagation), named by strings that arrive at run time.
//! They are scoped (a closure or a future) rather than start/end calls, so
//! the current-invocation slot cannot be left pointing at an ended frame.

use std::future::Future;

use crate::aggregate::{self, agent_name, Labels};
use crate::invocation::{
    current_context, explicit_callsite, output_never_failed, Callsite, ProfiledFuture, SpanMeta,
    SyncSlot,
};
use crate::model::{AgentResourceStats, ResourceContext, ResourceUsage};

/// Resource use per invocation and per agent, with invocations started
/// explicitly from run-time names.
///
/// ```
/// use agentprof::{attribution::ResourceAttribution, attribution::ResourceContext};
///
/// let attribution = ResourceAttribution::new();
/// // An agent named at run time, e.g. from a request.
/// let context = ResourceContext {
///     agent_name: "support-bot".to_owned(),
///     session_id: Some("session-42".to_owned()),
///     ..ResourceContext::default()
/// };
/// let (answer, usage) = attribution.run(&context, || "42".parse::<u32>());
/// assert_eq!(answer?, 42);
/// let usage = usage.expect("the invocation's figures");
/// println!("{} µs of CPU", usage.cpu_micros.unwrap_or(0));
/// assert!(attribution
///     .agent_stats()
///     .iter()
///     .any(|(agent, _)| agent == "support-bot"));
/// # Ok::<(), std::num::ParseIntError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ResourceAttribution {
    _private: (),
}

impl ResourceAttribution {
    /// A handle on the process-wide attribution.
    pub fn new() -> Self {
        Self { _private: () }
    }

    fn frame_parts(ctx: &ResourceContext) -> (&'static Callsite, Option<Labels>) {
        let agent = agent_name(&ctx.agent_name);
        let callsite = explicit_callsite(agent);
        let labels = ctx
            .session_id
            .as_ref()
            .map(|s| Labels::new(&[("session", s as &dyn std::fmt::Display)]));
        (callsite, labels)
    }

    /// Runs `f` as an invocation for `ctx` and returns what it cost.
    pub fn run<R>(
        &self,
        ctx: &ResourceContext,
        f: impl FnOnce() -> R,
    ) -> (R, Option<ResourceUsage>) {
        if !crate::built_in::RECORDING {
            return (f(), None);
        }
        let (callsite, labels) = Self::frame_parts(ctx);
        let mut slot = SyncSlot::new();
        let guard = slot.enter(callsite, || labels, |_| tracing::Span::none());
        let id = current_context().invocation_id();
        let out = f();
        drop(guard);
        (out, id.and_then(|id| self.get_usage(id)))
    }

    /// Runs `future` as an invocation for `ctx` and returns what it cost.
    pub async fn run_future<F: Future>(
        &self,
        ctx: &ResourceContext,
        future: F,
    ) -> (F::Output, Option<ResourceUsage>) {
        if !crate::built_in::RECORDING {
            return (future.await, None);
        }
        let (callsite, labels) = Self::frame_parts(ctx);
        let tracked = async move {
            let id = current_context().invocation_id();
            (future.await, id)
        };
        let (out, id) = ProfiledFuture::new(
            tracked,
            callsite,
            labels,
            |_: &SpanMeta| tracing::Span::none(),
            output_never_failed,
        )
        .await;
        (out, id.and_then(|id| self.get_usage(id)))
    }

    /// Usage of a finished invocation still in the recent-invocations ring.
    pub fn get_usage(&self, invocation_id: u64) -> Option<ResourceUsage> {
        aggregate::invocation(invocation_id)
            .as_ref()
            .map(ResourceUsage::from)
    }

    /// Per-agent totals and averages (`"(none)"` for work outside any agent).
    pub fn agent_stats(&self) -> Vec<(String, AgentResourceStats)> {
        super::report()
            .agents
            .into_iter()
            .map(|a| {
                let stats = AgentResourceStats {
                    active_invocations: a.active,
                    invocations: a.calls,
                    total_cpu_micros: a.cpu_ns.map(|ns| ns / 1_000),
                    total_wall_micros: a.wall_ns / 1_000,
                    avg_cpu_micros: a.avg_cpu_ns.map(|ns| ns / 1_000),
                    avg_wall_micros: a.avg_wall_ns / 1_000,
                };
                (a.agent.unwrap_or_else(|| "(none)".to_owned()), stats)
            })
            .collect()
    }
}
