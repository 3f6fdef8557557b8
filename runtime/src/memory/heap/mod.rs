//! The sampled heap profiler.
//!
//! Sampling is byte-based and Poisson, as Go's `MemProfileRate` and
//! jemalloc's `lg_prof_sample`: each thread counts allocated bytes down from
//! an exponentially distributed interval with the configured mean, and the
//! allocation that crosses zero is sampled, so an allocation of `s` bytes is
//! sampled with probability `1 - exp(-s / mean)`. A sample records the
//! stack (unwound through `.eh_frame` by the platform unwinder, into a
//! fixed-size buffer, with the allocator's reentrancy guard set) and the
//! agent and function of the current invocation. Each sample is weighted to
//! an unbiased estimate when it is taken (Go's scaling, per sample, so that
//! changing the interval does not re-weight older samples).
//!
//! Frees of sampled pointers are matched through a fixed side table; see
//! [`table`].
//!
//! Hot path: [`on_alloc`] and [`on_free`] run inside the allocator hook, on
//! every allocation and free, with the hook's guard set: no lock, no
//! allocation (the stack goes into a fixed buffer), only atomics on the
//! pre-allocated tables; what does not fit is dropped and counted.

mod table;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::*};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::built_in::Recording;
use crate::config::{HeapProfilerConfig, DEFAULT_SAMPLE_INTERVAL};
use crate::error::{Error, Result};
use crate::model::{HeapDropped, HeapGrowth, INSTALL_HINT};
use crate::pprof::{self, Profile, ProfileBuilder};
use crate::thread::clock;
use crate::thread::memory::{allocator_installed, untracked, ThreadMemory};
use crate::thread::slot::{self, Owner};
use crate::unwind::{Registers, StackUnwinder};
use table::{Tables, Weight, MAX_DEPTH};

static ACTIVE: AtomicBool = AtomicBool::new(false);
static INTERVAL: AtomicU64 = AtomicU64::new(DEFAULT_SAMPLE_INTERVAL);
static TABLES: AtomicPtr<Tables> = AtomicPtr::new(std::ptr::null_mut());
/// Stack unwinder for samples, prepared at the first start: a stack that
/// enters a module loaded later ends there.
static UNWINDER: OnceLock<StackUnwinder> = OnceLock::new();
/// Threads that can unwind a sample at the same time with it.
const CONCURRENT_UNWINDS: usize = 4;

#[inline]
fn tables() -> Option<&'static Tables> {
    // SAFETY: only null or a leaked, never-freed `Tables` is stored, and it
    // is published with Release after construction.
    unsafe { TABLES.load(Acquire).as_ref() }
}

/// The process-wide sampled heap profiler: a handle from [`start`] or
/// [`running`].
///
/// ```
/// use agentprof::{heap::HeapProfiler, heap::HeapProfilerConfig};
///
/// #[global_allocator]
/// static ALLOC: agentprof::Allocator = agentprof::Allocator::system();
///
/// fn main() -> Result<(), agentprof::Error> {
///     let heap = HeapProfiler::start(HeapProfilerConfig {
///         // Mean bytes between samples (the default is 512 KiB, as Go's).
///         sample_interval: 4096,
///         ..HeapProfilerConfig::default()
///     })?;
///     let kept: Vec<Vec<u8>> = (0..256).map(|_| vec![1u8; 16 * 1024]).collect();
///     let profile = heap.snapshot();
///     // Unbiased estimates from the samples: about 4 MiB still in use.
///     let in_use: i64 = profile.stacks.iter().map(|s| s.inuse_estimate().1).sum();
///     assert!(in_use > 2 << 20, "estimated {in_use} bytes in use");
///     // For `go tool pprof -sample_index=inuse_space`.
///     assert!(!profile.to_pprof_gzip().is_empty());
///     heap.stop();
///     drop(kept);
///     Ok(())
/// }
/// ```
///
/// [`start`]: HeapProfiler::start
/// [`running`]: HeapProfiler::running
#[derive(Debug, Clone, Copy)]
pub struct HeapProfiler {
    _recording: Recording,
}

