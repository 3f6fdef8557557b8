//! Exemplars: per (agent, function) row, the K slowest invocations of each
//! window by CPU and by wall, each kept with its callee tree.
//!
//! Whether a call is one is decided when it finishes, against its row's
//! floors (the K-th slowest kept so far this window): two loads on every
//! finish, so that its span can say so. Its tree is built when it drains,
//! from the [`CalleeLog`] its callees were written to as they drained (a
//! record and a map update per nested call; nothing is built for the calls
//! that are not kept). Callees drained after their kept caller (another
//! thread's batch drained later) join its tree then.
//!
//! Bounded: at most [`MAX_KEPT`] exemplars (the oldest window goes first),
//! [`MAX_NODES`] nodes and [`MAX_IDS`] descendant ids each; the log's own
//! bounds are in its module.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{LazyLock, Mutex, MutexGuard};

use rustc_hash::FxHashMap as HashMap;

use super::callee_log::CalleeLog;
use super::callee_tree::{Node, MAX_IDS, MAX_NODES};
use super::row::{lock, Call, ExemplarIds, Row};
use crate::model::{CalleeNode, Exemplar, InvocationRecord, SlowestBy};

/// Exemplars per row, window and ranking unless configured.
pub(crate) const DEFAULT_PER_FUNCTION: usize = 4;
/// Windows whose exemplars are kept unless configured.
pub(crate) const DEFAULT_WINDOWS: usize = 3;
/// Exemplars kept at most, all rows and windows together.
pub(crate) const MAX_KEPT: usize = 512;
/// Evicted exemplars remembered, to say so when one is asked for.
const EVICTED_REMEMBERED: usize = 4096;

static PER_FUNCTION: AtomicUsize = AtomicUsize::new(DEFAULT_PER_FUNCTION);
static WINDOWS: AtomicUsize = AtomicUsize::new(DEFAULT_WINDOWS);

/// A new row's floor: nothing passes when exemplars are off.
pub(crate) fn initial_floor() -> u64 {
    if PER_FUNCTION.load(Relaxed) == 0 {
        u64::MAX
    } else {
        0
    }
}

/// Trace ids of exemplars not drained yet, by invocation id (only calls
/// whose span had them; an exemplar is rare once its function's floor is
/// set). Bounded: past the cap, ids are not noted (the exemplar keeps
/// none).
static TRACE_IDS: Mutex<Vec<(u64, ExemplarIds)>> = Mutex::new(Vec::new());
const MAX_TRACE_IDS: usize = 4096;

/// Notes the trace ids of a call kept as an exemplar, for the store.
pub(crate) fn note_trace_ids(id: u64, ids: ExemplarIds) {
    let mut noted = lock(&TRACE_IDS);
    if noted.len() < MAX_TRACE_IDS {
        noted.push((id, ids));
    }
}

fn take_trace_ids(id: u64) -> ExemplarIds {
    let mut noted = lock(&TRACE_IDS);
    match noted.iter().position(|(i, _)| *i == id) {
        Some(at) => noted.swap_remove(at).1,
        None => ExemplarIds::default(),
    }
}

/// Whether exemplars are kept at all.
pub(crate) fn enabled() -> bool {
    PER_FUNCTION.load(Relaxed) > 0
}

/// An exemplar as the store keeps it.
#[derive(Debug)]
struct Kept {
    record: InvocationRecord,
    row: &'static Row,
    ids: ExemplarIds,
    end_ns: u64,
    window: u64,
    by_cpu: bool,
    by_wall: bool,
    tree: Node,
    folded: bool,
    /// Ids in its tree but its own (up to [`MAX_IDS`]).
    descendants: Vec<u64>,
}

/// One row's exemplars in one window, slowest first.
#[derive(Debug, Default)]
struct Ranking {
    by_cpu: Vec<(u64, u64)>,
    by_wall: Vec<(u64, u64)>,
}

#[derive(Debug)]
struct Window {
    sequence: u64,
    rows: HashMap<usize, (&'static Row, Ranking)>,
}

/// Why an exemplar is no longer kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// Slower calls of its function in the same window replaced it.
    Replaced,
    /// Its window is older than the windows kept.
    Aged,
    /// The store was over [`MAX_KEPT`].
    OverBudget,
}

#[derive(Debug)]
struct Evicted {
    id: u64,
    function: &'static str,
    agent: Option<&'static str>,
    window: u64,
    why: Eviction,
}

/// What the store knows of an invocation id.
#[derive(Debug)]
pub(crate) enum Lookup {
    Kept(Box<KeptView>),
    Evicted {
        function: &'static str,
        agent: Option<&'static str>,
        window: u64,
        why: Eviction,
    },
    NotKept,
}

