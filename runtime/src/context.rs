//! The current invocation of each thread, and carrying it to other tasks.
//!
//! The slot is a plain const-initialised thread-local holding a raw pointer
//! and the thread's last CPU-clock edge: no destructor, no lazy init, so an
//! allocator hook or a signal handler can read it at any time. It only ever
//! points at a [`Frame`] that is live on this thread's stack (a sync guard) or
//! inside a future that this thread is polling: it is set on entry and
//! restored on exit, in LIFO order, also while unwinding.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use crate::alloc::ThreadMemory;
use crate::callsite::Callsite;
use crate::clock;
use crate::invocation::Frame;

pub(crate) struct ThreadState {
    current: Cell<*const Frame>,
    /// Thread CPU time at the last transition on this thread; the interval
    /// since then belongs to `current`.
    cpu_edge: Cell<u64>,
    /// `thread_index << ID_SEQ_BITS | sequence`; 0 until first use.
    next_id: Cell<u64>,
    memory: ThreadMemory,
    /// CPU profiling session of the last sample on this thread, and the
    /// thread CPU time then: a sample stands for the CPU since.
    sample_generation: Cell<u64>,
    sample_cpu_ns: Cell<u64>,
}

const ID_SEQ_BITS: u32 = 40;
static NEXT_THREAD_INDEX: AtomicU32 = AtomicU32::new(1);

thread_local! {
    static THREAD: ThreadState = const {
        ThreadState {
            current: Cell::new(std::ptr::null()),
            cpu_edge: Cell::new(0),
            next_id: Cell::new(0),
            memory: ThreadMemory::new(),
            sample_generation: Cell::new(0),
            sample_cpu_ns: Cell::new(0),
        }
    };
}

/// Per-thread shard index for aggregates, and the high bits of ids.
#[inline]
pub(crate) fn thread_index() -> u32 {
    THREAD.with(|t| (ensure_id_base(t) >> ID_SEQ_BITS) as u32)
}

#[inline]
fn ensure_id_base(t: &ThreadState) -> u64 {
    let id = t.next_id.get();
    if id != 0 {
        return id;
    }
    let index = NEXT_THREAD_INDEX.fetch_add(1, Ordering::Relaxed) as u64;
    let base = (index << ID_SEQ_BITS) | 1;
    t.next_id.set(base);
    base
}

/// A process-unique invocation id, without a shared atomic per call.
#[inline]
pub(crate) fn next_invocation_id() -> u64 {
    THREAD.with(|t| {
        let id = ensure_id_base(t);
        t.next_id.set(id + 1);
        id
    })
}

/// The frame this thread is running in, if any.
///
/// The reference is only used before the calling frame returns, while the
/// slot's LIFO discipline keeps the pointee alive.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Frame>) -> R) -> R {
    THREAD.with(|t| {
        let ptr = t.current.get();
        // SAFETY: the slot only holds pointers to frames that are live until
        // they restore the previous value (see module docs), and `f` runs
        // before this thread can return from that frame.
        f(unsafe { ptr.as_ref() })
    })
}

/// The allocator's per-thread state. The slot has no destructor, so this
/// works at any point of a thread's life, teardown included.
#[inline(always)]
pub(crate) fn with_memory(f: impl FnOnce(&ThreadMemory)) {
    THREAD.with(|t| f(&t.memory));
}

/// The CPU time this thread's new sample stands for: the thread CPU time
/// since its previous sample in the same session; for its first, since
/// `baseline` (its CPU when sampling of it began) or else one period.
/// Async-signal-safe: a const thread-local and `clock_gettime`.
#[inline]
pub(crate) fn sample_weight(generation: u64, period_ns: u64, baseline: Option<u64>) -> u64 {
    let now = clock::thread_cpu_ns();
    THREAD.with(|t| {
        let previous = if t.sample_generation.get() == generation {
            Some(t.sample_cpu_ns.get())
        } else {
            baseline
        };
        t.sample_generation.set(generation);
        match now {
            Some(now) => {
                t.sample_cpu_ns.set(now);
                match previous {
                    Some(prev) if now > prev => now - prev,
                    _ => period_ns,
                }
            }
            None => period_ns,
        }
    })
}

