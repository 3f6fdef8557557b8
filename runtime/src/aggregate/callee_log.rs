//! The log of drained calls that ran inside another, from which a kept
//! call's callee tree is built.
//!
//! Almost no call is kept, so nothing is built per call: a nested call is
//! written into a fixed ring of records (plain stores, no allocation) and
//! linked to its caller's previous callee through a map from caller id to
//! its last callee. When a call drains, it takes its own list out of that
//! map into its record; when it is kept, its tree is built by walking the
//! links. A link to a record the ring has since overwritten stops the walk,
//! and the calls it led to are counted as cut.
//!
//! The list most recently written stays out of the map: a thread's batch
//! drains a caller's callees one after another and the caller right after
//! them, so most nested calls find their caller's list there and the
//! caller takes it back without hashing.
//!
//! Bounded: [`LOG_RECORDS`] records of 104 bytes (1.6 MiB, taken when the
//! first nested call drains) and [`MAX_LISTS`] callers with callees not yet
//! drained.

use rustc_hash::FxHashMap;

use super::callee_tree::{Node, Subtree};
use super::row::{Call, Row};
use crate::model::Outcome;

/// Records in the log: a kept call's tree is whole when its callees drained
/// within the last this many nested calls.
pub(crate) const LOG_RECORDS: usize = 1 << 14;
/// Callers whose callees are listed while they run.
pub(crate) const MAX_LISTS: usize = 1 << 14;
/// Levels a tree is built down to.
const MAX_DEPTH: usize = 64;

const NONE: u64 = u64::MAX;

/// A caller's callees drained so far: the last one's record, and how many.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Callees {
    last: u64,
    count: u64,
}

/// A drained nested call. Absent figures are `NONE` (i64::MIN for the
/// signed one), so that a record stays 104 bytes.
#[derive(Clone, Copy, Debug)]
struct Record {
    /// Its position in the log, ever: a link is good while the slot still
    /// holds the record it pointed at.
    seq: u64,
    id: u64,
    row: &'static Row,
    start_ns: u64,
    wall_ns: u64,
    cpu_ns: u64,
    self_cpu_ns: u64,
    alloc_bytes: u64,
    retained_bytes: i64,
    /// The caller's callee drained before this one.
    previous_sibling: u64,
    /// Its own callees (`last` is `NONE` when it had none).
    callees: Callees,
    outcome: Outcome,
}

// The log's size in the docs holds.
const _: () = assert!(std::mem::size_of::<Record>() <= 104);

fn present(value: u64) -> Option<u64> {
    (value != NONE).then_some(value)
}

#[derive(Debug)]
pub(crate) struct CalleeLog {
    records: Vec<Record>,
    next_seq: u64,
    lists: FxHashMap<u64, Callees>,
    /// The caller whose list was written last, and that list (`last` is
    /// `NONE` when there is none); not in `lists`.
    open: (u64, Callees),
    /// Callees lost: overwritten before their caller was kept, or listed
    /// under callers dropped to keep the map bounded.
    pub(crate) dropped: u64,
}

const NO_LIST: Callees = Callees {
    last: NONE,
    count: 0,
};

impl Default for CalleeLog {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            next_seq: 0,
            lists: FxHashMap::default(),
            open: (0, NO_LIST),
            dropped: 0,
        }
    }
}

impl CalleeLog {
    /// Takes `call`'s own list of callees out of the log, when it had any.
    #[inline]
    pub(crate) fn take_callees(&mut self, call: &Call) -> Option<Callees> {
        if !call.had_callees {
            return None;
        }
        if self.open.1.last != NONE && self.open.0 == call.id {
            return Some(std::mem::replace(&mut self.open.1, NO_LIST));
        }
        if self.lists.is_empty() {
            return None;
        }
        self.lists.remove(&call.id)
    }

    /// Appends record `seq` to `caller`'s list; returns the record it
    /// follows. The list is the open one, or its entry in the map (one
    /// lookup), or a new list that becomes the open one, the previous open
    /// list going into the map. A caller whose callees drain interleaved
    /// with others' (a connection's handler among other connections') thus
    /// moves into the map once and costs one lookup per callee there, and
    /// a short caller whose callees drain together costs none.
    #[inline]
    fn append(&mut self, caller: u64, seq: u64) -> u64 {
        let append = |list: &mut Callees| {
            list.count += 1;
            std::mem::replace(&mut list.last, seq)
        };
        let open = self.open.1.last != NONE;
        if open && self.open.0 == caller {
            return append(&mut self.open.1);
        }
        if !self.lists.is_empty() {
            if let Some(list) = self.lists.get_mut(&caller) {
                return append(list);
            }
        }
        if open {
            let (previous, list) = std::mem::replace(&mut self.open, (caller, NO_LIST));
            if self.lists.len() >= MAX_LISTS {
                self.shed();
            }
            self.lists.insert(previous, list);
        } else {
            self.open = (caller, NO_LIST);
        }
        append(&mut self.open.1)
    }