/// A kept exemplar, copied out of the store.
#[derive(Debug)]
pub(crate) struct KeptView {
    pub(crate) record: InvocationRecord,
    pub(crate) span_id: u64,
    pub(crate) trace_id: u128,
    pub(crate) end_ns: u64,
    pub(crate) window: u64,
    pub(crate) slowest_by: SlowestBy,
    pub(crate) tree: CalleeNode,
    pub(crate) folded: bool,
    pub(crate) descendants: Vec<u64>,
    pub(crate) descendants_dropped: u64,
}

/// What the exemplar store had to leave out.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ExemplarCounters {
    pub(crate) evicted: u64,
    pub(crate) callees_dropped: u64,
    pub(crate) late_calls: u64,
}

#[derive(Debug, Default)]
struct Store {
    windows: VecDeque<Window>,
    kept: HashMap<u64, Kept>,
    /// Invocation id (an exemplar's or a descendant's) → the exemplars
    /// whose tree holds it.
    containing: HashMap<u64, Vec<u64>>,
    log: CalleeLog,
    evicted: VecDeque<Evicted>,
    counters: ExemplarCounters,
}

static STORE: LazyLock<Mutex<Store>> = LazyLock::new(Mutex::default);

/// The store for a batch of calls: locked when the first call that needs
/// it comes (after the recent ring's shard, and before a row's shard or
/// while one is held: nothing that holds the store takes either).
pub(crate) struct Batch {
    store: Option<MutexGuard<'static, Store>>,
    /// Read once per batch: with exemplars off, no call is looked at.
    enabled: bool,
}

pub(super) fn batch() -> Batch {
    Batch {
        store: None,
        enabled: enabled(),
    }
}

impl Batch {
    /// Takes a drained call: its node for its parent's tree, and it as an
    /// exemplar when it finished as one. A root call that ran nothing
    /// costs one branch.
    #[inline]
    pub(super) fn offer(&mut self, call: &Call) {
        if !self.enabled || (call.parent_id == 0 && !call.exemplar && !call.had_callees) {
            return;
        }
        self.store.get_or_insert_with(|| lock(&STORE)).offer(call);
    }
}

fn slowest_by(cpu: bool, wall: bool) -> SlowestBy {
    match (cpu, wall) {
        (true, true) => SlowestBy::CpuAndWall,
        (true, false) => SlowestBy::Cpu,
        _ => SlowestBy::Wall,
    }
}

/// Inserts `(value, id)` into `list` (slowest first, at most `k`): the id
/// that fell off, if one did; `Err` when `value` does not make the list.
fn rank(list: &mut Vec<(u64, u64)>, k: usize, value: u64, id: u64) -> Result<Option<u64>, ()> {
    if list.len() >= k && list.last().is_some_and(|(v, _)| *v >= value) {
        return Err(());
    }
    let at = list.partition_point(|(v, _)| *v >= value);
    list.insert(at, (value, id));
    Ok((list.len() > k)
        .then(|| list.pop().map(|(_, id)| id))
        .flatten())
}

fn floor(list: &[(u64, u64)], k: usize) -> u64 {
    if list.len() >= k {
        list[k - 1].0
    } else {
        0
    }
}

impl Store {
    fn offer(&mut self, call: &Call) {
        let callees = self.log.take_callees(call);
        // A callee drained after its caller was kept joins that tree
        // directly (another thread's batch drained later).
        let late_to: Option<Vec<u64>> = (call.parent_id != 0 && !self.containing.is_empty())
            .then(|| self.containing.get(&call.parent_id).cloned())
            .flatten();
        if !call.exemplar && late_to.is_none() {
            if call.parent_id != 0 {
                self.log.log(call, callees);
            }
            return;
        }
        let subtree = self.log.subtree(callees);
        let folded = subtree.folded;
        let node = Node::of(call, subtree);
        if call.exemplar {
            self.keep(call, take_trace_ids(call.id), &node, folded);
        }
        match late_to {
            Some(exemplars) => {
                self.counters.late_calls += 1;
                for exemplar in exemplars {
                    self.attach_late(exemplar, call.parent_id, node.clone());
                }
            }
            None if call.parent_id != 0 => self.log.log(call, callees),
            None => {}
        }
    }

    fn current_window(&mut self) -> &mut Window {
        if self.windows.is_empty() {
            self.windows.push_front(Window {
                sequence: 0,
                rows: HashMap::default(),
            });
        }
        &mut self.windows[0]
    }