/// Makes `frame` current, charging the CPU since the last edge to the frame
/// that was current. Returns the previous slot value for [`leave`].
#[inline]
pub(crate) fn enter(frame: &Frame) -> *const Frame {
    let now = clock::thread_cpu_ns();
    THREAD.with(|t| {
        let prev = t.current.get();
        // SAFETY: as in `with_current`.
        let prev_frame = unsafe { prev.as_ref() };
        if let Some(prev_frame) = prev_frame {
            prev_frame.charge_cpu(now, t.cpu_edge.get());
        }
        t.memory.charge_edge(prev_frame);
        t.cpu_edge.set(now.unwrap_or(0));
        t.current.set(frame);
        prev
    })
}

/// Charges the CPU since the last edge to `frame` and restores `prev`.
#[inline]
pub(crate) fn leave(frame: &Frame, prev: *const Frame) {
    let now = clock::thread_cpu_ns();
    THREAD.with(|t| {
        frame.charge_cpu(now, t.cpu_edge.get());
        t.memory.charge_edge(Some(frame));
        t.cpu_edge.set(now.unwrap_or(0));
        t.current.set(prev);
    });
}

/// The current invocation, as a handle that other tasks and threads can run
/// under, so that their CPU time is charged to it.
///
/// Capture it with [`current_context`]; run work under it with
/// [`Context::scope`], [`Context::in_scope`] or the `in_current_invocation`
/// future extension. Cloning is a reference-count increment; capturing it the
/// first time in an invocation allocates once.
#[derive(Clone, Debug, Default)]
pub struct Context {
    shared: Option<Arc<Shared>>,
}

/// What a captured invocation shares with the work it propagates to.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) callsite: &'static Callsite,
    pub(crate) id: u64,
    pub(crate) agent: Option<&'static str>,
    pub(crate) entry: &'static crate::attribution::AgentEntry,
    pub(crate) trace_id: u128,
    pub(crate) otel_span_id: u64,
    /// Own CPU of propagated work, with [`SEALED`] set once the invocation
    /// has ended; later contributions go straight to the aggregates.
    self_cpu_ns: AtomicU64,
    children_cpu_ns: AtomicU64,
    /// Memory of propagated work: own bytes, own count, freed, callees'
    /// bytes, callees' count. Not sealed: what arrives after the invocation
    /// ended is only in the process totals.
    memory: [AtomicU64; 5],
}

const SEALED: u64 = 1 << 63;

impl Shared {
    pub(crate) fn new(frame: &Frame) -> Self {
        Self {
            callsite: frame.callsite,
            id: frame.id,
            agent: frame.agent,
            entry: frame.entry,
            trace_id: frame.trace_id,
            otel_span_id: frame.otel_span_id,
            self_cpu_ns: AtomicU64::new(0),
            children_cpu_ns: AtomicU64::new(0),
            memory: Default::default(),
        }
    }

