//! One exemplar, all the way down: its figures, its callee tree and its
//! own CPU profile.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::aggregate::exemplars::{self, Eviction, Lookup};
use crate::cpu::{exemplar_samples, CpuReport};
use crate::error::{Error, Result};
use crate::model::{CalleeNode, InvocationRecord, SlowestBy};
use crate::thread::clock;

/// One of the slowest invocations of a function, kept with what it called
/// and what it ran: from [`invocation_detail`].
#[derive(Clone, Debug, Serialize)]
pub struct InvocationDetail {
    /// Its figures, as the ring of recent invocations has them.
    pub invocation: InvocationRecord,
    /// OpenTelemetry ids of its span (hex), when it had them.
    pub span_id: Option<String>,
    /// OpenTelemetry trace id (hex).
    pub trace_id: Option<String>,
    /// When it started and ended, ns since the Unix epoch.
    pub start_unix_ns: u64,
    /// When it ended.
    pub end_unix_ns: u64,
    /// The window it was kept in.
    pub window: u64,
    /// What it was among the slowest by.
    pub slowest_by: SlowestBy,
    /// Its callee tree, rooted at itself.
    pub tree: CalleeNode,
    /// Whether the tree was folded or cut to stay bounded (then folded
    /// nodes have no id, and cut calls are counted on their caller).
    pub tree_folded: bool,
    /// Descendants whose ids (and so their CPU samples) were not kept.
    pub descendant_ids_dropped: u64,
    /// CPU samples kept of it and its descendants (0 when no CPU sampler
    /// ran while it did).
    pub profile_samples: u64,
    /// CPU time those samples stand for, ns.
    pub profile_cpu_ns: u64,
    /// Those samples: [`CpuReport::flamegraph_svg`], [`CpuReport::pprof`].
    /// `None` when no CPU sampler has run.
    #[serde(skip)]
    pub profile: Option<CpuReport>,
}

impl InvocationDetail {
    /// The detail as compact JSON (the profile as its totals).
    pub fn to_json(&self) -> Result<String> {
        crate::model::to_json(self)
    }
}

/// Monotonic ns to Unix ns, by the two clocks' readings now.
fn unix_ns(monotonic_ns: u64) -> u64 {
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now_unix.saturating_sub(clock::monotonic_ns().saturating_sub(monotonic_ns))
}

/// One of the slowest invocations by id, while it is kept: its figures,
/// callee tree and CPU profile.
///
/// Each function's report row lists its exemplars
/// ([`FunctionRow::exemplars`](crate::model::FunctionRow::exemplars)); the
/// live endpoint serves the same at `/debug/agentprof/invocations/{id}`.
/// An id that is not kept gets [`Error::InvocationNotKept`] saying whether
/// it was evicted (and why) or never was an exemplar.
pub fn invocation_detail(id: u64) -> Result<InvocationDetail> {
    detail(id, true)
}

/// Its figures and tree only, for a page that shows no flamegraph of it:
/// its samples are not gathered.
pub(crate) fn invocation_figures(id: u64) -> Result<InvocationDetail> {
    detail(id, false)
}

fn detail(id: u64, with_profile: bool) -> Result<InvocationDetail> {
    let not_kept = |why: String| Error::InvocationNotKept { id, why };
    if !crate::built_in::RECORDING {
        return Err(not_kept(
            "is not kept: this build of agentprof records nothing (its `enabled` feature is off)"
                .to_owned(),
        ));
    }
    let kept = match exemplars::lookup(id) {
        Lookup::Kept(kept) => kept,
        Lookup::Evicted {
            function,
            agent,
            window,
            why,
        } => {
            let of = match agent {
                Some(agent) => format!("`{function}` ({agent})"),
                None => format!("`{function}`"),
            };
            let why = match why {
                Eviction::Replaced => "slower calls of the same function replaced it",
                Eviction::Aged => "its window is older than the windows kept (`telemetry.profiling.attribution.exemplar_windows`)",
                Eviction::OverBudget => "the store of exemplars was full and its window was the oldest",
            };
            return Err(not_kept(format!(
                "was kept as one of the slowest calls of {of} in window {window} and evicted: {why}"
            )));
        }
        Lookup::NotKept if !exemplars::enabled() => {
            return Err(not_kept(
                "is not kept: exemplars are off (`telemetry.profiling.attribution.exemplars_per_function` = 0)".to_owned(),
            ))
        }
        Lookup::NotKept => {
            let seen = crate::aggregate::invocation(id).is_some();
            return Err(not_kept(if seen {
                "is not kept: it finished, but was not among its function's slowest calls of its window (its figures: `report::invocation`)".to_owned()
            } else {
                "is not known: it is running, was never among its function's slowest calls, or its record is gone".to_owned()
            }));
        }
    };
    let start_unix_ns = unix_ns(kept.end_ns.saturating_sub(kept.record.wall_ns));
    let duration = Duration::from_nanos(kept.record.wall_ns);
    let profile = with_profile
        .then(|| {
            exemplar_samples::profile(
                id,
                &kept.descendants,
                UNIX_EPOCH + Duration::from_nanos(start_unix_ns),
                duration,
            )
        })
        .flatten();
    Ok(InvocationDetail {
        span_id: (kept.span_id != 0).then(|| format!("{:016x}", kept.span_id)),
        trace_id: (kept.trace_id != 0).then(|| format!("{:032x}", kept.trace_id)),
        start_unix_ns,
        end_unix_ns: start_unix_ns + kept.record.wall_ns,
        window: kept.window,
        slowest_by: kept.slowest_by,
        tree: kept.tree,
        tree_folded: kept.folded,
        descendant_ids_dropped: kept.descendants_dropped,
        profile_samples: profile.as_ref().map_or(0, CpuReport::sample_count),
        profile_cpu_ns: profile.as_ref().map_or(0, CpuReport::total_cpu_ns),
        profile,
        invocation: kept.record,
    })
}