    fn keep(&mut self, call: &Call, ids: ExemplarIds, node: &Node, folded: bool) {
        let k = PER_FUNCTION.load(Relaxed);
        if k == 0 {
            return;
        }
        let row = call.row;
        let window = self.current_window();
        let sequence = window.sequence;
        let (_, ranking) = window
            .rows
            .entry(row.owner.key())
            .or_insert_with(|| (row, Ranking::default()));
        let cpu = call
            .cpu_ns
            .and_then(|cpu| rank(&mut ranking.by_cpu, k, cpu, call.id).ok());
        let wall = rank(&mut ranking.by_wall, k, call.wall_ns, call.id).ok();
        row.set_exemplar_floor(
            if call.cpu_ns.is_some() {
                floor(&ranking.by_cpu, k)
            } else {
                0
            },
            floor(&ranking.by_wall, k),
        );
        let fell_off: Vec<(u64, bool)> = [cpu.flatten(), wall.flatten()]
            .into_iter()
            .zip([true, false])
            .filter_map(|(id, by_cpu)| id.map(|id| (id, by_cpu)))
            .collect();
        let still_ranked = |ranking: &Ranking, id: u64| {
            ranking.by_cpu.iter().any(|(_, i)| *i == id)
                || ranking.by_wall.iter().any(|(_, i)| *i == id)
        };
        let gone: Vec<u64> = fell_off
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id != call.id && !still_ranked(ranking, *id))
            .collect();
        for (id, by_cpu) in &fell_off {
            if let Some(k) = self.kept.get_mut(id) {
                if *by_cpu {
                    k.by_cpu = false;
                } else {
                    k.by_wall = false;
                }
            }
        }
        for id in gone {
            self.evict(id, Eviction::Replaced);
        }
        let (by_cpu, by_wall) = (cpu.is_some(), wall.is_some());
        if !by_cpu && !by_wall {
            // Its floor was passed when it finished, but slower calls of
            // the row drained first.
            self.remember_evicted(call.id, row, sequence, Eviction::Replaced);
            return;
        }
        let descendants = node.descendant_ids();
        for id in descendants.iter().chain([&call.id]) {
            self.containing.entry(*id).or_default().push(call.id);
        }
        self.kept.insert(
            call.id,
            Kept {
                record: super::recent::to_record(call),
                row,
                ids,
                end_ns: call.end_ns,
                window: sequence,
                by_cpu,
                by_wall,
                tree: node.clone(),
                folded,
                descendants,
            },
        );
        while self.kept.len() > MAX_KEPT {
            self.evict_oldest();
        }
    }

    /// A child that drained after its parent, a node of kept trees.
    fn attach_late(&mut self, exemplar: u64, parent: u64, node: Node) {
        let mut ids = node.descendant_ids();
        if node.id != 0 {
            ids.push(node.id);
        }
        let Some(kept) = self.kept.get_mut(&exemplar) else {
            return;
        };
        let mut attached = false;
        fn find(node: &mut Node, id: u64) -> Option<&mut Node> {
            if node.id == id {
                return Some(node);
            }
            node.children.iter_mut().find_map(|c| find(c, id))
        }
        let calls = node.total_calls();
        if kept.tree.size() + node.size() <= MAX_NODES {
            if let Some(at) = find(&mut kept.tree, parent) {
                at.children.push(node);
                at.children.sort_by_key(|c| c.start_ns);
                attached = true;
            }
        }
        if !attached {
            kept.tree.cut_calls += calls;
            kept.folded = true;
        }
        let room = MAX_IDS.saturating_sub(kept.descendants.len());
        let taken = ids.len().min(room);
        kept.descendants.extend_from_slice(&ids[..taken]);
        for id in &ids[..taken] {
            self.containing.entry(*id).or_default().push(exemplar);
        }
    }

    fn remember_evicted(&mut self, id: u64, row: &'static Row, window: u64, why: Eviction) {
        self.counters.evicted += 1;
        if self.evicted.len() == EVICTED_REMEMBERED {
            self.evicted.pop_front();
        }
        self.evicted.push_back(Evicted {
            id,
            function: row.owner.function,
            agent: row.owner.agent,
            window,
            why,
        });
    }

    fn evict(&mut self, id: u64, why: Eviction) {
        let Some(kept) = self.kept.remove(&id) else {
            return;
        };
        for member in kept.descendants.iter().chain([&id]) {
            if let Some(list) = self.containing.get_mut(member) {
                list.retain(|e| *e != id);
                if list.is_empty() {
                    self.containing.remove(member);
                }
            }
        }
        if why != Eviction::Replaced {
            for window in &mut self.windows {
                if let Some((_, ranking)) = window.rows.get_mut(&kept.row.owner.key()) {
                    ranking.by_cpu.retain(|(_, i)| *i != id);
                    ranking.by_wall.retain(|(_, i)| *i != id);
                }
            }
        }
        self.remember_evicted(id, kept.row, kept.window, why);
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .kept
            .iter()
            .min_by_key(|(id, k)| (k.window, k.end_ns, **id))
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.evict(id, Eviction::OverBudget);
        }
    }

    fn rotate(&mut self, sequence: u64) {
        if let Some(current) = self.windows.front() {
            for (row, _) in current.rows.values() {
                row.set_exemplar_floor(initial_floor(), initial_floor());
            }
        }
        self.windows.push_front(Window {
            sequence,
            rows: HashMap::default(),
        });
        let keep = WINDOWS.load(Relaxed).max(1);
        while self.windows.len() > keep {
            if let Some(old) = self.windows.pop_back() {
                let ids: Vec<u64> = old
                    .rows
                    .values()
                    .flat_map(|(_, r)| r.by_cpu.iter().chain(&r.by_wall).map(|(_, id)| *id))
                    .collect();
                for id in ids {
                    self.evict(id, Eviction::Aged);
                }
            }
        }
    }

    fn view(&self, id: u64, kept: &Kept) -> KeptView {
        KeptView {
            record: kept.record.clone(),
            span_id: kept.ids.span_id,
            trace_id: kept.ids.trace_id,
            end_ns: kept.end_ns,
            window: kept.window,
            slowest_by: slowest_by(kept.by_cpu, kept.by_wall),
            tree: public_tree(&kept.tree, kept.tree.start_ns),
            folded: kept.folded || kept.tree.is_folded(),
            descendants_dropped: kept
                .tree
                .total_calls()
                .saturating_sub(1 + kept.descendants.len() as u64),
            descendants: kept.descendants.iter().copied().chain([id]).collect(),
        }
    }
}