    /// Logs `call` (whose own callees are `callees`) under its caller.
    pub(crate) fn log(&mut self, call: &Call, callees: Option<Callees>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let previous_sibling = self.append(call.parent_id, seq);
        let record = Record {
            seq,
            id: call.id,
            row: call.row,
            start_ns: call.end_ns.saturating_sub(call.wall_ns),
            wall_ns: call.wall_ns,
            cpu_ns: call.cpu_ns.unwrap_or(NONE),
            self_cpu_ns: call.self_cpu_ns.unwrap_or(NONE),
            alloc_bytes: call.memory.map_or(NONE, |m| m.alloc_bytes),
            retained_bytes: call.memory.map_or(i64::MIN, |m| m.retained_bytes),
            previous_sibling,
            callees: callees.unwrap_or(NO_LIST),
            outcome: call.outcome,
        };
        let slot = (seq % LOG_RECORDS as u64) as usize;
        if self.records.len() <= slot {
            if self.records.capacity() == 0 {
                self.records.reserve_exact(LOG_RECORDS);
            }
            self.records.push(record);
        } else {
            self.records[slot] = record;
        }
    }

    /// Drops the lists whose last callee the log no longer holds (their
    /// callers ran long, never finished, or finished before these callees
    /// drained), or the older half when that frees too little.
    fn shed(&mut self) {
        let oldest_held = self.next_seq.saturating_sub(LOG_RECORDS as u64);
        let mut cut = oldest_held;
        let stale = self.lists.values().filter(|l| l.last < cut).count();
        // Shedding too few would make the next insert shed again.
        if self.lists.len() - stale > MAX_LISTS / 2 {
            let mut lasts: Vec<u64> = self.lists.values().map(|l| l.last).collect();
            let middle = lasts.len() / 2;
            cut = *lasts.select_nth_unstable(middle).1;
        }
        let mut dropped = 0;
        self.lists.retain(|_, list| {
            let keep = list.last >= cut;
            if !keep {
                dropped += list.count;
            }
            keep
        });
        self.dropped += dropped;
    }

    fn record(&self, seq: u64) -> Option<&Record> {
        if seq == NONE {
            return None;
        }
        self.records
            .get((seq % LOG_RECORDS as u64) as usize)
            .filter(|r| r.seq == seq)
    }

    /// The callee tree of a call whose own list is `callees`: its children
    /// as a bounded subtree.
    pub(crate) fn subtree(&mut self, callees: Option<Callees>) -> Subtree {
        let (subtree, lost) = self.build(callees, 0);
        self.dropped += lost;
        subtree
    }

    fn build(&self, callees: Option<Callees>, depth: usize) -> (Subtree, u64) {
        let mut subtree = Subtree::default();
        let Some(callees) = callees else {
            return (subtree, 0);
        };
        let mut lost = 0;
        let mut found = 0;
        let mut seq = callees.last;
        while let Some(record) = self.record(seq) {
            found += 1;
            let (below, below_lost) = if depth + 1 < MAX_DEPTH {
                self.build(Some(record.callees), depth + 1)
            } else {
                let cut = Subtree {
                    cut_calls: record.callees.count,
                    ..Subtree::default()
                };
                (cut, 0)
            };
            lost += below_lost;
            subtree.add(Node::logged(
                record.row,
                record.id,
                record.start_ns,
                record.wall_ns,
                (present(record.cpu_ns), present(record.self_cpu_ns)),
                (
                    present(record.alloc_bytes),
                    (record.retained_bytes != i64::MIN).then_some(record.retained_bytes),
                ),
                record.outcome,
                below,
            ));
            seq = record.previous_sibling;
        }
        let missing = callees.count.saturating_sub(found);
        subtree.cut_calls += missing;
        (subtree, lost + missing)
    }

