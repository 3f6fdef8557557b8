//! An async invocation: a future wrapper whose every poll runs inside the
//! invocation's frame.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use tracing::Span;

use super::callsite::Callsite;
use super::frame::{bump, Current, Frame, SpanMeta};
use super::running;
use super::switch;
use crate::aggregate::Labels;
use crate::model::Outcome;

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

pin_project! {
    /// A future whose polls are accounted as one invocation.
    ///
    /// The invocation starts at the first poll (so its parent is the
    /// invocation that first polls it) and ends when the future completes,
    /// or when it is dropped first, which records it as cancelled. Dropping
    /// the inner future runs inside the invocation, so destructor work is
    /// charged to it.
    #[must_use = "futures do nothing unless polled"]
    pub struct ProfiledFuture<F: Future, S = NoSpan> {
        // Dropped by hand in `PinnedDrop`, inside the invocation.
        #[pin]
        inner: ManuallyDrop<F>,
        state: State<S>,
        failed: fn(&F::Output) -> bool,
    }

    impl<F: Future, S> PinnedDrop for ProfiledFuture<F, S> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // SAFETY (both arms): `inner` is dropped exactly once, here, in
            // place, and never used again; `PinnedDrop::drop` runs once.
            // The frame ends where it ran: the registry of running
            // invocations may point at it until `finish` returns.
            match &*this.state {
                State::Running(frame) => {
                    {
                        let _current = Current::enter(frame);
                        unsafe { ManuallyDrop::drop(this.inner.get_unchecked_mut()) };
                    }
                    let outcome = if frame.panicked.load(Relaxed) || std::thread::panicking() {
                        Outcome::Panicked
                    } else {
                        Outcome::Cancelled
                    };
                    frame.finish(outcome);
                }
                _ => unsafe { ManuallyDrop::drop(this.inner.get_unchecked_mut()) },
            }
            *this.state = State::Done;
        }
    }
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
        let this = self.project();
        if matches!(this.state, State::Pending { .. }) {
            *this.state = match std::mem::replace(this.state, State::Done) {
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
        // SAFETY: `ManuallyDrop` is a transparent wrapper that is never
        // moved out of, so pinning it pins the future inside.
        let inner = unsafe { this.inner.map_unchecked_mut(|inner| &mut **inner) };
        let State::Running(frame) = &*this.state else {
            return inner.poll(cx);
        };
        let poll = {
            let _entered = frame.span.enter();
            bump(&frame.polls, 1);
            let _current = Current::enter(frame);
            inner.poll(cx)
        };
        match &poll {
            Poll::Ready(output) => {
                let outcome = if (this.failed)(output) {
                    Outcome::Error
                } else {
                    Outcome::Ok
                };
                frame.finish(outcome);
                *this.state = State::Done;
            }
            // It now lives across an await: reports should see it run.
            Poll::Pending if frame.registration.load(Relaxed) == 0 => running::register(frame),
            Poll::Pending => {}
        }
        poll
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
