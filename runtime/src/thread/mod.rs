//! Per-thread state: the clocks, the current-invocation slot and the
//! allocation counters. Everything the SIGPROF handler and the allocator
//! hook may touch lives here, and this layer imports nothing above it.
//!
//! Rules for code in this folder: no lock, no allocation, no panic on any
//! path the handler or the hook can reach; thread-locals are const
//! initialised and have no destructor.

pub(crate) mod clock;
pub(crate) mod memory;
pub(crate) mod slot;
