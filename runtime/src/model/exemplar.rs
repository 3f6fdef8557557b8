//! Exemplars: the slowest invocations of each function, kept with their
//! callee tree.

use serde::{Deserialize, Serialize};

use super::report::Outcome;

/// Which ranking an exemplar was kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowestBy {
    /// Among its function's K calls of the window with the most CPU.
    Cpu,
    /// Among the K longest in wall time.
    Wall,
    /// Both.
    CpuAndWall,
}

impl SlowestBy {
    /// The name the JSON and the pages use.
    pub fn as_str(self) -> &'static str {
        match self {
            SlowestBy::Cpu => "cpu",
            SlowestBy::Wall => "wall",
            SlowestBy::CpuAndWall => "cpu_and_wall",
        }
    }
}

/// One of a function's slowest invocations, as its report row lists it.
/// [`invocation_detail`](crate::api::invocation_detail) returns the rest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exemplar {
    /// The invocation's id.
    pub id: u64,
    /// The window it was kept in (the continuous window's sequence; 0
    /// before the first window ends, or without windows).
    pub window: u64,
    /// What it was among the slowest by.
    pub slowest_by: SlowestBy,
    /// Its total thread CPU, ns.
    pub cpu_ns: Option<u64>,
    /// Its wall time, ns.
    pub wall_ns: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Instrumented invocations in its callee tree (direct and indirect).
    pub callees: u64,
}

/// A node of an exemplar's callee tree: one invocation, or several calls of
/// one function folded together when the tree grew past its bound.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalleeNode {
    /// Function label.
    pub function: String,
    /// Agent charged.
    pub agent: Option<String>,
    /// The invocation's id (`null`: several calls folded into this node).
    pub id: Option<u64>,
    /// Calls in this node.
    pub calls: u64,
    /// Of them, those that did not end `ok`.
    pub errors: u64,
    /// How the call ended (for a folded node: `ok` unless one did not).
    pub outcome: Outcome,
    /// When its first call started, ns after the exemplar started.
    pub start_offset_ns: u64,
    /// Wall time, ns, summed over its calls.
    pub wall_ns: u64,
    /// Total thread CPU, ns (callees included), summed over its calls.
    pub cpu_ns: Option<u64>,
    /// Own thread CPU, ns.
    pub self_cpu_ns: Option<u64>,
    /// Bytes allocated, callees included (`null` without the allocator).
    pub alloc_bytes: Option<u64>,
    /// Allocated minus freed at the end.
    pub retained_bytes: Option<i64>,
    /// Calls below this node left out of the tree to keep it bounded
    /// (their figures are in this node's totals).
    pub cut_calls: u64,
    /// The invocations it made, by start time.
    pub children: Vec<CalleeNode>,
}

impl CalleeNode {
    /// This node and every node below it, depth first.
    pub fn walk(&self) -> Vec<&CalleeNode> {
        let mut all = vec![self];
        for child in &self.children {
            all.extend(child.walk());
        }
        all
    }

    /// The nodes of `function` (a label, or its tail such as `::search`)
    /// anywhere in the tree.
    pub fn find(&self, function: &str) -> Vec<&CalleeNode> {
        self.walk()
            .into_iter()
            .filter(|n| n.function == function || n.function.ends_with(function))
            .collect()
    }
}