fn public_tree(node: &Node, origin: u64) -> CalleeNode {
    CalleeNode {
        function: node.row.owner.function.to_owned(),
        agent: node.row.owner.agent.map(str::to_owned),
        id: (node.id != 0).then_some(node.id),
        calls: node.calls,
        errors: node.errors,
        outcome: node.outcome,
        start_offset_ns: node.start_ns.saturating_sub(origin),
        wall_ns: node.wall_ns,
        cpu_ns: node.cpu_ns,
        self_cpu_ns: node.self_cpu_ns,
        alloc_bytes: node.alloc_bytes,
        retained_bytes: node.retained_bytes,
        cut_calls: node.cut_calls,
        children: node
            .children
            .iter()
            .map(|c| public_tree(c, origin))
            .collect(),
    }
}

/// Sets K (0 turns exemplars off) and the windows kept; existing rows'
/// floors follow.
pub(crate) fn configure(per_function: usize, windows: usize) {
    PER_FUNCTION.store(per_function, Relaxed);
    WINDOWS.store(windows.max(1), Relaxed);
    clear();
}

/// Starts window `sequence`: the next calls compete afresh; windows beyond
/// those kept are evicted.
pub(crate) fn rotate(sequence: u64) {
    lock(&STORE).rotate(sequence);
}

/// Forgets every exemplar, logged callee and counter.
pub(crate) fn clear() {
    *lock(&STORE) = Store::default();
    let floor = initial_floor();
    for row in super::row::rows() {
        row.set_exemplar_floor(floor, floor);
    }
}

