//! Invocations: the frame that accumulates one call's cost, the guard that
//! runs a sync call inside it, and the future wrapper that runs every poll
//! of an async call inside it.
//!
//! CPU is charged by edges: each transition on a thread (entering or leaving
//! a frame) reads the thread CPU clock once and charges the interval since
//! the previous transition to the frame that was current. A frame's own
//! ("self") CPU is therefore measured directly, its total is self plus what
//! its children reported when they finished, and time spent suspended or in
//! other tasks between polls is charged to nobody.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};

use tracing::Span;

use crate::attribution::{self, AgentEntry};
use crate::callsite::Callsite;
use crate::clock;
use crate::context::{self, Shared};
use crate::labels::Labels;
use crate::report::Outcome;
use crate::span;
use crate::switch;

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
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) callsite: &'static Callsite,
    pub(crate) id: u64,
    pub(crate) parent_id: u64,
    pub(crate) agent: Option<&'static str>,
    pub(crate) agent_root: bool,
    pub(crate) entry: &'static AgentEntry,
    pub(crate) kind: FrameKind,
    pub(crate) labels: Option<Labels>,
    pub(crate) span: Span,
    /// OpenTelemetry ids of the span (0: none), for CPU sample labels.
    pub(crate) trace_id: u128,
    pub(crate) otel_span_id: u64,
    start_ns: u64,
    self_cpu_ns: AtomicU64,
    children_cpu_ns: AtomicU64,
    children_wall_ns: AtomicU64,
    polls: AtomicU64,
    cpu_unmeasured: AtomicBool,
    panicked: AtomicBool,
    shared: OnceLock<Arc<Shared>>,
    memory: MemoryCounters,
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

/// What a finished invocation allocated (present when the counting
/// allocator is installed).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MemoryUsage {
    pub(crate) alloc_bytes: u64,
    pub(crate) allocs: u64,
    pub(crate) self_alloc_bytes: u64,
    pub(crate) self_allocs: u64,
    pub(crate) freed_bytes: u64,
    pub(crate) retained_bytes: i64,
    pub(crate) peak_bytes: u64,
}

#[inline]
fn bump_i64(counter: &AtomicI64, by: i64) -> i64 {
    let value = counter.load(Relaxed).wrapping_add(by);
    counter.store(value, Relaxed);
    value
}

/// What a finished invocation cost.
pub(crate) struct Finished<'a> {
    pub(crate) frame: &'a Frame,
    pub(crate) outcome: Outcome,
    /// Monotonic time it ended, ns: orders the recent-invocation ring.
    pub(crate) end_ns: u64,
    pub(crate) wall_ns: u64,
    pub(crate) self_wall_ns: u64,
    pub(crate) cpu_ns: Option<u64>,
    pub(crate) self_cpu_ns: Option<u64>,
    pub(crate) polls: u64,
    pub(crate) memory: Option<MemoryUsage>,
}

#[inline]
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(by), Relaxed);
}

impl Frame {
    fn begin(
        callsite: &'static Callsite,
        labels: Option<Labels>,
        make_span: impl FnOnce(&SpanMeta) -> Span,
    ) -> Self {
        let (parent_id, parent_agent) =
            context::with_current(|parent| parent.map_or((0, None), |p| (p.id, p.agent)));
        let agent = callsite.agent().or(parent_agent);
        let agent_root = parent_id == 0 || parent_agent != agent;
        let entry = callsite.entry_for(agent);
        entry.started();
        let id = context::next_invocation_id();
        // A subscriber's work on our span is the profiler's cost, not the
        // caller's.
        let (span, (trace_id, otel_span_id)) = crate::alloc::untracked(|| {
            let span = make_span(&SpanMeta { id, agent });
            if let Some(labels) = &labels {
                span::record_labels(&span, labels);
            }
            let ids = span::otel_ids(&span);
            (span, ids)
        });
        Self {
            callsite,
            id,
            parent_id,
            agent,
            agent_root,
            entry,
            kind: FrameKind::Invocation,
            labels,
            span,
            trace_id,
            otel_span_id,
            start_ns: clock::monotonic_ns(),
            self_cpu_ns: AtomicU64::new(0),
            children_cpu_ns: AtomicU64::new(0),
            children_wall_ns: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            cpu_unmeasured: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            shared: OnceLock::new(),
            memory: MemoryCounters::default(),
        }
    }

