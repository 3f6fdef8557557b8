//! Per-thread batches of finished calls.
//!
//! Hot path: [`push`] runs once per finished invocation. It moves the call
//! into this thread's fixed ring with plain stores and one Release store of
//! the ring's head: no lock, no write to a cache line another thread
//! writes, no histogram work. The calls reach the shared rows and the
//! recent ring when the batch is drained: by its own thread when it is
//! full, by any reader before it reads (report, reset, recent invocations),
//! and by the thread when it exits. Reports therefore stay exact.
//!
//! The ring is single-producer; draining takes the batch's `drain` lock, so
//! the owner and readers never consume the same slots twice.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard};

use super::row::{lock, Call, Row, Stats};
use super::{exemplars, recent};

/// Calls a thread keeps before it drains them itself.
const SLOTS: usize = 64;

// Aligned: the owner writes `head` on every call, and batches of two
// threads must not share a cache line.
#[repr(align(128))]
struct Batch {
    slots: Box<[UnsafeCell<MaybeUninit<Call>>]>,
    /// Calls pushed, ever (only the owner writes it).
    head: AtomicUsize,
    /// Calls drained, ever (written under `drain`).
    tail: AtomicUsize,
    drain: Mutex<()>,
}

// SAFETY: slots in `tail..head` are written by the owner before it
// publishes `head` (Release) and read by a drainer after it loads `head`
// (Acquire), under the `drain` lock; the owner writes a slot only once a
// drainer has released it by storing `tail` (Release), which the owner loads
// (Acquire). `Call` is `Send`.
unsafe impl Sync for Batch {}
// SAFETY: as above; the batch owns its calls.
unsafe impl Send for Batch {}

impl Batch {
    fn new() -> Self {
        Self {
            slots: (0..SLOTS)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            drain: Mutex::new(()),
        }
    }

    /// Owner only. The call is built in its slot: no copy of it on the way
    /// in. `make` runs no user code (it would find the slot claimed).
    #[inline(always)]
    fn push_with(&self, make: impl FnOnce() -> Call) {
        let head = self.head.load(Relaxed);
        if head - self.tail.load(Acquire) == SLOTS {
            self.drain();
        }
        // SAFETY: only the owner writes slots, and this slot is free: the
        // ring holds fewer than SLOTS undrained calls (checked above, and
        // drainers only ever free slots).
        unsafe { (*self.slots[head % SLOTS].get()).write(make()) };
        self.head.store(head + 1, Release);
    }

    /// Moves every published call into the shared rows and recent ring.
    ///
    /// One lock of the recent ring for the whole batch, and one lock of a
    /// row's shard per run of calls of that row (always in that order).
    fn drain(&self) {
        let _drainer = lock(&self.drain);
        let tail = self.tail.load(Relaxed);
        let head = self.head.load(Acquire);
        if tail == head {
            return;
        }
        let mut ring = recent::lock_ring();
        let mut exemplars = exemplars::batch();
        // The row whose shard is locked, and how many of its calls this run
        // recorded (they stop counting as running together, at the run's
        // end, before the shard is released).
        let mut held: Option<(&'static Row, MutexGuard<'static, Stats>, usize)> = None;
        let release = |held: Option<(&'static Row, MutexGuard<'static, Stats>, usize)>| {
            if let Some((row, stats, calls)) = held {
                row.finished(calls);
                drop(stats);
            }
        };
        for index in tail..head {
            // SAFETY: slots in `tail..head` were published by the owner and
            // are consumed once: `tail` moves past each under this lock as
            // soon as it is moved out.
            let call = unsafe { (*self.slots[index % SLOTS].get()).assume_init_ref() };
            let row = call.row;
            if !held.as_ref().is_some_and(|(r, _, _)| std::ptr::eq(*r, row)) {
                // Release the previous row before taking the next: two
                // drains never hold two rows, so they cannot deadlock.
                release(held.take());
                held = Some((row, row.lock_stats(), 0));
            }
            if let Some((_, stats, calls)) = held.as_mut() {
                row.record_locked(stats, call);
                *calls += 1;
            }
            exemplars.offer(call);
            // SAFETY: the call is moved into the ring and its slot released
            // right after; it is not touched again here.
            unsafe { recent::push_moved(&mut ring, call) };
            self.tail.store(index + 1, Release);
        }
        release(held);
        drop(exemplars);
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // Calls never drained (none once the owner's exit drained them).
        let (tail, head) = (*self.tail.get_mut(), *self.head.get_mut());
        for index in tail..head {
            // SAFETY: published and never read; dropped once.
            unsafe { self.slots[index % SLOTS].get_mut().assume_init_drop() };
        }
    }
}

static BATCHES: Mutex<Vec<Arc<Batch>>> = Mutex::new(Vec::new());

