//! The invocations still running that a report can see: long-lived ones
//! only, found without touching the per-call path.
//!
//! A frame joins the registry at a transition that already happens and
//! that short calls never reach: an async invocation the first time it
//! returns `Pending` (it now lives across an await), any invocation when
//! an instrumented callee finishes after the caller has run for
//! [`LONG_RUNNING_NS`] (a sync loop or a CPU-bound future). It leaves when
//! it finishes, before its frame moves or is dropped, under the same lock
//! the readers hold, so a reader never sees a frame that is gone.
//!
//! The registry is bounded (65,536 frames); a frame that finds it full
//! is counted and stays invisible until it finishes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

use super::frame::Frame;
use crate::aggregate::{Labels, MemoryUsage, Row};
use crate::thread::clock;
use crate::thread::memory;
use crate::thread::slot;

/// How long an invocation runs before a callee's return registers it.
pub(crate) const LONG_RUNNING_NS: u64 = 1_000_000;

// 65,536 frames at most, 8 bytes each.
const SHARDS: usize = 16;
const PER_SHARD: usize = 4096;

/// A frame's place in the registry: 0 when not registered, [`UNTRACKED`]
/// when the registry was full, else `shard * PER_SHARD + index + 1`.
pub(crate) type Registration = AtomicU64;
const UNTRACKED: u64 = u64::MAX;

struct Shard {
    frames: Vec<*const Frame>,
    free: Vec<u32>,
}

// SAFETY: the pointers are only dereferenced under the shard's lock, and a
// frame removes itself under that lock before it moves or is dropped.
unsafe impl Send for Shard {}

static REGISTRY: [Mutex<Shard>; SHARDS] = [const {
    Mutex::new(Shard {
        frames: Vec::new(),
        free: Vec::new(),
    })
}; SHARDS];

static UNTRACKED_FRAMES: AtomicU64 = AtomicU64::new(0);

fn lock(shard: usize) -> MutexGuard<'static, Shard> {
    REGISTRY[shard].lock().unwrap_or_else(|e| e.into_inner())
}

/// Running invocations that found the registry full, since start.
pub(crate) fn untracked() -> u64 {
    UNTRACKED_FRAMES.load(Relaxed)
}

/// Adds `frame` to the registry, once.
///
/// The frame must stay where it is until [`deregister`] runs: it is in a
/// pinned future or in the stack slot of a running sync call, and both
/// call `deregister` in place before they end.
#[cold]
pub(crate) fn register(frame: &Frame) {
    if frame.registration.load(Relaxed) != 0 {
        return;
    }
    let shard_index = slot::thread_index() as usize % SHARDS;
    // Growing the registry is the profiler's allocation, not the frame's.
    let place = memory::untracked(|| {
        let mut shard = lock(shard_index);
        let index = match shard.free.pop() {
            Some(index) => index as usize,
            None if shard.frames.len() < PER_SHARD => {
                shard.frames.push(std::ptr::null());
                shard.frames.len() - 1
            }
            None => return UNTRACKED,
        };
        shard.frames[index] = frame;
        (shard_index * PER_SHARD + index + 1) as u64
    });
    if place == UNTRACKED {
        UNTRACKED_FRAMES.fetch_add(1, Relaxed);
    }
    frame.registration.store(place, Relaxed);
}

/// Keeps readers of the registry out until dropped.
pub(crate) struct Deregistered(#[allow(dead_code)] MutexGuard<'static, Shard>);

/// Removes `frame` from the registry. The returned guard keeps readers out
/// until the caller has handed the finished call to the aggregates, so no
/// reader sees the invocation neither running nor finished.
#[inline]
pub(crate) fn deregister(frame: &Frame) -> Option<Deregistered> {
    let place = frame.registration.load(Relaxed);
    if place == 0 || place == UNTRACKED {
        // Every short call: never registered.
        return None;
    }
    deregister_at(frame, place)
}

#[cold]
fn deregister_at(frame: &Frame, place: u64) -> Option<Deregistered> {
    let (shard_index, index) = (
        (place - 1) as usize / PER_SHARD,
        (place - 1) as usize % PER_SHARD,
    );
    let mut shard = lock(shard_index);
    shard.frames[index] = std::ptr::null();
    shard.free.push(index as u32);
    frame.registration.store(0, Relaxed);
    Some(Deregistered(shard))
}

/// What a running invocation has consumed so far: the figures at its last
/// transition (the stretch it is in right now is not charged yet).
#[derive(Clone, Debug)]
pub(crate) struct RunningCall {
    pub(crate) row: &'static Row,
    pub(crate) id: u64,
    /// 0 for a root invocation.
    pub(crate) parent_id: u64,
    pub(crate) agent_root: bool,
    pub(crate) labels: Option<Labels>,
    pub(crate) wall_ns: u64,
    pub(crate) cpu_ns: Option<u64>,
    pub(crate) self_cpu_ns: Option<u64>,
    pub(crate) polls: u64,
    pub(crate) memory: Option<MemoryUsage>,
}

/// Runs `f` over every registered running invocation, with the registry
/// locked: invocations that finish meanwhile wait until `f` returns, so
/// what `f` reads of the aggregates and of the running ones agrees.
pub(crate) fn with_running<R>(f: impl FnOnce(Vec<RunningCall>) -> R) -> R {
    let now = clock::monotonic_ns();
    let shards: Vec<_> = (0..SHARDS).map(lock).collect();
    let running = memory::untracked(|| {
        let mut running = Vec::new();
        for shard in &shards {
            for &frame in &shard.frames {
                // SAFETY: a non-null entry is a frame that registered and
                // has not deregistered; it cannot do so (nor move, nor be
                // dropped) while we hold its shard's lock.
                if let Some(frame) = unsafe { frame.as_ref() } {
                    running.push(frame.running_call(now));
                }
            }
        }
        running
    });
    f(running)
}