impl HeapProfiler {
    /// Reserves the tables (once per process; later starts keep the first
    /// sizes) and starts sampling.
    pub fn start(config: HeapProfilerConfig) -> Result<HeapProfiler> {
        let recording = Recording::get("the heap profiler")?;
        if config.sample_interval == 0 {
            // A configuration's `sample_interval_bytes` was checked where
            // it was read; this names the field the caller set.
            return Err(Error::InvalidConfig {
                key: "HeapProfilerConfig::sample_interval".to_owned(),
                message: "must be at least 1 byte".to_owned(),
            });
        }
        if !allocator_installed() {
            return Err(Error::Unsupported {
                key: crate::config::keys::MEMORY_HEAP_PROFILING.path.to_owned(),
                what: "heap profiling without the counting allocator".to_owned(),
                hint: Some(INSTALL_HINT.to_owned()),
            });
        }
        if tables().is_none() {
            let fresh = Box::into_raw(Box::new(Tables::new(
                config.max_stacks,
                config.max_live_samples,
            )));
            if TABLES
                .compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire)
                .is_err()
            {
                // SAFETY: never published; this is the only reference.
                drop(unsafe { Box::from_raw(fresh) });
            }
        }
        // The CPU sampler's unwinder over `.eh_frame` tables prepared now,
        // once: no lock and no allocation per sample.
        untracked(|| UNWINDER.get_or_init(|| StackUnwinder::new(CONCURRENT_UNWINDS)));
        INTERVAL.store(config.sample_interval, Relaxed);
        ACTIVE.store(true, Release);
        Ok(HeapProfiler {
            _recording: recording,
        })
    }

    /// Stops sampling; frees of already-sampled pointers are still matched.
    pub fn stop(&self) {
        ACTIVE.store(false, Release);
    }

    /// Whether allocations are being sampled.
    pub fn is_running() -> bool {
        ACTIVE.load(Relaxed)
    }

    /// A handle on the heap profiler if it is sampling (started by
    /// [`HeapProfiler::start`] or by configuration).
    pub fn running() -> Option<HeapProfiler> {
        let recording = Recording::get("the heap profiler").ok()?;
        Self::is_running().then_some(HeapProfiler {
            _recording: recording,
        })
    }

    /// Bytes the tables reserve (0 before the first start).
    pub fn reserved_bytes() -> usize {
        tables().map_or(0, Tables::reserved_bytes)
            + UNWINDER.get().map_or(0, StackUnwinder::reserved_bytes)
    }

    /// What did not fit.
    pub fn dropped() -> HeapDropped {
        tables().map_or_else(HeapDropped::default, |t| HeapDropped {
            stacks: t.stacks_dropped.load(Relaxed),
            live: t.live_dropped.load(Relaxed),
        })
    }

    /// Everything sampled so far, as a profile. The report's heap growth
    /// compares the last two of these.
    pub fn snapshot(&self) -> HeapProfile {
        untracked(|| {
            let profile = self.take_snapshot();
            remember_for_growth(&profile);
            profile
        })
    }

    /// A snapshot for another reader (the live endpoint, Cloud Profiler)
    /// that leaves the growth between the collector's windows alone.
    pub(crate) fn snapshot_aside(&self) -> HeapProfile {
        untracked(|| self.take_snapshot())
    }

    fn take_snapshot(&self) -> HeapProfile {
        let mut merged: HashMap<(Vec<usize>, usize), HeapStack> = HashMap::new();
        if let Some(tables) = tables() {
            let known = crate::aggregate::owner_keys();
            for bucket in tables.buckets.iter() {
                let Some((frames, owner)) = bucket.contents(&known) else {
                    continue;
                };
                let key = (frames.clone(), owner.map_or(0, Owner::key));
                let stack = merged.entry(key).or_insert_with(|| HeapStack {
                    frames,
                    agent: owner.and_then(|o| o.agent),
                    function: owner.map(|o| o.function),
                    ..HeapStack::default()
                });
                stack.samples += bucket.samples.load(Relaxed);
                stack.alloc_objects_milli += bucket.alloc_objects_milli.load(Relaxed);
                stack.alloc_bytes += bucket.alloc_bytes.load(Relaxed);
                stack.free_objects_milli += bucket.free_objects_milli.load(Relaxed);
                stack.free_bytes += bucket.free_bytes.load(Relaxed);
            }
        }
        let mut stacks: Vec<HeapStack> = merged.into_values().filter(|s| s.samples > 0).collect();
        // Stacks share most frames: each address is looked at once.
        let mut frame_kinds: HashMap<usize, FrameKind> = HashMap::new();
        for stack in &mut stacks {
            // Allocated by the profiler's own code (a report, a start, a
            // symbol table) on any thread: the profiler's, whoever called.
            if stack.allocated_by_profiler(&mut frame_kinds) {
                stack.agent = slot::PROFILER_OWNER.agent;
                stack.function = Some(slot::PROFILER_OWNER.function);
            }
        }
        HeapProfile {
            stacks,
            sample_interval: INTERVAL.load(Relaxed),
            taken_at: SystemTime::now(),
        }
    }
}

