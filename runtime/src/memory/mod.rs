//! Memory: the counting global allocator (per-invocation and process
//! totals), the sampled heap profiler it feeds, and the process's system
//! memory (RSS, virtual size) with its timeline.
//!
//! The allocator hook is a hot path with the rules of the thread layer:
//! no lock, no blocking, no recursion; see `allocator.rs`.

mod allocator;
mod heap;
mod system;

pub use allocator::{allocator_installed, memory_stats, Allocator};
pub(crate) use heap::growth as heap_growth;
pub(crate) use heap::OwnerBytes;
pub use heap::{HeapProfile, HeapProfiler, HeapStack};
pub(crate) use system::timeline;
pub use system::{start_memory_timeline, stop_memory_timeline, system_memory};