    /// Whether `id` has callees listed (drained while it runs).
    #[cfg(test)]
    pub(crate) fn lists_callees_of(&self, id: u64) -> bool {
        self.lists.contains_key(&id) || (self.open.0 == id && self.open.1.last != NONE)
    }

    /// Callers with listed callees.
    #[cfg(test)]
    pub(crate) fn lists(&self) -> usize {
        self.lists.len() + usize::from(self.open.1.last != NONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::row::test_row;

    fn nested(row: &'static Row, id: u64, parent: u64) -> Call {
        Call {
            parent_id: parent,
            agent_root: false,
            ..Call::test(row, id, 10)
        }
    }

    fn caller(row: &'static Row, id: u64, parent: u64) -> Call {
        Call {
            had_callees: true,
            ..nested(row, id, parent)
        }
    }

    fn children(log: &mut CalleeLog, callees: Option<Callees>) -> Vec<u64> {
        let subtree = log.subtree(callees);
        let mut ids: Vec<u64> = subtree.children.iter().map(|n| n.id).collect();
        ids.sort_unstable();
        ids
    }

    /// Callees of two callers drained interleaved, as two threads' batches
    /// or a caller and its callee's callees do: each caller gets exactly
    /// its own, whichever list was open when it drained.
    #[test]
    fn interleaved_callers_each_get_their_own_callees() {
        let row = test_row("log::interleaved");
        let mut log = CalleeLog::default();
        for (id, parent) in [(10, 1), (20, 2), (11, 1), (21, 2), (22, 2), (12, 1)] {
            let call = nested(row, id, parent);
            let own = log.take_callees(&call);
            log.log(&call, own);
        }
        assert_eq!(log.lists(), 2);
        // 2 drains while 1's list is open, then 1 while none is.
        let two = log.take_callees(&caller(row, 2, 0));
        assert_eq!(two.map(|c| c.count), Some(3));
        assert_eq!(children(&mut log, two), [20, 21, 22]);
        let one = log.take_callees(&caller(row, 1, 0));
        assert_eq!(one.map(|c| c.count), Some(3));
        assert_eq!(children(&mut log, one), [10, 11, 12]);
        assert_eq!(log.lists(), 0);
        assert!(log.take_callees(&caller(row, 1, 0)).is_none());
        assert_eq!(log.dropped, 0);
    }

    /// Long callers whose callees drain among short callers' (a
    /// connection's handler among its requests' callees): each caller gets
    /// exactly its own, and only the long ones wait in the map.
    #[test]
    fn long_callers_among_short_ones_keep_all_their_callees() {
        let row = test_row("log::long");
        let mut log = CalleeLog::default();
        let drain = |log: &mut CalleeLog, call: Call| {
            let own = log.take_callees(&call);
            log.log(&call, own);
            own
        };
        let mut next = 1_000;
        for _ in 0..50 {
            drain(&mut log, nested(row, next, 1));
            let short = next + 1;
            drain(&mut log, nested(row, next + 2, short));
            drain(&mut log, nested(row, next + 3, short));
            let own = drain(&mut log, caller(row, short, 2));
            assert_eq!(own.map(|c| c.count), Some(2));
            next += 4;
        }
        assert!(log.lists() <= 2, "{}", log.lists());
        for long in [1, 2] {
            let callees = log.take_callees(&caller(row, long, 0));
            assert_eq!(callees.map(|c| c.count), Some(50));
            let subtree = log.subtree(callees);
            let calls: u64 = subtree.children.iter().map(Node::total_calls).sum();
            assert_eq!(calls, if long == 1 { 50 } else { 150 });
            assert_eq!(subtree.cut_calls, 0);
        }
        assert_eq!(log.dropped, 0);
    }

    /// A caller that is itself a callee: its list is taken into its own
    /// record, and its caller's tree holds it with its callees.
    #[test]
    fn a_callee_with_callees_keeps_them_under_its_caller() {
        let row = test_row("log::depth");
        let mut log = CalleeLog::default();
        for call in [nested(row, 100, 10), caller(row, 10, 1), nested(row, 11, 1)] {
            let own = log.take_callees(&call);
            log.log(&call, own);
        }
        let root = log.take_callees(&caller(row, 1, 0));
        let subtree = log.subtree(root);
        let mut ids: Vec<(u64, Vec<u64>)> = subtree
            .children
            .iter()
            .map(|n| (n.id, n.children.iter().map(|c| c.id).collect()))
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, [(10, vec![100]), (11, vec![])]);
    }
}