    pub(crate) fn contribute_memory(
        &self,
        bytes: u64,
        count: u64,
        freed: u64,
        children_bytes: u64,
        children_count: u64,
    ) {
        for (slot, value) in
            self.memory
                .iter()
                .zip([bytes, count, freed, children_bytes, children_count])
        {
            if value != 0 {
                slot.fetch_add(value, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn memory(&self) -> (u64, u64, u64, u64, u64) {
        let [a, b, c, d, e] = &self.memory;
        let load = |x: &AtomicU64| x.load(Ordering::Relaxed);
        (load(a), load(b), load(c), load(d), load(e))
    }

    /// Adds CPU from propagated work; false when the invocation already
    /// ended, so the caller charges the aggregates instead.
    pub(crate) fn contribute(&self, self_cpu: u64, children_cpu: u64) -> bool {
        let a = self.self_cpu_ns.fetch_add(self_cpu, Ordering::AcqRel);
        let b = self
            .children_cpu_ns
            .fetch_add(children_cpu, Ordering::AcqRel);
        // The two counters are sealed one after the other, so look at both.
        if a & SEALED != 0 || b & SEALED != 0 {
            let late_self = if a & SEALED != 0 { self_cpu } else { 0 };
            let late_children = if b & SEALED != 0 { children_cpu } else { 0 };
            self.entry.add_detached_cpu(late_self, late_children);
            return false;
        }
        true
    }

    /// Ends propagation into the invocation; returns (self, children) CPU
    /// that propagated work contributed.
    pub(crate) fn seal(&self) -> (u64, u64) {
        let a = self.self_cpu_ns.fetch_or(SEALED, Ordering::AcqRel) & !SEALED;
        let b = self.children_cpu_ns.fetch_or(SEALED, Ordering::AcqRel) & !SEALED;
        (a, b)
    }
}

/// The current invocation's context (empty outside any invocation).
pub fn current_context() -> Context {
    with_current(|frame| Context {
        shared: frame.map(Frame::shared),
    })
}

impl Context {
    /// True when captured outside any invocation.
    pub fn is_empty(&self) -> bool {
        self.shared.is_none()
    }

    /// Id of the invocation this context charges, if any.
    pub fn invocation_id(&self) -> Option<u64> {
        self.shared.as_ref().map(|s| s.id)
    }

    /// Agent of the invocation this context charges, if any.
    pub fn agent(&self) -> Option<&'static str> {
        self.shared.as_ref().and_then(|s| s.agent)
    }

    /// Runs `f` on this thread as part of the captured invocation.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let Some(shared) = &self.shared else {
            return f();
        };
        let frame = Frame::propagated(shared.clone());
        let prev = enter(&frame);
        let _restore = PropagatedPoll {
            frame: &frame,
            prev,
        };
        f()
    }

    /// Wraps a future so that every poll runs as part of the captured
    /// invocation, wherever it is polled.
    pub fn scope<F: Future>(&self, future: F) -> InInvocation<F> {
        InInvocation {
            future,
            frame: self.shared.clone().map(Frame::propagated),
        }
    }
}

struct PropagatedPoll<'a> {
    frame: &'a Frame,
    prev: *const Frame,
}

impl Drop for PropagatedPoll<'_> {
    fn drop(&mut self) {
        leave(self.frame, self.prev);
        self.frame.flush_propagated();
    }
}

/// A future running as part of another task's invocation; see [`Context::scope`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct InInvocation<F> {
    future: F,
    frame: Option<Frame>,
}

impl<F: Future> Future for InInvocation<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned and never moved out;
        // `frame` is not pinned and only read through a shared reference.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `this` came from a pinned reference.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        match &this.frame {
            None => future.poll(cx),
            Some(frame) => {
                let prev = enter(frame);
                let _restore = PropagatedPoll { frame, prev };
                future.poll(cx)
            }
        }
    }
}

/// Future extensions: profile any future, or run it in the current invocation.
pub trait FutureExt: Future + Sized {
    /// Profiles this future as an invocation labelled `function`, with the
    /// same accounting as an `async fn` under `#[profiled]` but no span.
    ///
    /// Labels are looked up in a bounded table, one hash per invocation;
    /// `profiled!` avoids even that.
    fn profiled(self, function: &'static str) -> crate::invocation::ProfiledFuture<Self> {
        crate::invocation::ProfiledFuture::unspanned(
            self,
            crate::attribution::dynamic_callsite(function),
        )
    }

    /// Runs this future, wherever it is polled, as part of the invocation
    /// that is current now (e.g. before handing it to `tokio::spawn`).
    fn in_current_invocation(self) -> InInvocation<Self> {
        current_context().scope(self)
    }
}

impl<F: Future> FutureExt for F {}

/// Spawns a tokio task that runs as part of the current invocation.
#[cfg(feature = "tokio")]
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.in_current_invocation())
}

/// Runs blocking work on tokio's blocking pool as part of the current
/// invocation.
#[cfg(feature = "tokio")]
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let context = current_context();
    tokio::task::spawn_blocking(move || context.in_scope(f))
}

/// Spawns an OS thread that runs as part of the current invocation.
pub fn spawn_thread<F, R>(f: F) -> std::thread::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let context = current_context();
    std::thread::spawn(move || context.in_scope(f))
}
