//! Carrying the current invocation to other tasks and threads, so that the
//! CPU and memory of work done on its behalf are charged to it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use super::callsite::{dynamic_callsite, Callsite};
use super::frame::{enter, leave, with_current, Frame};
use super::profiled_future::ProfiledFuture;
use crate::aggregate::Row;
use crate::thread::slot::Active;

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

/// Memory that propagated work reports to its invocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MemoryShare {
    /// What the work allocated itself.
    pub(crate) own_bytes: u64,
    pub(crate) own_allocs: u64,
    pub(crate) freed_bytes: u64,
    /// What instrumented callees inside the work allocated.
    pub(crate) children_bytes: u64,
    pub(crate) children_allocs: u64,
}

#[derive(Debug, Default)]
struct SharedMemory {
    own_bytes: AtomicU64,
    own_allocs: AtomicU64,
    freed_bytes: AtomicU64,
    children_bytes: AtomicU64,
    children_allocs: AtomicU64,
}

/// What a captured invocation shares with the work it propagates to.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) callsite: &'static Callsite,
    pub(crate) id: u64,
    pub(crate) row: &'static Row,
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    /// The invocation's span: propagated work runs inside it, so the spans
    /// it creates have it as parent, as a direct call's would.
    pub(crate) span: tracing::Span,
    /// Own CPU of propagated work, with [`SEALED`] set once the invocation
    /// has ended; later contributions go straight to the aggregates.
    self_cpu_ns: AtomicU64,
    children_cpu_ns: AtomicU64,
    /// Not sealed: what arrives after the invocation ended is only in the
    /// process totals.
    memory: SharedMemory,
}

const SEALED: u64 = 1 << 63;

impl Shared {
    pub(crate) fn new(frame: &Frame) -> Self {
        let Active {
            id,
            span_id,
            trace_id,
            ..
        } = frame.active;
        Self {
            callsite: frame.callsite,
            id,
            row: frame.row,
            trace_id,
            span_id,
            span: frame.span.clone(),
            self_cpu_ns: AtomicU64::new(0),
            children_cpu_ns: AtomicU64::new(0),
            memory: SharedMemory::default(),
        }
    }

    pub(crate) fn contribute_memory(&self, share: MemoryShare) {
        let m = &self.memory;
        for (counter, value) in [
            (&m.own_bytes, share.own_bytes),
            (&m.own_allocs, share.own_allocs),
            (&m.freed_bytes, share.freed_bytes),
            (&m.children_bytes, share.children_bytes),
            (&m.children_allocs, share.children_allocs),
        ] {
            if value != 0 {
                counter.fetch_add(value, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn memory(&self) -> MemoryShare {
        let m = &self.memory;
        let load = |x: &AtomicU64| x.load(Ordering::Relaxed);
        MemoryShare {
            own_bytes: load(&m.own_bytes),
            own_allocs: load(&m.own_allocs),
            freed_bytes: load(&m.freed_bytes),
            children_bytes: load(&m.children_bytes),
            children_allocs: load(&m.children_allocs),
        }
    }

    /// Adds CPU from propagated work; false when the invocation already
    /// ended, so the work was charged to the aggregates instead.
    pub(crate) fn contribute(&self, self_cpu: u64, children_cpu: u64) -> bool {
        let a = self.self_cpu_ns.fetch_add(self_cpu, Ordering::AcqRel);
        let b = self
            .children_cpu_ns
            .fetch_add(children_cpu, Ordering::AcqRel);
        // The two counters are sealed one after the other, so look at both.
        if a & SEALED != 0 || b & SEALED != 0 {
            let late_self = if a & SEALED != 0 { self_cpu } else { 0 };
            let late_children = if b & SEALED != 0 { children_cpu } else { 0 };
            self.row.add_detached_cpu(late_self, late_children);
            return false;
        }
        true
    }

    /// (self, children) CPU that propagated work contributed so far.
    pub(crate) fn contributed(&self) -> (u64, u64) {
        (
            self.self_cpu_ns.load(Ordering::Acquire) & !SEALED,
            self.children_cpu_ns.load(Ordering::Acquire) & !SEALED,
        )
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
        self.shared.as_ref().and_then(|s| s.row.owner.agent)
    }

    /// Runs `f` on this thread as part of the captured invocation.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let Some(shared) = &self.shared else {
            return f();
        };
        let frame = Frame::propagated(shared.clone());
        let _restore = PropagatedPoll::enter(&frame);
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

/// A propagated frame made current, and its invocation's span entered,
/// until dropped; then what it accumulated goes to its invocation.
struct PropagatedPoll<'a> {
    frame: &'a Frame,
    previous: *const Active,
    _span: tracing::span::Entered<'a>,
}

impl<'a> PropagatedPoll<'a> {
    fn enter(frame: &'a Frame) -> Self {
        Self {
            frame,
            previous: enter(frame),
            _span: frame.span.enter(),
        }
    }
}

impl Drop for PropagatedPoll<'_> {
    fn drop(&mut self) {
        leave(self.frame, self.previous);
        self.frame.flush_propagated();
    }
}

pin_project! {
    /// A future running as part of another task's invocation; see
    /// [`Context::scope`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct InInvocation<F> {
        #[pin]
        future: F,
        frame: Option<Frame>,
    }
}

impl<F: Future> Future for InInvocation<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        match &*this.frame {
            None => this.future.poll(cx),
            Some(frame) => {
                let _restore = PropagatedPoll::enter(frame);
                this.future.poll(cx)
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
    fn profiled(self, function: &'static str) -> ProfiledFuture<Self> {
        ProfiledFuture::unspanned(self, dynamic_callsite(function))
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
