//! The runtime API when built without the `enabled` feature: the same
//! names, doing nothing, so instrumented code compiles unchanged.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};

use pin_project_lite::pin_project;

use crate::model::{
    AgentResourceStats, HeapDropped, InvocationRecord, Report, ResourceContext, ResourceUsage,
    RunningInvocation, SystemMemoryInfo, TimerMode,
};
use crate::pprof::Profile;

/// Makes the profile and report types below impossible to construct in
/// this build, while keeping their fields, so that code reading them
/// compiles unchanged and nothing pretends to be a measurement.
#[derive(Clone, Copy, Debug)]
enum Never {}

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
        schema_version: crate::model::SCHEMA_VERSION,
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

/// Always empty.
pub fn running_invocations() -> Vec<RunningInvocation> {
    Vec::new()
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
    /// Wraps `future` without measuring it.
    #[inline]
    pub fn scope<F: Future>(&self, future: F) -> InInvocation<F> {
        InInvocation { future }
    }
}

pin_project! {
    /// A future polled as it is: nothing is measured in this build.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct ProfiledFuture<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for ProfiledFuture<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}

pin_project! {
    /// A future polled as it is: nothing is propagated in this build.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct InInvocation<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for InInvocation<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}

/// Future extensions; pass-through wrappers in this build.
pub trait FutureExt: Future + Sized {
    /// Wraps the future without measuring it.
    #[inline]
    fn profiled(self, _function: &'static str) -> ProfiledFuture<Self> {
        ProfiledFuture { future: self }
    }
    /// Wraps the future without propagating anything.
    #[inline]
    fn in_current_invocation(self) -> InInvocation<Self> {
        InInvocation { future: self }
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
pub fn memory_stats() -> Option<crate::model::MemoryStats> {
    None
}

/// Fails: system memory readings are compiled out.
pub fn system_memory() -> crate::error::Result<SystemMemoryInfo> {
    Err(compiled_out("system memory readings"))
}

/// Fails: the memory timeline is compiled out.
pub fn start_memory_timeline(_interval: Duration, _capacity: usize) -> crate::error::Result<()> {
    Err(compiled_out("the memory timeline"))
}

/// Does nothing.
pub fn stop_memory_timeline() {}

fn compiled_out(what: &str) -> crate::error::Error {
    crate::error::Error::Unsupported {
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
    pub fn start(_config: crate::config::HeapProfilerConfig) -> crate::error::Result<HeapProfiler> {
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
    /// Always nothing.
    pub fn dropped() -> HeapDropped {
        HeapDropped::default()
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
pub struct HeapProfile {
    /// Sampled stacks.
    pub stacks: Vec<HeapStack>,
    /// Mean sampling interval in bytes.
    pub sample_interval: u64,
    /// When it was taken.
    pub taken_at: SystemTime,
    never: Never,
}

impl HeapProfile {
    /// Unreachable.
    pub fn to_pprof(&self) -> Profile {
        match self.never {}
    }
    /// Unreachable.
    pub fn to_pprof_gzip(&self) -> Vec<u8> {
        match self.never {}
    }
}

/// One sampled stack; none can exist in this build.
#[derive(Clone, Debug)]
pub struct HeapStack {
    /// Agent of the invocation that allocated.
    pub agent: Option<&'static str>,
    /// Function of the invocation that allocated.
    pub function: Option<&'static str>,
    /// Raw samples taken.
    pub samples: u64,
    never: Never,
}

impl HeapStack {
    /// Unreachable.
    pub fn alloc_estimate(&self) -> (i64, i64) {
        match self.never {}
    }
    /// Unreachable.
    pub fn inuse_estimate(&self) -> (i64, i64) {
        match self.never {}
    }
    /// Unreachable.
    pub fn function_names(&self) -> Vec<String> {
        match self.never {}
    }
}

/// The CPU profiler; it cannot run in this build, so none can be made.
#[derive(Debug)]
pub enum CpuProfiler {}

impl CpuProfiler {
    /// Fails: CPU profiling is compiled out.
    pub fn new(_config: crate::config::CpuProfilingConfig) -> crate::error::Result<Self> {
        Err(compiled_out("CPU profiling"))
    }
    /// Fails: CPU profiling is compiled out.
    pub fn with_frequency(_frequency: u32) -> crate::error::Result<Self> {
        Err(compiled_out("CPU profiling"))
    }
    /// Unreachable.
    pub fn start(&mut self) -> crate::error::Result<()> {
        match *self {}
    }
    /// Unreachable.
    pub fn is_running(&self) -> bool {
        match *self {}
    }
    /// Unreachable.
    pub fn mode(&self) -> Option<TimerMode> {
        match *self {}
    }
    /// Unreachable.
    pub fn stop_and_collect(&mut self) -> crate::error::Result<CpuReport> {
        match *self {}
    }
    /// Unreachable.
    pub fn cut_window(&mut self) -> crate::error::Result<CpuReport> {
        match *self {}
    }
    /// Unreachable.
    pub fn flamegraph(&mut self) -> crate::error::Result<Vec<u8>> {
        match *self {}
    }
    /// Unreachable.
    pub fn pprof(&mut self) -> crate::error::Result<Vec<u8>> {
        match *self {}
    }
    /// Always 0.
    pub fn reserved_bytes() -> usize {
        0
    }
}

/// One sampled stack; none can exist in this build.
#[derive(Clone, Debug)]
pub struct CpuSample {
    /// Agent of the invocation running when sampled.
    pub agent: Option<&'static str>,
    /// Function of that invocation.
    pub function: Option<&'static str>,
    /// Its id.
    pub invocation_id: Option<u64>,
    /// OpenTelemetry span id of the invocation's span.
    pub span_id: Option<u64>,
    /// OpenTelemetry trace id of that span.
    pub trace_id: Option<u128>,
    /// Thread id.
    pub thread: u64,
    /// Samples.
    pub count: u64,
    /// Thread CPU time they stand for, ns.
    pub cpu_ns: u64,
    never: Never,
}

impl CpuSample {
    /// Unreachable.
    pub fn function_names(&self) -> Vec<String> {
        match self.never {}
    }
}

/// A CPU profile; none can exist in this build.
#[derive(Debug, Clone)]
pub struct CpuReport {
    /// Samples.
    pub samples: Vec<CpuSample>,
    /// Asked-for rate per CPU second.
    pub requested_hz: u32,
    /// Sampling period, ns of CPU time.
    pub period_ns: u64,
    /// When sampling started.
    pub started_at: SystemTime,
    /// How long it ran.
    pub duration: Duration,
    /// How signals were delivered.
    pub mode: TimerMode,
    /// Modules whose unwind tables were loaded.
    pub modules: usize,
    /// Samples lost because the buffer was full.
    pub dropped_buffer_full: u64,
    /// Samples lost because every unwinder scratch area was in use.
    pub dropped_unwinder_busy: u64,
    /// Samples lost past the distinct-key limit.
    pub dropped_keys: u64,
    never: Never,
}

impl CpuReport {
    /// Unreachable.
    pub fn pprof(&self) -> Profile {
        match self.never {}
    }
    /// Unreachable.
    pub fn differential_flamegraph(
        before: &CpuReport,
        _after: &CpuReport,
    ) -> crate::error::Result<Vec<u8>> {
        match before.never {}
    }
    /// Unreachable.
    pub fn sample_count(&self) -> u64 {
        match self.never {}
    }
    /// Unreachable.
    pub fn total_cpu_ns(&self) -> u64 {
        match self.never {}
    }
    /// Unreachable.
    pub fn delivered_hz(&self) -> f64 {
        match self.never {}
    }
    /// Unreachable.
    pub fn cpu_by(&self, _key: &str) -> std::collections::BTreeMap<String, u64> {
        match self.never {}
    }
    /// Unreachable.
    pub fn filter_label(&self, _key: &str, _value: &str) -> CpuReport {
        match self.never {}
    }
    /// Unreachable.
    pub fn pprof_gzip(&self) -> Vec<u8> {
        match self.never {}
    }
    /// Unreachable.
    pub fn folded(&self) -> String {
        match self.never {}
    }
    /// Unreachable.
    pub fn flamegraph_svg(&self) -> crate::error::Result<Vec<u8>> {
        match self.never {}
    }
}

/// The profiler entry point; starts nothing in this build.
pub struct Profiler {
    _private: (),
}

impl Profiler {
    /// Validates `config`.
    pub fn from_config(config: &crate::config::Config) -> crate::error::Result<Profiler> {
        config.validate()?;
        Ok(Profiler { _private: () })
    }
    /// A builder whose settings are accepted and unused.
    pub fn builder() -> ProfilerBuilder {
        ProfilerBuilder { _private: () }
    }
    /// Starts nothing.
    pub fn start(self) -> crate::error::Result<RunningProfiler> {
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
    pub fn heap_sample_interval(self, _bytes: u64) -> Self {
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
    pub fn exporter(
        self,
        _exporter: impl crate::pipeline::export::ProfileExporter + 'static,
    ) -> Self {
        self
    }
    /// The profiler.
    pub fn build(self) -> crate::error::Result<Profiler> {
        Ok(Profiler { _private: () })
    }
}

/// A profiler that runs nothing.
pub struct RunningProfiler {
    _private: (),
}

impl RunningProfiler {
    /// All zero.
    pub fn stats(&self) -> crate::pipeline::export::CollectorStats {
        crate::pipeline::export::CollectorStats::default()
    }
    /// Returns at once.
    pub fn shutdown(self) -> crate::error::Result<crate::pipeline::export::ShutdownSummary> {
        Ok(crate::pipeline::export::ShutdownSummary {
            stats: crate::pipeline::export::CollectorStats::default(),
            export_timed_out: false,
        })
    }
}