/// This thread's batch; drained and unregistered when the thread exits.
struct Local(Arc<Batch>);

impl Local {
    fn new() -> Self {
        let batch = Arc::new(Batch::new());
        lock(&BATCHES).push(batch.clone());
        Self(batch)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.0.drain();
        lock(&BATCHES).retain(|b| !Arc::ptr_eq(b, &self.0));
    }
}

thread_local! {
    static LOCAL: Local = Local::new();
}

/// Hands the call `make` builds to this thread's batch (to the shared
/// stores directly while the thread is tearing down).
#[inline(always)]
pub(super) fn push_with(make: impl FnOnce() -> Call) {
    match LOCAL.try_with(|local| Arc::as_ptr(&local.0)) {
        // SAFETY: the batch is owned by this thread's `LOCAL`, which lives
        // until this thread exits, and this thread is running; `push_with`
        // is called only by the owner (this thread).
        Ok(batch) => unsafe { (*batch).push_with(make) },
        Err(_) => {
            let call = make();
            call.row.record(&call);
            recent::push(call);
        }
    }
}

/// Hands a finished call to this thread's batch.
#[cfg(test)]
pub(super) fn push(call: Call) {
    push_with(|| call);
}

#[cfg(test)]
impl Batch {
    fn push(&self, call: Call) {
        self.push_with(|| call);
    }
}

/// Drains every thread's batch, so that readers see every finished call.
pub(crate) fn drain_all() {
    let batches: Vec<Arc<Batch>> = lock(&BATCHES).clone();
    for batch in batches {
        batch.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::row::RowList;
    use crate::model::Outcome;

    fn row(function: &'static str) -> &'static Row {
        static LIST: RowList = RowList::new();
        LIST.row_for(|| function, Some(function), file!(), line!())
    }

    /// A call whose CPU and wall are `n`, so that sums reveal a call lost
    /// or drained twice.
    fn call(row: &'static Row, n: u64) -> Call {
        Call {
            row,
            id: n,
            parent_id: 0,
            agent_root: true,
            labels: None,
            outcome: Outcome::Ok,
            end_ns: n,
            wall_ns: n,
            self_wall_ns: n,
            cpu_ns: Some(n),
            self_cpu_ns: Some(n),
            polls: 1,
            memory: None,
            exemplar: false,
            had_callees: false,
        }
    }

    fn totals(row: &'static Row) -> (u64, u64, u64) {
        let (stats, _) = row.merged();
        (stats.calls, stats.cpu_ns, stats.wall_ns)
    }

    #[test]
    fn a_reader_draining_while_the_owner_pushes_records_each_call_once() {
        let row = row("batch::owner_and_reader");
        let batch = Arc::new(Batch::new());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (batch, stop) = (batch.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut drains = 0u64;
                while !stop.load(Acquire) {
                    batch.drain();
                    drains += 1;
                }
                drains
            })
        };
        const CALLS: u64 = 20_000;
        for n in 1..=CALLS {
            batch.push(call(row, n));
        }
        stop.store(true, Release);
        let drains = reader.join().unwrap();
        batch.drain();
        let sum = CALLS * (CALLS + 1) / 2;
        assert_eq!(totals(row), (CALLS, sum, sum), "after {drains} drains");
    }

    #[test]
    fn threads_pushing_and_a_reader_draining_all_lose_nothing() {
        let row = row("batch::threads");
        const THREADS: u64 = 4;
        const CALLS: u64 = 5_000;
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                std::thread::spawn(move || {
                    for n in 1..=CALLS {
                        push(call(row, t * CALLS + n));
                    }
                })
            })
            .collect();
        while !workers.iter().all(|w| w.is_finished()) {
            drain_all();
        }
        for worker in workers {
            worker.join().unwrap();
        }
        // Exited threads drained their own batches on the way out.
        drain_all();
        let all = THREADS * CALLS;
        let sum = all * (all + 1) / 2;
        assert_eq!(totals(row), (all, sum, sum));
    }

    #[test]
    fn a_full_batch_drains_itself_and_a_dropped_one_drops_what_it_holds() {
        let row = row("batch::full");
        let batch = Batch::new();
        let pushed = SLOTS as u64 + 6;
        for n in 1..=pushed {
            batch.push(call(row, n));
        }
        // The push that found the ring full drained the first SLOTS calls.
        let first = SLOTS as u64;
        assert_eq!(
            totals(row),
            (first, first * (first + 1) / 2, first * (first + 1) / 2)
        );
        assert_eq!(batch.head.load(Relaxed) - batch.tail.load(Relaxed), 6);
        // The other six are dropped with the batch, never recorded.
        drop(batch);
        assert_eq!(totals(row).0, first);
    }
}
