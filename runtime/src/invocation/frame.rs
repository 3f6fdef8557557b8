//! The frame that accumulates one invocation's cost, and the transitions
//! that make it current on a thread.
//!
//! Hot path: [`enter`] and [`leave`] run at every call and every poll. CPU
//! is charged by edges: each transition reads the thread CPU clock once and
//! charges the interval since the previous transition to the frame that was
//! current. A frame's own ("self") CPU is therefore measured directly, its
//! total is self plus what its children reported when they finished, and
//! time spent suspended or in other tasks between polls is charged to
//! nobody. Memory is charged the same way from the thread's cumulative
//! allocation counters.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use tracing::Span;

use super::callsite::Callsite;
use super::propagation::{MemoryShare, Shared};
use super::running::{self, Registration, RunningCall};
use super::span;
use crate::aggregate::{self, Call, ExemplarIds, Labels, MemoryUsage, Row};
use crate::model::Outcome;
use crate::thread::clock;
use crate::thread::memory::{self, MemoryDelta};
use crate::thread::slot::{self, Active};

#[derive(Debug)]
pub(crate) enum FrameKind {
    /// A call of an instrumented function.
    Invocation,
    /// Work carried into another task or thread on behalf of an invocation.
    Propagated(Arc<Shared>),
}

/// One invocation's running totals.
///
/// Counters are atomics written only by the thread currently running the
/// frame (plain load + store, no read-modify-write), so they can be reached
/// through the thread-local slot while the frame's owner holds a shared
/// reference, and read from a signal handler later.
///
/// `repr(C)` with [`Active`] first: the thread slot holds a pointer to that
/// field, and [`frame_of`] turns it back into the frame.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) active: Active,
    pub(crate) callsite: &'static Callsite,
    pub(crate) parent_id: u64,
    pub(crate) agent_root: bool,
    pub(crate) row: &'static Row,
    pub(crate) kind: FrameKind,
    pub(crate) labels: Option<Labels>,
    pub(crate) span: Span,
    start_ns: u64,
    self_cpu_ns: AtomicU64,
    children_cpu_ns: AtomicU64,
    children_wall_ns: AtomicU64,
    pub(crate) polls: AtomicU64,
    cpu_unmeasured: AtomicBool,
    pub(crate) panicked: AtomicBool,
    shared: OnceLock<Arc<Shared>>,
    memory: MemoryCounters,
    /// Where the frame is in the registry of running invocations.
    pub(crate) registration: Registration,
}

/// Bytes an invocation allocated and freed, its callees' included.
#[derive(Debug, Default)]
struct MemoryCounters {
    alloc_bytes: AtomicU64,
    allocs: AtomicU64,
    freed_bytes: AtomicU64,
    /// Allocated minus freed so far, and its highest value.
    live: AtomicI64,
    peak: AtomicI64,
    children_alloc_bytes: AtomicU64,
    children_allocs: AtomicU64,
}

#[inline]
pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(by), Relaxed);
}

#[inline]
fn bump_i64(counter: &AtomicI64, by: i64) -> i64 {
    let value = counter.load(Relaxed).wrapping_add(by);
    counter.store(value, Relaxed);
    value
}

/// What a span constructor gets to know about the invocation.
#[doc(hidden)]
#[derive(Debug)]
pub struct SpanMeta {
    pub(crate) id: u64,
    pub(crate) agent: Option<&'static str>,
}

impl SpanMeta {
    /// The invocation id.
    pub fn invocation_id(&self) -> u64 {
        self.id
    }

    /// The agent the invocation is charged to.
    pub fn agent(&self) -> Option<&'static str> {
        self.agent
    }
}

