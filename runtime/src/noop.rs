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

fn compiled_out(what: &str) -> crate::Error {
    crate::Error::Unsupported {
        key: "agentprof".to_owned(),
        what: format!("{what} (agentprof was built without its `enabled` feature)"),
        hint: Some("enable the `enabled` feature of agentprof".to_owned()),
    }
}

/// The heap profiler; it cannot run in this build, so no handle exists.
#[derive(Debug, Clone, Copy)]
pub enum HeapProfiler {}

impl HeapProfiler {
    /// Fails: heap profiling is compiled out.
    pub fn start(_config: crate::HeapProfilerConfig) -> crate::Result<HeapProfiler> {
        Err(compiled_out("heap profiling"))
    }
    /// Always `None`.
    pub fn running() -> Option<HeapProfiler> {
        None
    }
    /// Always `false`.
    pub fn is_running() -> bool {
        false
    }
    /// Always 0.
    pub fn reserved_bytes() -> usize {
        0
    }
    /// Unreachable: no handle exists in this build.
    pub fn stop(&self) {
        match *self {}
    }
    /// Unreachable: no handle exists in this build.
    pub fn snapshot(&self) -> HeapProfile {
        match *self {}
    }
}

/// A heap snapshot; none can exist in this build.
#[derive(Debug, Clone)]
pub enum HeapProfile {}

impl HeapProfile {
    /// Unreachable.
    pub fn to_pprof_gzip(&self) -> Vec<u8> {
        match *self {}
    }
}

/// The CPU profiler; it cannot run in this build, so none can be made.
#[derive(Debug)]
pub enum CpuProfiler {}

impl CpuProfiler {
    /// Fails: CPU profiling is compiled out.
    pub fn new(_config: crate::CpuProfilingConfig) -> crate::Result<Self> {
        Err(compiled_out("CPU profiling"))
    }
    /// Fails: CPU profiling is compiled out.
    pub fn with_frequency(_frequency: u32) -> crate::Result<Self> {
        Err(compiled_out("CPU profiling"))
    }
    /// Unreachable.
    pub fn start(&mut self) -> crate::Result<()> {
        match *self {}
    }
    /// Unreachable.
    pub fn is_running(&self) -> bool {
        match *self {}
    }
    /// Unreachable.
    pub fn mode(&self) -> Option<crate::TimerMode> {
        match *self {}
    }
    /// Unreachable.
    pub fn stop_and_collect(&mut self) -> crate::Result<CpuReport> {
        match *self {}
    }
    /// Unreachable.
    pub fn cut_window(&mut self) -> crate::Result<CpuReport> {
        match *self {}
    }
    /// Unreachable.
    pub fn flamegraph(&mut self) -> crate::Result<Vec<u8>> {
        match *self {}
    }
    /// Unreachable.
    pub fn pprof(&mut self) -> crate::Result<Vec<u8>> {
        match *self {}
    }
}

/// A CPU profile; none can exist in this build.
#[derive(Debug, Clone)]
pub enum CpuReport {}

impl CpuReport {
    /// Unreachable.
    pub fn sample_count(&self) -> u64 {
        match *self {}
    }
    /// Unreachable.
    pub fn total_cpu_ns(&self) -> u64 {
        match *self {}
    }
    /// Unreachable.
    pub fn delivered_hz(&self) -> f64 {
        match *self {}
    }
    /// Unreachable.
    pub fn cpu_by(&self, _key: &str) -> std::collections::BTreeMap<String, u64> {
        match *self {}
    }
    /// Unreachable.
    pub fn filter_label(&self, _key: &str, _value: &str) -> CpuReport {
        match *self {}
    }
    /// Unreachable.
    pub fn pprof_gzip(&self) -> Vec<u8> {
        match *self {}
    }
    /// Unreachable.
    pub fn folded(&self) -> String {
        match *self {}
    }
    /// Unreachable.
    pub fn flamegraph_svg(&self) -> crate::Result<Vec<u8>> {
        match *self {}
    }
}

/// The profiler entry point; starts nothing in this build.
pub struct Profiler {
    _private: (),
}

impl Profiler {
    /// Validates `config`.
    pub fn from_config(config: &crate::Config) -> crate::Result<Profiler> {
        config.validate()?;
        Ok(Profiler { _private: () })
    }
    /// A builder whose settings are accepted and unused.
    pub fn builder() -> ProfilerBuilder {
        ProfilerBuilder { _private: () }
    }
    /// Starts nothing.
    pub fn start(self) -> crate::Result<RunningProfiler> {
        Ok(RunningProfiler { _private: () })
    }
}

/// Builder of [`Profiler`]; every setting is a no-op in this build.
pub struct ProfilerBuilder {
    _private: (),
}

impl ProfilerBuilder {
    /// No-op.
    pub fn window(self, _window: std::time::Duration) -> Self {
        self
    }
    /// No-op.
    pub fn cpu_frequency(self, _hz: u32) -> Self {
        self
    }
    /// No-op.
    pub fn heap_profiling(self, _on: bool) -> Self {
        self
    }
    /// No-op.
    pub fn queue_size(self, _windows: usize) -> Self {
        self
    }
    /// No-op.
    pub fn shutdown_timeout(self, _timeout: std::time::Duration) -> Self {
        self
    }
    /// No-op.
    pub fn file_exporter(self, _dir: impl Into<String>) -> Self {
        self
    }
    /// No-op.
    pub fn exporter(self, _exporter: impl crate::export::ProfileExporter + 'static) -> Self {
        self
    }
    /// The profiler.
    pub fn build(self) -> crate::Result<Profiler> {
        Ok(Profiler { _private: () })
    }
}

/// A profiler that runs nothing.
pub struct RunningProfiler {
    _private: (),
}

impl RunningProfiler {
    /// All zero.
    pub fn stats(&self) -> crate::export::CollectorStats {
        crate::export::CollectorStats::default()
    }
    /// Returns at once.
    pub fn shutdown(self) -> crate::export::ShutdownSummary {
        crate::export::ShutdownSummary {
            stats: crate::export::CollectorStats::default(),
            export_timed_out: false,
        }
    }
}