/// One sampled stack's estimates (already unbiased).
#[derive(Clone, Debug, Default)]
pub struct HeapStack {
    frames: Vec<usize>,
    /// Agent of the invocation that allocated.
    pub agent: Option<&'static str>,
    /// Function of the invocation that allocated.
    pub function: Option<&'static str>,
    /// Raw samples taken.
    pub samples: u64,
    alloc_objects_milli: u64,
    alloc_bytes: u64,
    free_objects_milli: u64,
    free_bytes: u64,
}

/// What one sampled allocation of `size` bytes stands for, unbiased: it was
/// sampled with probability `1 - exp(-size / interval)`, so it counts
/// `1 / that` allocations (Go's `scaleHeapSample`, applied per sample).
fn weight(size: u64, interval: u64) -> Weight {
    let factor = if interval <= 1 {
        1.0
    } else {
        1.0 / (1.0 - (-(size.max(1) as f64) / interval as f64).exp())
    };
    Weight {
        objects_milli: (factor * 1024.0).round().min(u32::MAX as f64) as u32,
        bytes: (size as f64 * factor).round() as u64,
    }
}

/// What a heap stack's frame is, looking for the code that allocated.
#[derive(Clone, Copy)]
enum FrameKind {
    /// The allocator hook, trimmed.
    Hook,
    /// The standard library's allocation and collection machinery.
    Library,
    /// agentprof's own code.
    Profiler,
    /// The program's code.
    Program,
}