    pub(crate) fn propagated(shared: Arc<Shared>) -> Self {
        Self {
            callsite: shared.callsite,
            id: shared.id,
            parent_id: 0,
            agent: shared.agent,
            agent_root: false,
            entry: shared.entry,
            labels: None,
            span: Span::none(),
            trace_id: shared.trace_id,
            otel_span_id: shared.otel_span_id,
            kind: FrameKind::Propagated(shared),
            start_ns: clock::monotonic_ns(),
            self_cpu_ns: AtomicU64::new(0),
            children_cpu_ns: AtomicU64::new(0),
            children_wall_ns: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            cpu_unmeasured: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            shared: OnceLock::new(),
            memory: MemoryCounters::default(),
        }
    }

    /// The handle propagated work charges; allocated on first capture.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        match &self.kind {
            FrameKind::Propagated(shared) => shared.clone(),
            FrameKind::Invocation => self
                .shared
                .get_or_init(|| crate::alloc::untracked(|| Arc::new(Shared::new(self))))
                .clone(),
        }
    }

    #[inline]
    pub(crate) fn charge_cpu(&self, now: Option<u64>, edge: u64) {
        match now {
            Some(now) if edge != 0 => bump(&self.self_cpu_ns, now.saturating_sub(edge)),
            _ => self.cpu_unmeasured.store(true, Relaxed),
        }
    }

    /// Charges what the thread allocated while this frame was current:
    /// `rise` is how far live bytes climbed above their level at the start
    /// of that stretch.
    #[inline]
    pub(crate) fn charge_memory(&self, bytes: u64, count: u64, freed: u64, rise: i64) {
        let m = &self.memory;
        let live_before = m.live.load(Relaxed);
        if live_before + rise > m.peak.load(Relaxed) {
            m.peak.store(live_before + rise, Relaxed);
        }
        bump(&m.alloc_bytes, bytes);
        bump(&m.allocs, count);
        bump(&m.freed_bytes, freed);
        bump_i64(&m.live, bytes as i64 - freed as i64);
    }

    fn memory_usage(&self) -> Option<MemoryUsage> {
        if !crate::alloc::allocator_installed() {
            return None;
        }
        let m = &self.memory;
        let (mut alloc_bytes, mut allocs, mut freed_bytes) = (
            m.alloc_bytes.load(Relaxed),
            m.allocs.load(Relaxed),
            m.freed_bytes.load(Relaxed),
        );
        let (mut children_alloc_bytes, mut children_allocs) = (
            m.children_alloc_bytes.load(Relaxed),
            m.children_allocs.load(Relaxed),
        );
        if let Some(shared) = self.shared.get() {
            let (a, n, f, ca, cn) = shared.memory();
            alloc_bytes += a + ca;
            allocs += n + cn;
            freed_bytes += f;
            children_alloc_bytes += ca;
            children_allocs += cn;
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
            let children_alloc = m.children_alloc_bytes.swap(0, Relaxed);
            let children_allocs = m.children_allocs.swap(0, Relaxed);
            shared.contribute_memory(
                m.alloc_bytes.swap(0, Relaxed) - children_alloc,
                m.allocs.swap(0, Relaxed) - children_allocs,
                m.freed_bytes.swap(0, Relaxed),
                children_alloc,
                children_allocs,
            );
            m.live.store(0, Relaxed);
        }
    }

    fn finish(&self, outcome: Outcome) {
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
        let finished = Finished {
            frame: self,
            outcome,
            end_ns,
            wall_ns,
            self_wall_ns: wall_ns.saturating_sub(self.children_wall_ns.load(Relaxed)),
            cpu_ns,
            self_cpu_ns: measured.then_some(self_cpu),
            polls: self.polls.load(Relaxed),
            memory: self.memory_usage(),
        };
        // The slot is already restored: the frame now current is the one
        // this invocation ran inside, which owns its cost as a child's.
        context::with_current(|enclosing| {
            if let Some(enclosing) = enclosing {
                match cpu_ns {
                    Some(cpu) => bump(&enclosing.children_cpu_ns, cpu),
                    None => enclosing.cpu_unmeasured.store(true, Relaxed),
                }
                if enclosing.id == self.parent_id {
                    bump(&enclosing.children_wall_ns, wall_ns);
                }
                if let Some(mem) = &finished.memory {
                    let m = &enclosing.memory;
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
        });
        crate::alloc::untracked(|| {
            span::record_finish(&self.span, &finished);
            self.entry.record(&finished);
            attribution::push_recent(&finished);
        });
    }
}

/// A frame made current on this thread until dropped (also on unwind).
struct Current<'a> {
    frame: &'a Frame,
    prev: *const Frame,
}

