//! Per-thread state: the clocks, the current-invocation slot and the
//! allocation counters, and this layer imports nothing above it. The
//! SIGPROF handler and the allocator hook read this state; beyond this
//! folder they also reach `cpu/signal.rs`, `cpu/buffer.rs`, the baselines
//! of `cpu/timer.rs`, `unwind.rs` and `memory/heap/` (the hook's sampling
//! path), which follow the same rules.
//!
//! Rules for code in this folder: no lock, no allocation, no panic on any
//! path the handler or the hook can reach; thread-locals are const
//! initialised and have no destructor.

pub(crate) mod clock;
pub(crate) mod memory;
pub(crate) mod slot;