/// The exemplars of `row` still kept, in every window kept, slowest first
/// (by the larger of wall and CPU).
pub(crate) fn of_row(row: &'static Row) -> Vec<Exemplar> {
    let store = lock(&STORE);
    let mut ids: Vec<u64> = store
        .windows
        .iter()
        .filter_map(|window| window.rows.get(&row.owner.key()))
        .flat_map(|(_, ranking)| ranking.by_wall.iter().chain(&ranking.by_cpu))
        .map(|(_, id)| *id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut exemplars: Vec<Exemplar> = ids
        .into_iter()
        .filter_map(|id| {
            let kept = store.kept.get(&id)?;
            Some(Exemplar {
                id,
                window: kept.window,
                slowest_by: slowest_by(kept.by_cpu, kept.by_wall),
                cpu_ns: kept.record.cpu_ns,
                wall_ns: kept.record.wall_ns,
                outcome: kept.record.outcome,
                callees: kept.tree.total_calls() - 1,
            })
        })
        .collect();
    // The slowest of the windows kept first: also the least likely to be
    // replaced while a reader follows its link.
    exemplars.sort_by_key(|e| std::cmp::Reverse(e.wall_ns.max(e.cpu_ns.unwrap_or(0))));
    exemplars
}

/// What the store knows of invocation `id`.
pub(crate) fn lookup(id: u64) -> Lookup {
    super::batch::drain_all();
    let store = lock(&STORE);
    if let Some(kept) = store.kept.get(&id) {
        return Lookup::Kept(Box::new(store.view(id, kept)));
    }
    match store.evicted.iter().rev().find(|e| e.id == id) {
        Some(e) => Lookup::Evicted {
            function: e.function,
            agent: e.agent,
            window: e.window,
            why: e.why,
        },
        None => Lookup::NotKept,
    }
}

/// The exemplars whose trees hold each of `invocations` (the ids CPU
/// samples carry), and which exemplars are kept at all.
pub(crate) fn containing(invocations: &[u64]) -> (Vec<Vec<u64>>, Vec<u64>) {
    let store = lock(&STORE);
    let found = invocations
        .iter()
        .map(|id| store.containing.get(id).cloned().unwrap_or_default())
        .collect();
    (found, store.kept.keys().copied().collect())
}

/// The store's counters.
pub(crate) fn counters() -> ExemplarCounters {
    let store = lock(&STORE);
    ExemplarCounters {
        callees_dropped: store.log.dropped,
        ..store.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::row::test_row;

    fn kept(row: &'static Row, id: u64, cpu: u64) -> Call {
        Call {
            exemplar: true,
            had_callees: true,
            ..Call::test(row, id, cpu)
        }
    }

    fn child(row: &'static Row, id: u64, parent: u64) -> Call {
        Call {
            parent_id: parent,
            agent_root: false,
            ..Call::test(row, id, 10)
        }
    }

    #[test]
    fn a_child_drained_after_its_kept_parent_joins_the_tree() {
        let (parent, callee) = (test_row("ex::late_parent"), test_row("ex::late_child"));
        let mut store = Store::default();
        store.offer(&child(callee, 2, 1));
        store.offer(&kept(parent, 1, 1000));
        // Drained late: another thread's batch.
        store.offer(&child(callee, 3, 1));
        let kept = &store.kept[&1];
        assert_eq!(
            kept.tree.children.iter().map(|c| c.id).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(store.containing[&3], [1]);
        assert_eq!(store.counters.late_calls, 1);
        assert!(!store.log.lists_callees_of(1));
    }

    #[test]
    fn old_windows_age_out_and_are_remembered_as_evicted() {
        let row = test_row("ex::aging");
        let mut store = Store::default();
        store.offer(&kept(row, 7, 500));
        for sequence in 1..=DEFAULT_WINDOWS as u64 {
            store.rotate(sequence);
        }
        assert!(store.kept.is_empty());
        assert!(store.containing.is_empty());
        let evicted = store.evicted.back().unwrap();
        assert_eq!((evicted.id, evicted.why), (7, Eviction::Aged));
    }

    #[test]
    fn a_slower_call_replaces_the_fastest_kept_one() {
        let row = test_row("ex::replace");
        let mut store = Store::default();
        for id in 1..=(DEFAULT_PER_FUNCTION as u64 + 1) {
            store.offer(&kept(row, id, id * 100));
        }
        assert_eq!(store.kept.len(), DEFAULT_PER_FUNCTION);
        assert!(!store.kept.contains_key(&1));
        assert_eq!(
            store.evicted.back().map(|e| e.why),
            Some(Eviction::Replaced)
        );
        // The row's floor is now the fourth slowest: 200 ns.
        assert!(!row.is_exemplar(Some(150), 150));
        assert!(row.is_exemplar(Some(250), 0));
    }

    #[test]
    fn callers_that_never_finish_stay_within_the_log_bounds() {
        use super::super::callee_log::{LOG_RECORDS, MAX_LISTS};
        let row = test_row("ex::orphans");
        let mut store = Store::default();
        // Callees of callers that never drain, more than the log holds.
        let calls = (MAX_LISTS + LOG_RECORDS) as u64;
        for id in 0..calls {
            store.offer(&child(row, 10_000_000 + id, 1 + id));
        }
        assert!(store.log.lists() <= MAX_LISTS);

        assert!(counters_of(&store).callees_dropped > 0);
        // A caller kept now finds what the log still holds, and counts the
        // rest as cut.
        let parent = 1 + calls - 1;
        store.offer(&kept(row, parent, 5_000));
        let tree = &store.kept[&parent].tree;
        assert_eq!(tree.total_calls(), 2, "{tree:?}");
    }

    fn counters_of(store: &Store) -> ExemplarCounters {
        ExemplarCounters {
            callees_dropped: store.log.dropped,
            ..store.counters
        }
    }
}
