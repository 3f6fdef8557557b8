//! The callee tree of one invocation: the instrumented invocations it made,
//! directly and through propagation to other tasks and threads.
//!
//! A kept call's tree is built from the callee log: each callee becomes a
//! [`Node`] in its caller's [`Subtree`], bottom-up. A tree stays exact up to
//! [`MAX_NODES`] nodes; past that, siblings of one function are folded into
//! one node (their counts and figures summed), and if that is not enough,
//! the deepest levels are cut (their calls stay in their ancestors' totals
//! and are counted on the node they were cut from).

use super::row::{Call, Row};
use crate::model::Outcome;

/// Nodes a tree keeps exactly, itself included.
pub(crate) const MAX_NODES: usize = 64;
/// Descendant ids a subtree remembers (to find their CPU samples).
pub(crate) const MAX_IDS: usize = 256;

/// One call, or several calls of one function folded together.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) row: &'static Row,
    /// The call's id; 0 when several calls were folded into the node.
    pub(crate) id: u64,
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    /// Earliest start among its calls, monotonic ns.
    pub(crate) start_ns: u64,
    pub(crate) outcome: Outcome,
    pub(crate) wall_ns: u64,
    pub(crate) cpu_ns: Option<u64>,
    pub(crate) self_cpu_ns: Option<u64>,
    pub(crate) alloc_bytes: Option<u64>,
    pub(crate) retained_bytes: Option<i64>,
    /// Calls below this node that were cut off to keep the tree bounded.
    pub(crate) cut_calls: u64,
    pub(crate) children: Vec<Node>,
    /// Ids of calls folded into this node or cut below it (up to
    /// [`MAX_IDS`]): their CPU samples still belong to the tree. Empty
    /// (no allocation) while the tree is exact.
    pub(crate) folded_ids: Vec<u64>,
}

/// Adds `ids` to `into`, up to [`MAX_IDS`].
fn add_ids(into: &mut Vec<u64>, ids: impl IntoIterator<Item = u64>) {
    for id in ids {
        if into.len() >= MAX_IDS {
            return;
        }
        into.push(id);
    }
}

fn add_opt<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, None) | (None, a) => a,
    }
}

impl Node {
    /// `call` with its callees.
    pub(crate) fn of(call: &Call, children: Subtree) -> Node {
        Node::logged(
            call.row,
            call.id,
            call.end_ns.saturating_sub(call.wall_ns),
            call.wall_ns,
            (call.cpu_ns, call.self_cpu_ns),
            (
                call.memory.map(|m| m.alloc_bytes),
                call.memory.map(|m| m.retained_bytes),
            ),
            call.outcome,
            children,
        )
    }

    /// A logged callee with its own callees.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn logged(
        row: &'static Row,
        id: u64,
        start_ns: u64,
        wall_ns: u64,
        (cpu_ns, self_cpu_ns): (Option<u64>, Option<u64>),
        (alloc_bytes, retained_bytes): (Option<u64>, Option<i64>),
        outcome: Outcome,
        children: Subtree,
    ) -> Node {
        let mut node = Node {
            row,
            id,
            calls: 1,
            errors: u64::from(outcome != Outcome::Ok),
            start_ns,
            outcome,
            wall_ns,
            cpu_ns,
            self_cpu_ns,
            alloc_bytes,
            retained_bytes,
            cut_calls: children.cut_calls,
            children: children.children,
            folded_ids: children.folded_ids,
        };
        node.sort();
        node
    }

    /// Ids of every call in this tree but itself (up to [`MAX_IDS`]).
    pub(crate) fn descendant_ids(&self) -> Vec<u64> {
        let mut ids = Vec::new();
        self.collect_ids(&mut ids, false);
        ids
    }

    /// This tree's ids, itself included: exact nodes' and folded ones.
    fn collect_ids(&self, into: &mut Vec<u64>, with_own: bool) {
        if with_own && self.id != 0 {
            add_ids(into, [self.id]);
        }
        add_ids(into, self.folded_ids.iter().copied());
        for child in &self.children {
            child.collect_ids(into, true);
        }
    }

    /// Nodes in this tree, itself included.
    pub(crate) fn size(&self) -> usize {
        1 + self.children.iter().map(Node::size).sum::<usize>()
    }

    /// Whether calls were folded or cut anywhere in this tree.
    pub(crate) fn is_folded(&self) -> bool {
        self.id == 0 || self.cut_calls > 0 || self.children.iter().any(Node::is_folded)
    }

    /// Calls in this tree, itself and cut calls included.
    pub(crate) fn total_calls(&self) -> u64 {
        self.calls + self.cut_calls + self.children.iter().map(Node::total_calls).sum::<u64>()
    }

    fn sort(&mut self) {
        self.children.sort_by_key(|c| c.start_ns);
    }

    /// Adds `other`, a node of the same function, into this one.
    fn absorb(&mut self, other: Node) {
        if self.id != 0 {
            add_ids(&mut self.folded_ids, [self.id]);
        }
        if other.id != 0 {
            add_ids(&mut self.folded_ids, [other.id]);
        }
        add_ids(&mut self.folded_ids, other.folded_ids);
        self.id = 0;
        self.calls += other.calls;
        self.errors += other.errors;
        self.start_ns = self.start_ns.min(other.start_ns);
        if other.outcome != Outcome::Ok {
            self.outcome = other.outcome;
        }
        self.wall_ns += other.wall_ns;
        self.cpu_ns = add_opt(self.cpu_ns, other.cpu_ns);
        self.self_cpu_ns = add_opt(self.self_cpu_ns, other.self_cpu_ns);
        self.alloc_bytes = add_opt(self.alloc_bytes, other.alloc_bytes);
        self.retained_bytes = add_opt(self.retained_bytes, other.retained_bytes);
        self.cut_calls += other.cut_calls;
        self.children.extend(other.children);
    }
}