impl<'a> Current<'a> {
    #[inline]
    fn enter(frame: &'a Frame) -> Self {
        let prev = context::enter(frame);
        Self { frame, prev }
    }
}

impl Drop for Current<'_> {
    #[inline]
    fn drop(&mut self) {
        context::leave(self.frame, self.prev);
        if std::thread::panicking() {
            self.frame.panicked.store(true, Relaxed);
        }
    }
}

/// What a span constructor gets to know about the invocation.
#[doc(hidden)]
#[derive(Debug)]
pub struct SpanMeta {
    id: u64,
    agent: Option<&'static str>,
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

/// Storage for a sync invocation's frame in the caller's stack frame.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct SyncSlot(Option<Frame>);

impl SyncSlot {
    /// An empty slot.
    #[inline]
    pub const fn new() -> Self {
        Self(None)
    }

    /// Starts an invocation of `callsite` (unless recording is off) and makes
    /// it current until the guard drops.
    #[inline]
    pub fn enter<'a>(
        &'a mut self,
        callsite: &'static Callsite,
        labels: impl FnOnce() -> Option<Labels>,
        make_span: impl FnOnce(&SpanMeta) -> Span,
    ) -> SyncGuard<'a> {
        if !switch::is_enabled() {
            return SyncGuard {
                active: None,
                failed: false,
            };
        }
        let frame: &'a Frame = self.0.insert(Frame::begin(callsite, labels(), make_span));
        let entered = frame.span.enter();
        bump(&frame.polls, 1);
        SyncGuard {
            active: Some((Current::enter(frame), entered)),
            failed: false,
        }
    }
}

/// Ends a sync invocation when dropped.
#[doc(hidden)]
#[must_use]
pub struct SyncGuard<'a> {
    active: Option<(Current<'a>, tracing::span::Entered<'a>)>,
    failed: bool,
}

impl SyncGuard<'_> {
    /// Marks the outcome as an error (the function returned `Err`).
    #[inline]
    pub fn set_failed(&mut self, failed: bool) {
        self.failed = failed;
    }
}

impl Drop for SyncGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some((current, entered)) = self.active.take() {
            let frame = current.frame;
            drop(current);
            drop(entered);
            let outcome = if std::thread::panicking() {
                Outcome::Panicked
            } else if self.failed {
                Outcome::Error
            } else {
                Outcome::Ok
            };
            frame.finish(outcome);
        }
    }
}

// The frame lives inline: boxing it would allocate on every invocation.
#[allow(clippy::large_enum_variant)]
enum State<S> {
    Pending {
        callsite: &'static Callsite,
        labels: Option<Labels>,
        make_span: S,
    },
    Running(Frame),
    Unrecorded,
    Done,
}

/// The span constructor of futures profiled without a span.
#[doc(hidden)]
pub type NoSpan = fn(&SpanMeta) -> Span;

fn no_span(_: &SpanMeta) -> Span {
    Span::none()
}

fn never_failed<T>(_: &T) -> bool {
    false
}