impl Frame {
    /// Begins an invocation of `callsite` in `slot`, where it stays until
    /// it ends: built there, not moved in (a frame is a few hundred bytes
    /// and this runs at every call).
    #[inline]
    pub(crate) fn begin_in<'a>(
        slot: &'a mut Option<Frame>,
        callsite: &'static Callsite,
        labels: Option<Labels>,
        make_span: impl FnOnce(&SpanMeta) -> Span,
    ) -> &'a Frame {
        Self::begin_then(callsite, labels, make_span, |frame| slot.insert(frame))
    }

    pub(crate) fn begin(
        callsite: &'static Callsite,
        labels: Option<Labels>,
        make_span: impl FnOnce(&SpanMeta) -> Span,
    ) -> Self {
        Self::begin_then(callsite, labels, make_span, |frame| frame)
    }

    /// The new frame, handed to `place` as it is built so that it can be
    /// built where it stays.
    #[inline(always)]
    fn begin_then<R>(
        callsite: &'static Callsite,
        labels: Option<Labels>,
        make_span: impl FnOnce(&SpanMeta) -> Span,
        place: impl FnOnce(Frame) -> R,
    ) -> R {
        let (active, parent_id, agent_root, row, span) =
            Self::begin_parts(callsite, labels.as_ref(), make_span);
        place(Self::with_parts(
            active,
            callsite,
            parent_id,
            agent_root,
            row,
            FrameKind::Invocation,
            labels,
            span,
        ))
    }

    /// What a new invocation takes from its caller: its id, parent, agent,
    /// row and span.
    fn begin_parts(
        callsite: &'static Callsite,
        labels: Option<&Labels>,
        make_span: impl FnOnce(&SpanMeta) -> Span,
    ) -> (Active, u64, bool, &'static Row, Span) {
        let (parent_id, parent_agent) =
            with_current(|parent| parent.map_or((0, None), |p| (p.active.id, p.agent())));
        let agent = callsite.agent().or(parent_agent);
        let agent_root = parent_id == 0 || !aggregate::same_agent(parent_agent, agent);
        let row = callsite.row_for(agent);
        row.started();
        let id = slot::next_invocation_id();
        // A subscriber's work on our span is the profiler's cost, not the
        // caller's.
        let (span, (trace_id, span_id)) = memory::untracked(|| {
            let span = make_span(&SpanMeta { id, agent });
            if let Some(labels) = labels {
                span::record_labels(&span, labels);
            }
            let ids = span::otel_ids(&span);
            (span, ids)
        });
        let active = Active {
            id,
            owner: &row.owner,
            span_id,
            trace_id,
        };
        (active, parent_id, agent_root, row, span)
    }

    pub(crate) fn propagated(shared: Arc<Shared>) -> Self {
        let span = shared.span.clone();
        Self::with_parts(
            Active {
                id: shared.id,
                owner: &shared.row.owner,
                span_id: shared.span_id,
                trace_id: shared.trace_id,
            },
            shared.callsite,
            0,
            false,
            shared.row,
            FrameKind::Propagated(shared),
            None,
            span,
        )
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn with_parts(
        active: Active,
        callsite: &'static Callsite,
        parent_id: u64,
        agent_root: bool,
        row: &'static Row,
        kind: FrameKind,
        labels: Option<Labels>,
        span: Span,
    ) -> Self {
        Self {
            active,
            callsite,
            parent_id,
            agent_root,
            row,
            kind,
            labels,
            span,
            start_ns: clock::monotonic_ns(),
            self_cpu_ns: AtomicU64::new(0),
            children_cpu_ns: AtomicU64::new(0),
            children_wall_ns: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            cpu_unmeasured: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            shared: OnceLock::new(),
            memory: MemoryCounters::default(),
            registration: Registration::new(0),
        }
    }

    /// The agent this invocation is charged to.
    pub(crate) fn agent(&self) -> Option<&'static str> {
        self.row.owner.agent
    }

    /// The handle propagated work charges; allocated on first capture.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        match &self.kind {
            FrameKind::Propagated(shared) => shared.clone(),
            FrameKind::Invocation => self
                .shared
                .get_or_init(|| memory::untracked(|| Arc::new(Shared::new(self))))
                .clone(),
        }
    }

    /// Charges what a stretch on this thread cost while this frame was
    /// current.
    #[inline]
    fn charge(&self, cpu_ns: Option<u64>, delta: MemoryDelta) {
        match cpu_ns {
            Some(ns) => bump(&self.self_cpu_ns, ns),
            None => self.cpu_unmeasured.store(true, Relaxed),
        }
        if !delta.is_empty() {
            self.charge_memory(delta);
        }
    }

    #[inline]
    fn charge_memory(&self, delta: MemoryDelta) {
        let m = &self.memory;
        let live_before = m.live.load(Relaxed);
        if live_before + delta.rise > m.peak.load(Relaxed) {
            m.peak.store(live_before + delta.rise, Relaxed);
        }
        bump(&m.alloc_bytes, delta.bytes);
        bump(&m.allocs, delta.count);
        bump(&m.freed_bytes, delta.freed);
        bump_i64(&m.live, delta.bytes as i64 - delta.freed as i64);
    }

    fn memory_usage(&self) -> Option<MemoryUsage> {
        if !memory::allocator_installed() {
            return None;
        }
        let m = &self.memory;
        let mut alloc_bytes = m.alloc_bytes.load(Relaxed);
        let mut allocs = m.allocs.load(Relaxed);
        let mut freed_bytes = m.freed_bytes.load(Relaxed);
        let mut children_alloc_bytes = m.children_alloc_bytes.load(Relaxed);
        let mut children_allocs = m.children_allocs.load(Relaxed);
        if let Some(shared) = self.shared.get() {
            let s = shared.memory();
            alloc_bytes += s.own_bytes + s.children_bytes;
            allocs += s.own_allocs + s.children_allocs;
            freed_bytes += s.freed_bytes;
            children_alloc_bytes += s.children_bytes;
            children_allocs += s.children_allocs;
        }
        Some(MemoryUsage {
            alloc_bytes,
            allocs,
            self_alloc_bytes: alloc_bytes - children_alloc_bytes,
            self_allocs: allocs - children_allocs,
            freed_bytes,
            retained_bytes: alloc_bytes as i64 - freed_bytes as i64,
            peak_bytes: m.peak.load(Relaxed).max(0) as u64,
        })
    }

    /// Moves what propagated work accumulated during one poll into the
    /// invocation it works for.
    pub(crate) fn flush_propagated(&self) {
        if let FrameKind::Propagated(shared) = &self.kind {
            let own = self.self_cpu_ns.swap(0, Relaxed);
            let children = self.children_cpu_ns.swap(0, Relaxed);
            shared.contribute(own, children);
            let m = &self.memory;
            let children_bytes = m.children_alloc_bytes.swap(0, Relaxed);
            let children_allocs = m.children_allocs.swap(0, Relaxed);
            shared.contribute_memory(MemoryShare {
                own_bytes: m.alloc_bytes.swap(0, Relaxed) - children_bytes,
                own_allocs: m.allocs.swap(0, Relaxed) - children_allocs,
                freed_bytes: m.freed_bytes.swap(0, Relaxed),
                children_bytes,
                children_allocs,
            });
            m.live.store(0, Relaxed);
        }
    }

    /// What the invocation has consumed up to its last transition.
    pub(crate) fn running_call(&self, now_ns: u64) -> RunningCall {
        let mut self_cpu = self.self_cpu_ns.load(Relaxed);
        let mut children_cpu = self.children_cpu_ns.load(Relaxed);
        if let Some(shared) = self.shared.get() {
            let (own, children) = shared.contributed();
            self_cpu += own;
            children_cpu += children;
        }
        let measured = !self.cpu_unmeasured.load(Relaxed);
        RunningCall {
            row: self.row,
            id: self.active.id,
            parent_id: self.parent_id,
            agent_root: self.agent_root,
            labels: self.labels.clone(),
            wall_ns: now_ns.saturating_sub(self.start_ns),
            cpu_ns: measured.then_some(self_cpu + children_cpu),
            self_cpu_ns: measured.then_some(self_cpu),
            polls: self.polls.load(Relaxed),
            memory: self.memory_usage(),
        }
    }

    /// Ends the invocation. Called on the frame where it ran (never on a
    /// moved copy): a registered frame leaves the registry here.
    pub(crate) fn finish(&self, outcome: Outcome) {
        let end_ns = clock::monotonic_ns();
        let wall_ns = end_ns.saturating_sub(self.start_ns);
        let mut self_cpu = self.self_cpu_ns.load(Relaxed);
        let mut children_cpu = self.children_cpu_ns.load(Relaxed);
        if let Some(shared) = self.shared.get() {
            let (own, children) = shared.seal();
            self_cpu += own;
            children_cpu += children;
        }
        let measured = !self.cpu_unmeasured.load(Relaxed);
        let cpu_ns = measured.then_some(self_cpu + children_cpu);
        let memory = self.memory_usage();
        let polls = self.polls.load(Relaxed);
        let exemplar = self.row.is_exemplar(cpu_ns, wall_ns);
        // From here on it is the profiler's work (a subscriber's recording,
        // a registry entry, a batch drain), not the caller's.
        let _untracked = memory::Untracked::enter();
        // The subscriber's recording comes before the batch: it may run
        // instrumented code of its own, which must find the batch as it was.
        span::record_finish(
            &self.span,
            &span::Finished {
                cpu_ns,
                wall_ns,
                polls,
                memory: memory.as_ref(),
                outcome,
                exemplar,
            },
            &self.callsite.finish_fields,
        );
        // The slot is already restored: the frame now current is the one
        // this invocation ran inside, which owns its cost as a child's.
        with_current(|enclosing| {
            if let Some(enclosing) = enclosing {
                enclosing.add_child(cpu_ns, wall_ns, memory.as_ref(), self.parent_id);
                // A caller that has run this long may run for good: let
                // reports see it while it does.
                if matches!(enclosing.kind, FrameKind::Invocation)
                    && end_ns.saturating_sub(enclosing.start_ns) >= running::LONG_RUNNING_NS
                    && enclosing.registration.load(Relaxed) == 0
                {
                    running::register(enclosing);
                }
            }
        });
        if exemplar && self.active.span_id != 0 {
            aggregate::exemplars::note_trace_ids(
                self.active.id,
                ExemplarIds {
                    span_id: self.active.span_id,
                    trace_id: self.active.trace_id,
                },
            );
        }
        // Held until the call is in the batch, so that a report sees it
        // either running or finished, never neither.
        let _registry = running::deregister(self);
        // Built in its batch slot, not moved there (the call is ~170 bytes
        // and this runs once per invocation).
        aggregate::finish_with(|| Call {
            row: self.row,
            id: self.active.id,
            parent_id: self.parent_id,
            agent_root: self.agent_root,
            labels: self.labels.clone(),
            outcome,
            end_ns,
            wall_ns,
            self_wall_ns: wall_ns.saturating_sub(self.children_wall_ns.load(Relaxed)),
            cpu_ns,
            self_cpu_ns: measured.then_some(self_cpu),
            polls,
            memory,
            exemplar,
            had_callees: self.children_wall_ns.load(Relaxed) != 0
                || children_cpu != 0
                || self.shared.get().is_some(),
        });
    }

    /// Takes a finished callee's cost as a child's.
    fn add_child(
        &self,
        cpu_ns: Option<u64>,
        wall_ns: u64,
        memory: Option<&MemoryUsage>,
        callee_parent: u64,
    ) {
        match cpu_ns {
            Some(cpu) => bump(&self.children_cpu_ns, cpu),
            None => self.cpu_unmeasured.store(true, Relaxed),
        }
        if self.active.id == callee_parent {
            bump(&self.children_wall_ns, wall_ns);
        }
        if let Some(mem) = memory {
            let m = &self.memory;
            // The callee's peak sat on top of what the caller held.
            let peak = m.live.load(Relaxed) + mem.peak_bytes as i64;
            if peak > m.peak.load(Relaxed) {
                m.peak.store(peak, Relaxed);
            }
            bump(&m.alloc_bytes, mem.alloc_bytes);
            bump(&m.allocs, mem.allocs);
            bump(&m.freed_bytes, mem.freed_bytes);
            bump_i64(&m.live, mem.retained_bytes);
            bump(&m.children_alloc_bytes, mem.alloc_bytes);
            bump(&m.children_allocs, mem.allocs);
        }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        // Only a frame that never finished is still registered.
        drop(running::deregister(self));
    }
}