/// Merges siblings of one function into one node, at every level.
fn fold_by_function(children: &mut Vec<Node>) {
    let mut folded: Vec<Node> = Vec::with_capacity(children.len());
    for child in children.drain(..) {
        match folded.iter_mut().find(|f| std::ptr::eq(f.row, child.row)) {
            Some(same) => same.absorb(child),
            None => folded.push(child),
        }
    }
    for node in &mut folded {
        fold_by_function(&mut node.children);
        node.sort();
    }
    *children = folded;
}

/// Cuts the levels below `depth`, counting their calls on the node above.
fn cut_below(children: &mut [Node], depth: usize) {
    for node in children {
        if depth <= 1 {
            node.cut_calls += node.children.iter().map(Node::total_calls).sum::<u64>();
            let mut ids = std::mem::take(&mut node.folded_ids);
            for child in &node.children {
                child.collect_ids(&mut ids, true);
            }
            node.folded_ids = ids;
            node.children = Vec::new();
        } else {
            cut_below(&mut node.children, depth - 1);
        }
    }
}

fn size_of(children: &[Node]) -> usize {
    children.iter().map(Node::size).sum()
}

fn depth_of(children: &[Node]) -> usize {
    children
        .iter()
        .map(|c| 1 + depth_of(&c.children))
        .max()
        .unwrap_or(0)
}

/// The callees of one call, bounded as they are added.
#[derive(Debug, Default)]
pub(crate) struct Subtree {
    pub(crate) children: Vec<Node>,
    /// Nodes in `children`, all levels.
    pub(crate) nodes: usize,
    /// Calls cut off below the call itself, and their ids.
    pub(crate) cut_calls: u64,
    pub(crate) folded_ids: Vec<u64>,
    /// Whether calls were folded or cut to keep it bounded.
    pub(crate) folded: bool,
}

impl Subtree {
    /// Adds a finished child, keeping the subtree within [`MAX_NODES`] - 1
    /// nodes. Returns the change in nodes.
    pub(crate) fn add(&mut self, child: Node) -> isize {
        let before = self.nodes;
        if self.folded {
            // Once folded, later calls of a folded function join it.
            if let Some(same) = self
                .children
                .iter_mut()
                .find(|c| c.id == 0 && std::ptr::eq(c.row, child.row))
            {
                same.absorb(child);
                fold_by_function(&mut same.children);
                self.nodes = size_of(&self.children);
                return self.nodes as isize - before as isize;
            }
        }
        self.nodes += child.size();
        self.children.push(child);
        if self.nodes >= MAX_NODES {
            self.folded = true;
            fold_by_function(&mut self.children);
            let mut depth = depth_of(&self.children);
            while size_of(&self.children) >= MAX_NODES && depth > 1 {
                depth -= 1;
                cut_below(&mut self.children, depth);
            }
            if size_of(&self.children) >= MAX_NODES {
                // One level of distinct functions, each folded already:
                // the smallest by CPU go into their caller's cut count.
                self.children
                    .sort_by_key(|c| std::cmp::Reverse(c.cpu_ns.unwrap_or(c.wall_ns)));
                for gone in self.children.drain(MAX_NODES - 2..) {
                    self.cut_calls += gone.total_calls();
                    gone.collect_ids(&mut self.folded_ids, true);
                }
                self.children.sort_by_key(|c| c.start_ns);
            }
            self.nodes = size_of(&self.children);
        }
        self.nodes as isize - before as isize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::row::test_row;

    fn call(row: &'static Row, id: u64, cpu: u64) -> Call {
        Call::test(row, id, cpu)
    }

    #[test]
    fn a_small_tree_stays_exact() {
        let (a, b) = (test_row("tree::a"), test_row("tree::b"));
        let mut subtree = Subtree::default();
        for id in 1..=3 {
            subtree.add(Node::of(&call(b, id, 10), Subtree::default()));
        }
        let root = Node::of(&call(a, 9, 100), subtree);
        assert_eq!(root.size(), 4);
        assert_eq!(
            root.children.iter().map(|c| c.id).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn a_large_tree_folds_by_function_and_keeps_totals() {
        let (a, b, c) = (
            test_row("tree::fold_a"),
            test_row("tree::fold_b"),
            test_row("tree::fold_c"),
        );
        let mut subtree = Subtree::default();
        for id in 0..200 {
            let row = if id % 2 == 0 { b } else { c };
            subtree.add(Node::of(&call(row, id + 1, 7), Subtree::default()));
        }
        let root = Node::of(&call(a, 1000, 5000), subtree);
        assert!(root.size() <= MAX_NODES, "{}", root.size());
        assert_eq!(root.total_calls(), 201);
        let b_node = root.children.iter().find(|n| std::ptr::eq(n.row, b));
        let b_node = b_node.expect("b folded into one node");
        assert_eq!(
            (b_node.id, b_node.calls, b_node.cpu_ns),
            (0, 100, Some(700))
        );
    }

    #[test]
    fn a_deep_tree_is_cut_and_counted() {
        let rows: Vec<&'static Row> = (0..100)
            .map(|i| test_row(Box::leak(format!("tree::deep_{i}").into_boxed_str())))
            .collect();
        // A chain 100 deep: each call has the previous one as its child.
        let mut below = Subtree::default();
        for (i, row) in rows.iter().enumerate() {
            let node = Node::of(&call(row, i as u64 + 1, 1), below);
            below = Subtree::default();
            below.add(node);
        }
        let root = Node::of(&call(test_row("tree::deep_root"), 500, 1), below);
        assert!(root.size() <= MAX_NODES, "{}", root.size());
        assert_eq!(root.total_calls(), 101);
    }
}
