//! The stores that finished (and running) invocations feed: one row per
//! (function, agent) with counters and histograms, and a bounded ring of
//! recent invocations. Plain data structures: nothing here knows about
//! frames, profilers or reports. The invocation layer hands each finished
//! call over as a [`Call`]; the report layer reads the rows back.
//!
//! Every store is bounded: rows by count and size (overflowing into one row
//! per agent, extra shards within a byte budget), label values by length
//! and count per key, the ring by its capacity.

mod batch;
mod callee_log;
mod callee_tree;
pub(crate) mod exemplars;
mod histogram;
mod labels;
mod recent;
mod row;

pub(crate) use histogram::{add as add_histogram, quantile};
pub use labels::Labels;
pub(crate) use labels::{agent_name, configure_labels, label_counters, reset_labels};
pub(crate) use recent::{clear_recent, recent_evicted, set_recent_capacity};
pub use recent::{invocation, recent_invocations};
pub(crate) use row::{
    owner_keys, rows, rows_overflowed, same_agent, Call, ExemplarIds, Lifetime, MemoryUsage, Row,
    RowList, Stats,
};

pub(crate) use batch::drain_all;

/// Records the finished invocation `make` builds: into this thread's
/// batch, where it is built in place and from which it reaches its row and
/// the recent ring.
#[inline(always)]
pub(crate) fn finish_with(make: impl FnOnce() -> Call) {
    batch::push_with(make);
}