/// The frame an [`Active`] pointer from the thread slot belongs to.
///
/// # Safety
/// `active` must be null or a pointer the slot got from [`enter`] or
/// [`leave`] (the `active` field of a frame) whose frame is still live.
#[inline]
unsafe fn frame_of<'a>(active: *const Active) -> Option<&'a Frame> {
    // SAFETY: `Frame` is repr(C) with `active` first, so a pointer to that
    // field is a pointer to the frame; liveness is the caller's promise.
    unsafe { active.cast::<Frame>().as_ref() }
}

/// The frame this thread is running in, if any.
///
/// The reference is only used before the calling frame returns, while the
/// slot's LIFO discipline keeps the pointee alive.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Frame>) -> R) -> R {
    // SAFETY: the slot only holds pointers set by `enter`/`leave` to frames
    // that are live until they restore the previous value, and `f` runs
    // before this thread can return from that frame.
    f(unsafe { frame_of(slot::current()) })
}

/// Makes `frame` current, charging the stretch since the last transition to
/// the frame that was current. Returns the previous slot value for [`leave`].
#[inline]
pub(crate) fn enter(frame: &Frame) -> *const Active {
    let transition = slot::switch_to(&frame.active);
    let delta = memory::take_edge();
    // SAFETY: the slot's previous value obeys the slot's discipline.
    if let Some(previous) = unsafe { frame_of(transition.previous) } {
        previous.charge(transition.cpu_ns, delta);
    }
    transition.previous
}

/// Charges the stretch since the last transition to `frame` and restores
/// `previous`.
#[inline]
pub(crate) fn leave(frame: &Frame, previous: *const Active) {
    let transition = slot::switch_to(previous);
    frame.charge(transition.cpu_ns, memory::take_edge());
}

/// A frame made current on this thread until dropped (also on unwind).
pub(crate) struct Current<'a> {
    pub(crate) frame: &'a Frame,
    previous: *const Active,
}

impl<'a> Current<'a> {
    #[inline]
    pub(crate) fn enter(frame: &'a Frame) -> Self {
        let previous = enter(frame);
        Self { frame, previous }
    }
}

impl Drop for Current<'_> {
    #[inline]
    fn drop(&mut self) {
        leave(self.frame, self.previous);
        if std::thread::panicking() {
            self.frame.panicked.store(true, Relaxed);
        }
    }
}
