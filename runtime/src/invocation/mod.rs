//! Invocations: the static callsites `#[profiled]` emits, the frame that
//! accumulates one call's cost, the guard (sync) and future wrapper (async)
//! that make it current, propagation to other tasks and threads, and the
//! `tracing` span fields. Finished invocations are handed to the aggregate
//! stores; per-thread state lives in the thread layer below.

mod callsite;
mod frame;
mod profiled_future;
mod propagation;
mod running;
mod span;
mod switch;
mod sync_call;

pub use callsite::Callsite;
pub(crate) use callsite::{dynamic_overflowed, explicit_callsite, reset_dynamic_overflowed};
pub use frame::SpanMeta;
pub use profiled_future::{NoSpan, ProfiledFuture};
pub use propagation::{current_context, spawn_thread, Context, FutureExt, InInvocation};
#[cfg(feature = "tokio")]
pub use propagation::{spawn, spawn_blocking};
pub(crate) use running::{untracked as running_untracked, with_running, RunningCall};
pub use switch::{is_enabled, set_enabled};
pub use sync_call::{output_never_failed, result_failed, returned, SyncGuard, SyncSlot};