/// The standard library's allocation and collection machinery, which is
/// not where an allocation comes from.
fn library_frame(name: &str) -> bool {
    [
        "alloc::",
        "core::",
        "std::",
        "<alloc::",
        "<core::",
        "<std::",
        "hashbrown::",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// Frames of the allocator hook and the allocator shims, trimmed from the
/// leaf end (as Go trims `runtime.mallocgc`). The profiler's other code
/// stays: an allocation it makes is its own, and shown as such.
fn profiler_frame(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "agentprof_runtime::memory::",
        "agentprof_runtime::thread::memory::",
        // Inlined into the sampler's stack capture, where unwinding starts.
        "agentprof_runtime::unwind::Registers::here",
        "backtrace::",
        "__rust",
        "__rdl_",
        "alloc::alloc::",
        "core::alloc::",
        "std::alloc::",
        "std::thread::local::",
        "std::sys::thread_local",
        "core::ops::function::FnOnce::call_once",
        "0x",
    ];
    // `GlobalAlloc::alloc[agentprof_runtime::..]`: our impl of a std trait.
    PREFIXES.iter().any(|p| name.starts_with(p)) || name.contains("[agentprof_runtime::memory::")
}

/// A heap snapshot.
#[derive(Clone, Debug)]
pub struct HeapProfile {
    /// Sampled stacks.
    pub stacks: Vec<HeapStack>,
    /// Mean sampling interval in bytes.
    pub sample_interval: u64,
    /// When it was taken.
    pub taken_at: SystemTime,
}

impl HeapStack {
    /// Estimated (allocations, bytes) allocated.
    pub fn alloc_estimate(&self) -> (i64, i64) {
        (
            (self.alloc_objects_milli / 1024) as i64,
            self.alloc_bytes as i64,
        )
    }

    /// Estimated (allocations, bytes) still in use.
    pub fn inuse_estimate(&self) -> (i64, i64) {
        (
            (self
                .alloc_objects_milli
                .saturating_sub(self.free_objects_milli)
                / 1024) as i64,
            self.alloc_bytes.saturating_sub(self.free_bytes) as i64,
        )
    }

    /// The same stack in another snapshot has the same key.
    fn key(&self) -> (&[usize], Option<&'static str>, Option<&'static str>) {
        (&self.frames, self.agent, self.function)
    }

    /// The pprof labels of its samples.
    fn labels(&self) -> Vec<(&'static str, &'static str)> {
        let mut labels = Vec::new();
        if let Some(agent) = self.agent {
            labels.push(("agent", agent));
        }
        if let Some(function) = self.function {
            labels.push(("function", function));
        }
        labels
    }

    /// Where the heap tables list this stack: the instrumented function
    /// whose invocation allocated, named as the report names it (its
    /// closures and async state machines are part of it); outside any
    /// invocation, the innermost frame of the program's own code, closures
    /// folded into their function.
    pub fn site(&self) -> String {
        if let Some(function) = self.function {
            return function.to_owned();
        }
        fold_closures(&self.allocating_frame())
    }

    /// Whether the code that asked for the memory is the profiler's own.
    fn allocated_by_profiler(&self, kinds: &mut HashMap<usize, FrameKind>) -> bool {
        for &address in &self.frames {
            let kind = *kinds.entry(address).or_insert_with(|| {
                let names = pprof::symbolize(address);
                let Some(name) = names.first().map(|f| f.name.as_str()) else {
                    return FrameKind::Library;
                };
                if profiler_frame(name) {
                    FrameKind::Hook
                } else if library_frame(name) {
                    FrameKind::Library
                } else if name.starts_with("agentprof_runtime::") {
                    FrameKind::Profiler
                } else {
                    FrameKind::Program
                }
            });
            match kind {
                FrameKind::Hook | FrameKind::Library => continue,
                FrameKind::Profiler => return true,
                FrameKind::Program => return false,
            }
        }
        false
    }

    /// The innermost frame of the code that asked for the memory: the
    /// first below the allocator hook that is not the standard library's
    /// allocation and collection machinery.
    fn allocating_frame(&self) -> String {
        let names = self.function_names();
        names
            .iter()
            .find(|n| !library_frame(n))
            .or(names.first())
            .cloned()
            .unwrap_or_else(|| "?".to_owned())
    }

    /// Function names of the stack, leaf first, profiler frames trimmed.
    pub fn function_names(&self) -> Vec<String> {
        self.frames
            .iter()
            .flat_map(|&f| pprof::symbolize(f))
            .map(|f| f.name)
            .skip_while(|n| profiler_frame(n))
            .collect()
    }
}

impl HeapProfile {
    /// The profile in pprof form: sample types alloc_objects/count,
    /// alloc_space/bytes, inuse_objects/count, inuse_space/bytes, with
    /// `agent` and `function` labels.
    pub fn to_pprof(&self) -> Profile {
        untracked(|| self.build_pprof())
    }

    fn build_pprof(&self) -> Profile {
        let mut builder = ProfileBuilder::new(&[
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ]);
        for stack in &self.stacks {
            let (alloc_objects, alloc_space) = stack.alloc_estimate();
            let (inuse_objects, inuse_space) = stack.inuse_estimate();
            builder.sample(
                &stack.frames,
                profiler_frame,
                vec![alloc_objects, alloc_space, inuse_objects, inuse_space],
                &stack.labels(),
            );
        }
        builder.finish(
            ("space", "bytes"),
            self.sample_interval as i64,
            "inuse_space",
            unix_nanos(self.taken_at),
            0,
        )
    }

    /// What was allocated between `earlier` and this snapshot, in pprof
    /// form: only alloc_objects/count and alloc_space/bytes (in-use figures
    /// have no meaning for a stretch of time), the stretch as duration.
    pub fn allocations_since(&self, earlier: &HeapProfile) -> Profile {
        untracked(|| {
            let before: HashMap<_, _> = earlier
                .stacks
                .iter()
                .map(|s| (s.key(), (s.alloc_objects_milli, s.alloc_bytes)))
                .collect();
            let mut builder =
                ProfileBuilder::new(&[("alloc_objects", "count"), ("alloc_space", "bytes")]);
            for stack in &self.stacks {
                let (objects_before, bytes_before) =
                    before.get(&stack.key()).copied().unwrap_or_default();
                let objects = stack.alloc_objects_milli.saturating_sub(objects_before) / 1024;
                let bytes = stack.alloc_bytes.saturating_sub(bytes_before);
                if objects == 0 && bytes == 0 {
                    continue;
                }
                builder.sample(
                    &stack.frames,
                    profiler_frame,
                    vec![objects as i64, bytes as i64],
                    &stack.labels(),
                );
            }
            let stretch = self
                .taken_at
                .duration_since(earlier.taken_at)
                .unwrap_or(Duration::ZERO);
            builder.finish(
                ("space", "bytes"),
                self.sample_interval as i64,
                "alloc_space",
                unix_nanos(earlier.taken_at),
                stretch.as_nanos() as i64,
            )
        })
    }

    /// Gzipped pprof bytes (`mem_profile_*.pb.gz`).
    pub fn to_pprof_gzip(&self) -> Vec<u8> {
        self.to_pprof().encode_gzip()
    }

    /// Estimated in-use bytes per ([site](HeapStack::site), agent).
    fn inuse_by_site(&self) -> HashMap<(String, Option<&'static str>), i64> {
        let mut sites = HashMap::new();
        for stack in &self.stacks {
            *sites.entry((stack.site(), stack.agent)).or_default() += stack.inuse_estimate().1;
        }
        sites
    }

    /// Estimated in-use bytes per (agent, function) of the invocation that
    /// allocated; the profiler's own under agent `"agentprof"`.
    pub(crate) fn inuse_by_owner(&self) -> OwnerBytes {
        let mut owners = HashMap::new();
        for stack in &self.stacks {
            *owners.entry((stack.agent, stack.function)).or_default() += stack.inuse_estimate().1;
        }
        owners
    }
}

/// Bytes per (agent, function) of an invocation.
pub(crate) type OwnerBytes = HashMap<(Option<&'static str>, Option<&'static str>), i64>;

/// `svc::Agent::run::{{closure}}::{{closure}}` is `svc::Agent::run`: an
/// async fn's state machine and its closures are the fn's own code.
fn fold_closures(name: &str) -> String {
    // A trait impl's `[Type]` (see `readable_name`) follows the path.
    let (path, implementor) = match name.strip_suffix(']').and_then(|n| n.rfind('[')) {
        Some(open) => name.split_at(open),
        None => (name, ""),
    };
    let mut folded = path;
    while let Some(outer) = folded
        .strip_suffix("::{{closure}}")
        .or_else(|| folded.strip_suffix("::{closure}"))
    {
        folded = outer;
    }
    format!("{folded}{implementor}")
}

/// A pprof `time_nanos`.
fn unix_nanos(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as i64
}

type Sites = HashMap<(String, Option<&'static str>), i64>;
static HISTORY: Mutex<(Option<Sites>, Option<Sites>)> = Mutex::new((None, None));

fn remember_for_growth(profile: &HeapProfile) {
    let sites = profile.inuse_by_site();
    let mut history = HISTORY.lock().unwrap_or_else(|e| e.into_inner());
    history.0 = history.1.take();
    history.1 = Some(sites);
}

/// The sites whose estimated in-use bytes grew most between the last two
/// snapshots, largest growth first (at most 10).
pub(crate) fn growth() -> Vec<HeapGrowth> {
    let history = HISTORY.lock().unwrap_or_else(|e| e.into_inner());
    let (Some(older), Some(newer)) = (&history.0, &history.1) else {
        return Vec::new();
    };
    let mut grown: Vec<HeapGrowth> = newer
        .iter()
        .map(|((function, agent), &inuse)| HeapGrowth {
            function: function.clone(),
            agent: agent.map(str::to_owned),
            inuse_bytes: inuse,
            growth_bytes: inuse - older.get(&(function.clone(), *agent)).copied().unwrap_or(0),
        })
        .filter(|g| g.growth_bytes > 0)
        .collect();
    grown.sort_by_key(|g| std::cmp::Reverse(g.growth_bytes));
    grown.truncate(10);
    grown
}

// ---- the allocator's side --------------------------------------------------

// safe zone: no lock, no allocation (runtime/tests/layers.rs)
fn next_random(m: &ThreadMemory) -> u64 {
    let mut x = m.rng.get();
    if x == 0 {
        // Seed from the thread's identity and the clock.
        x = mix_seed(slot::thread_index() as u64, clock::monotonic_ns());
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    m.rng.set(x);
    x
}

fn mix_seed(a: u64, b: u64) -> u64 {
    let x = (a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (x ^ (x >> 31)) | 1
}

/// An exponentially distributed interval with mean `mean` bytes.
fn draw_interval(m: &ThreadMemory, mean: u64) -> i64 {
    if mean <= 1 {
        return 0;
    }
    let uniform = (next_random(m) >> 11) as f64 / (1u64 << 53) as f64;
    (-(1.0 - uniform).ln() * mean as f64) as i64
}

/// Whether the heap profiler samples now (the hook's cold path asks).
#[inline]
pub(crate) fn active() -> bool {
    ACTIVE.load(Relaxed)
}

/// Bytes until the next sample: exponential with the configured mean.
pub(crate) fn next_interval(m: &ThreadMemory) -> i64 {
    draw_interval(m, INTERVAL.load(Relaxed))
}

/// Records a sampled allocation (called with the hook's guard set);
/// `profiler_own` when one of the profiler's own threads allocated.
#[cold]
pub(crate) fn record(ptr: usize, size: u64, profiler_own: bool) {
    let Some(tables) = tables() else { return };
    let mut frames = [0usize; MAX_DEPTH];
    let depth = capture_stack(&mut frames);
    let owner = if profiler_own {
        slot::PROFILER_OWNER.key()
    } else {
        // SAFETY: the slot points at an `Active` that stays live until
        // this thread leaves it, which it cannot do inside this allocation.
        unsafe { slot::current().as_ref() }.map_or(0, |a| a.owner.key())
    };
    if let Some(bucket_index) = tables.bucket(&frames[..depth], owner) {
        let bucket = &tables.buckets[bucket_index as usize];
        let weight = weight(size, INTERVAL.load(Relaxed));
        bucket.samples.fetch_add(1, Relaxed);
        bucket
            .alloc_objects_milli
            .fetch_add(weight.objects_milli as u64, Relaxed);
        bucket.alloc_bytes.fetch_add(weight.bytes, Relaxed);
        tables.insert_live(ptr, bucket_index, weight);
    }
}

/// Called by the allocator hook for every free.
#[inline]
pub(crate) fn on_free(ptr: *mut u8) {
    let Some(tables) = tables() else { return };
    if !tables.maybe_live(ptr as usize) {
        return;
    }
    free_sampled(tables, ptr);
}

#[cold]
fn free_sampled(tables: &Tables, ptr: *mut u8) {
    if let Some(taken) = tables.remove_live(ptr as usize) {
        account_free(tables, taken);
    }
}

fn account_free(tables: &Tables, (bucket, weight): (u32, Weight)) {
    let bucket = &tables.buckets[bucket as usize];
    bucket
        .free_objects_milli
        .fetch_add(weight.objects_milli as u64, Relaxed);
    bucket.free_bytes.fetch_add(weight.bytes, Relaxed);
}

/// A sampled allocation taken out of the live table while it is resized.
pub(crate) struct Resizing(Option<(u32, Weight)>);

/// Before a `realloc` of `ptr`: takes its sample out of the live table now,
/// while `ptr` is still ours. After the inner realloc frees it, another
/// thread may get the same address and sample it; matching the free only
/// then would remove that thread's sample instead.
#[inline]
pub(crate) fn before_resize(ptr: *mut u8) -> Resizing {
    match tables() {
        Some(tables) if tables.maybe_live(ptr as usize) => {
            Resizing(tables.remove_live(ptr as usize))
        }
        _ => Resizing(None),
    }
}

/// After the `realloc`: the old block is freed (or, when the realloc
/// failed, still live and its sample goes back).
#[inline]
pub(crate) fn after_resize(ptr: *mut u8, resizing: Resizing, succeeded: bool) {
    let (Some(taken), Some(tables)) = (resizing.0, tables()) else {
        return;
    };
    if succeeded {
        account_free(tables, taken);
    } else {
        tables.insert_live(ptr as usize, taken.0, taken.1);
    }
}
// end of safe zone

// safe zone: no lock, no allocation (runtime/tests/layers.rs)
/// Return addresses of the calling stack, leaf first, into `frames`.
#[cfg(unix)]
fn capture_stack(frames: &mut [usize; MAX_DEPTH]) -> usize {
    if let Some(unwinder) = UNWINDER.get() {
        let mut raw = [0u64; MAX_DEPTH];
        if let Some(depth @ 1..) = unwinder.unwind(Registers::here(), &mut raw) {
            for (frame, address) in frames.iter_mut().zip(&raw[..depth]) {
                *frame = *address as usize;
            }
            return depth;
        }
    }
    // Every scratch area busy (or no tables yet): the platform unwinder.
    let mut depth = 0;
    // SAFETY: `trace_unsynchronized` is unsafe only because some platform
    // unwinders (dbghelp on Windows) are not thread-safe; on unix it uses
    // the thread-safe libgcc/libunwind `_Unwind_Backtrace`. The closure only
    // writes into the caller's fixed buffer.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            let ip = frame.ip() as usize;
            if ip == 0 {
                return false;
            }
            frames[depth] = ip;
            depth += 1;
            depth < MAX_DEPTH
        });
    }
    depth
}
// end of safe zone

#[cfg(not(unix))]
fn capture_stack(_frames: &mut [usize; MAX_DEPTH]) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::fold_closures;

    #[test]
    fn closures_fold_into_their_function() {
        assert_eq!(
            fold_closures("svc::Agent::run::{{closure}}::{{closure}}[svc::Researcher]"),
            "svc::Agent::run[svc::Researcher]"
        );
        assert_eq!(fold_closures("svc::plan::{{closure}}"), "svc::plan");
        assert_eq!(fold_closures("svc::plan"), "svc::plan");
    }
}
