//! The runtime of [agentprof](https://docs.rs/agentprof): per-invocation CPU
//! and wall accounting, aggregates per function and agent, reports.
//!
//! Applications depend on the `agentprof` facade, which re-exports [`api`]
//! and the `#[profiled]` attribute. Built without the `enabled` feature,
//! every type and function is still here, one definition for both builds:
//! the entry points that would record refuse or pass through.
//!
//! The private modules are layers whose imports point one way, down (see
//! `ARCHITECTURE.md`): `pipeline` → `report` → `memory`, `cpu` → `pprof`,
//! `unwind` → `invocation` → `aggregate` → `thread` → `model`, `config`,
//! `error`, `built_in`.
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

pub mod api;
mod built_in;
mod config;
mod error;
mod model;
mod pipeline;
pub mod pprof;
mod report;

mod aggregate;
mod cpu;
mod fork;
mod invocation;
mod memory;
mod profiler_cost;
mod thread;
mod unwind;

/// What `#[profiled]` expands to: the macro's interface to the runtime.
/// Unstable: not public API, it changes with the macro.
#[doc(hidden)]
pub mod __private {
    pub use crate::aggregate::Labels;
    pub use crate::invocation::{
        output_never_failed, result_failed, returned, Callsite, NoSpan, ProfiledFuture, SpanMeta,
        SyncGuard, SyncSlot,
    };
    pub use tracing;
}

/// Hooks for agentprof's own tests and benchmarks: the clocks, the timer
/// mode, what this thread's samples account for. The macro never uses
/// them. Unstable: not public API.
#[doc(hidden)]
pub mod __test_hooks {
    pub use crate::cpu::{force_process_timer, this_thread_sampled_cpu_ns};
    pub use crate::thread::clock::{
        read_thread_cpu_clock, read_thread_cpu_clock_fast, set_fast_cpu_clock,
    };
}
