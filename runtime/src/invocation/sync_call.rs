//! A sync invocation: its frame lives in the caller's stack frame and a
//! guard ends it when dropped, also on unwind.

use tracing::Span;

use super::callsite::Callsite;
use super::frame::{bump, Current, Frame, SpanMeta};
use super::switch;
use crate::aggregate::Labels;
use crate::model::Outcome;

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
        let frame: &'a Frame = Frame::begin_in(&mut self.0, callsite, labels(), make_span);
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

/// `Err` outputs are error outcomes.
#[doc(hidden)]
#[inline]
pub fn result_failed<T, E>(output: &Result<T, E>) -> bool {
    output.is_err()
}

/// What a `return` in a `Result` fn passes through on its way out: the
/// outcome is taken from the value by reference, the value is returned as
/// it is.
#[doc(hidden)]
#[inline]
pub fn returned<T, E>(output: Result<T, E>, guard: &mut SyncGuard<'_>) -> Result<T, E> {
    guard.set_failed(output.is_err());
    output
}

/// Outputs of non-`Result` functions are never error outcomes.
#[doc(hidden)]
#[inline]
pub fn output_never_failed<T>(_: &T) -> bool {
    false
}
