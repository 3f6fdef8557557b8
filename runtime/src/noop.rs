//! The runtime API when built without the `enabled` feature: the same
//! names, doing nothing, so instrumented code compiles unchanged.

use std::future::Future;

use crate::report::{InvocationRecord, Report};

/// Always `false`: this build records nothing.
#[inline]
pub fn is_enabled() -> bool {
    false
}

/// Does nothing: this build records nothing.
#[inline]
pub fn set_enabled(_enabled: bool) {}

/// An empty report.
pub fn report() -> Report {
    Report {
        schema_version: crate::SCHEMA_VERSION,
        ..Report::default()
    }
}

/// Does nothing.
#[inline]
pub fn reset() {}

/// Always empty.
pub fn recent_invocations() -> Vec<InvocationRecord> {
    Vec::new()
}

/// Always `None`.
pub fn invocation(_id: u64) -> Option<InvocationRecord> {
    None
}

/// An invocation handle that carries nothing in this build.
#[derive(Clone, Debug, Default)]
pub struct Context {
    _private: (),
}

/// An empty context.
#[inline]
pub fn current_context() -> Context {
    Context::default()
}

impl Context {
    /// Always `true`.
    pub fn is_empty(&self) -> bool {
        true
    }
    /// Always `None`.
    pub fn invocation_id(&self) -> Option<u64> {
        None
    }
    /// Always `None`.
    pub fn agent(&self) -> Option<&'static str> {
        None
    }
    /// Runs `f`.
    #[inline]
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
    /// Returns `future` unchanged.
    #[inline]
    pub fn scope<F: Future>(&self, future: F) -> F {
        future
    }
}

/// Future extensions; identity functions in this build.
pub trait FutureExt: Future + Sized {
    /// Returns the future unchanged.
    #[inline]
    fn profiled(self, _function: &'static str) -> Self {
        self
    }
    /// Returns the future unchanged.
    #[inline]
    fn in_current_invocation(self) -> Self {
        self
    }
}

impl<F: Future> FutureExt for F {}

/// `tokio::spawn`.
#[cfg(feature = "tokio")]
#[inline]
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future)
}

/// `tokio::task::spawn_blocking`.
#[cfg(feature = "tokio")]
#[inline]
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(f)
}

/// `std::thread::spawn`.
#[inline]
pub fn spawn_thread<F, R>(f: F) -> std::thread::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    std::thread::spawn(f)
}

/// Who an explicitly started invocation is for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceContext {
    /// Agent to charge.
    pub agent_name: String,
    /// Session the invocation belongs to.
    pub session_id: Option<String>,
}

/// What one finished invocation cost (never produced in this build).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceUsage {
    /// The invocation.
    pub invocation_id: u64,
    /// Thread CPU time, µs.
    pub cpu_micros: Option<u64>,
    /// Wall time, µs.
    pub wall_micros: u64,
}

/// Per-agent totals (never produced in this build).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentResourceStats {
    /// Invocations running now.
    pub active_invocations: u64,
    /// Finished invocations.
    pub invocations: u64,
    /// CPU time, µs.
    pub total_cpu_micros: Option<u64>,
    /// Wall time of root invocations, µs.
    pub total_wall_micros: u64,
    /// Mean CPU per root invocation, µs.
    pub avg_cpu_micros: Option<u64>,
    /// Mean wall time per root invocation, µs.
    pub avg_wall_micros: u64,
}

/// Explicit invocations; in this build they run without being measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResourceAttribution {
    _private: (),
}

impl ResourceAttribution {
    /// A handle.
    pub fn new() -> Self {
        Self::default()
    }
    /// Runs `f`; no usage.
    pub fn run<R>(
        &self,
        _ctx: &ResourceContext,
        f: impl FnOnce() -> R,
    ) -> (R, Option<ResourceUsage>) {
        (f(), None)
    }
    /// Runs `future`; no usage.
    pub async fn run_future<F: Future>(
        &self,
        _ctx: &ResourceContext,
        future: F,
    ) -> (F::Output, Option<ResourceUsage>) {
        (future.await, None)
    }
    /// Always `None`.
    pub fn get_usage(&self, _invocation_id: u64) -> Option<ResourceUsage> {
        None
    }
    /// Always empty.
    pub fn agent_stats(&self) -> Vec<(String, AgentResourceStats)> {
        Vec::new()
    }
}

/// The global allocator wrapper; in this build it only forwards.
#[derive(Debug, Default)]
pub struct Allocator<A = std::alloc::System> {
    inner: A,
}

impl Allocator<std::alloc::System> {
    /// Wraps the system allocator.
    pub const fn system() -> Self {
        Self {
            inner: std::alloc::System,
        }
    }
}

impl<A> Allocator<A> {
    /// Wraps `inner`.
    pub const fn new(inner: A) -> Self {
        Self { inner }
    }
}

// SAFETY: every method forwards to the wrapped allocator unchanged.
unsafe impl<A: std::alloc::GlobalAlloc> std::alloc::GlobalAlloc for Allocator<A> {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc(layout) }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc_zeroed(layout) }
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(ptr, layout) }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}

/// Always `false` in this build.
pub fn allocator_installed() -> bool {
    false
}

/// Always `None` in this build.
pub fn memory_stats() -> Option<crate::MemoryStats> {
    None
}