/// A future whose polls are accounted as one invocation.
///
/// The invocation starts at the first poll (so its parent is the invocation
/// that first polls it) and ends when the future completes, or when it is
/// dropped first, which records it as cancelled. Dropping the inner future
/// runs inside the invocation, so destructor work is charged to it.
#[must_use = "futures do nothing unless polled"]
pub struct ProfiledFuture<F: Future, S = NoSpan> {
    inner: ManuallyDrop<F>,
    state: State<S>,
    failed: fn(&F::Output) -> bool,
}

impl<F: Future> ProfiledFuture<F> {
    pub(crate) fn unspanned(inner: F, callsite: &'static Callsite) -> Self {
        Self::new(inner, callsite, None, no_span as NoSpan, never_failed)
    }
}

impl<F: Future, S: FnOnce(&SpanMeta) -> Span> ProfiledFuture<F, S> {
    /// Wraps `inner`; `failed` tells whether an output is an error outcome.
    #[doc(hidden)]
    #[inline]
    pub fn new(
        inner: F,
        callsite: &'static Callsite,
        labels: Option<Labels>,
        make_span: S,
        failed: fn(&F::Output) -> bool,
    ) -> Self {
        Self {
            inner: ManuallyDrop::new(inner),
            state: State::Pending {
                callsite,
                labels,
                make_span,
            },
            failed,
        }
    }
}

impl<F: Future, S: FnOnce(&SpanMeta) -> Span> Future for ProfiledFuture<F, S> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out and
        // is dropped in place (in `Drop`). `state` and `failed` are not
        // pinned and are only touched through `&mut` below.
        let this = unsafe { self.get_unchecked_mut() };
        if matches!(this.state, State::Pending { .. }) {
            this.state = match std::mem::replace(&mut this.state, State::Done) {
                State::Pending {
                    callsite,
                    labels,
                    make_span,
                } if switch::is_enabled() => {
                    State::Running(Frame::begin(callsite, labels, make_span))
                }
                _ => State::Unrecorded,
            };
        }
        // SAFETY: see above; `this` came from a pinned reference.
        let inner = unsafe { Pin::new_unchecked(&mut *this.inner) };
        let State::Running(frame) = &this.state else {
            return inner.poll(cx);
        };
        let poll = {
            let _entered = frame.span.enter();
            bump(&frame.polls, 1);
            let _current = Current::enter(frame);
            inner.poll(cx)
        };
        if let Poll::Ready(output) = &poll {
            let outcome = if (this.failed)(output) {
                Outcome::Error
            } else {
                Outcome::Ok
            };
            if let State::Running(frame) = std::mem::replace(&mut this.state, State::Done) {
                frame.finish(outcome);
            }
        }
        poll
    }
}

impl<F: Future, S> Drop for ProfiledFuture<F, S> {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Running(frame) => {
                {
                    let _current = Current::enter(&frame);
                    // SAFETY: `inner` is dropped exactly once, here, in place,
                    // and never used again.
                    unsafe { ManuallyDrop::drop(&mut self.inner) };
                }
                let outcome = if frame.panicked.load(Relaxed) || std::thread::panicking() {
                    Outcome::Panicked
                } else {
                    Outcome::Cancelled
                };
                frame.finish(outcome);
            }
            // SAFETY: as above; dropped once, in place.
            _ => unsafe { ManuallyDrop::drop(&mut self.inner) },
        }
    }
}

impl<F: Future, S> std::fmt::Debug for ProfiledFuture<F, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Pending { callsite, .. } => callsite.function(),
            State::Running(frame) => frame.callsite.function(),
            State::Unrecorded => "unrecorded",
            State::Done => "done",
        };
        f.debug_struct("ProfiledFuture")
            .field("state", &state)
            .finish()
    }
}

/// `Err` outputs are error outcomes.
#[doc(hidden)]
#[inline]
pub fn result_failed<T, E>(output: &Result<T, E>) -> bool {
    output.is_err()
}

/// Outputs of non-`Result` functions are never error outcomes.
#[doc(hidden)]
#[inline]
pub fn output_never_failed<T>(_: &T) -> bool {
    false
}
