//! The CPU profiler: signal-based sampling whose samples carry the labels
//! of the invocation running at that instant.
//!
//! pprof-rs keys samples by stack and thread only, and pyroscope-rs tags
//! whole threads, so neither can tell two async tasks on one worker apart;
//! this sampler reads the current-invocation slot in the signal handler.
//! See [`signal`] for the handler's rules, [`unwind`] for how stacks are
//! taken safely, [`timer`] for the timers.
//!
//! Weights are honest: CPU-time timers only fire on the kernel tick (250 Hz
//! on many VMs), so asking for 1000 Hz delivers far fewer signals. Each
//! sample therefore carries the thread CPU time since that thread's
//! previous sample (read from the thread CPU clock in the handler), and the
//! profile's cpu/nanoseconds add up to the CPU time the threads consumed
//! whatever rate was delivered; [`CpuReport::delivered_hz`] says what it
//! was.

mod buffer;
pub(crate) mod exemplar_samples;
mod samples;
mod signal;
// Its consumers (the live endpoint, the Cloud Profiler agent) are
// optional features.
#[cfg_attr(not(any(feature = "http", feature = "gcp")), allow(dead_code))]
mod tap;
mod thread_names;
mod timer;

pub use crate::model::TimerMode;
pub(crate) use samples::set_local_labels;
pub use samples::{CpuReport, CpuSample};
pub use signal::this_thread_sampled_cpu_ns;
#[cfg(any(feature = "http", feature = "gcp"))]
pub(crate) use tap::CpuTap;
#[doc(hidden)]
pub use timer::force_process_timer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::built_in::Recording;
use crate::config::CpuProfilingConfig;
use crate::error::{Error, Result};
use crate::fork::{self, StartedIn};
use crate::unwind::StackUnwinder;
use buffer::{RawSample, SampleBuffer};

/// Slots of the handler-to-drainer buffer.
const BUFFER_SLOTS: usize = 1024;
/// Handlers that can unwind at the same time (one per concurrent signal).
const CONCURRENT_UNWINDS: usize = 8;
/// How often the drainer empties the buffer.
const DRAIN_INTERVAL: Duration = Duration::from_millis(10);
/// Distinct (stack, labels) keys one profile keeps.
const MAX_KEYS: usize = 200_000;

static GENERATION: AtomicU64 = AtomicU64::new(1);
/// CPU the sampler charged to each row (by [`Owner::key`](crate::thread::slot::Owner::key)) since the last
/// reset; `None` until a profiler first started, so the report can tell
/// "not sampled" from "sampled, nothing there". Bounded by the number of
/// rows. Written by the drainer, never by the handler.
static SAMPLED_BY_OWNER: Mutex<Option<HashMap<usize, u64>>> = Mutex::new(None);

fn sampled_by_owner() -> std::sync::MutexGuard<'static, Option<HashMap<usize, u64>>> {
    SAMPLED_BY_OWNER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sampled CPU per row since the last reset, keyed by [`Owner::key`](crate::thread::slot::Owner::key);
/// `None` when no CPU profiler ever ran in this process.
pub(crate) fn sampled_cpu_by_owner() -> Option<HashMap<usize, u64>> {
    sampled_by_owner().clone()
}

/// Forgets sampled CPU per row (a running profiler keeps adding to it).
pub(crate) fn reset_sampled_cpu() {
    if let Some(map) = sampled_by_owner().as_mut() {
        map.clear();
    }
}

/// What the signal handler works with; lives from `start` to `stop`.
pub(crate) struct Session {
    pub(crate) baselines: timer::Baselines,
    pub(crate) unwinder: StackUnwinder,
    pub(crate) buffer: SampleBuffer,
    pub(crate) period_ns: u64,
    pub(crate) generation: u64,
    pub(crate) dropped_busy: AtomicU64,
}

/// What distinguishes two samples: stack, invocation (and through its row,
/// agent and function), thread.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SampleKey {
    pub(crate) frames: Vec<u64>,
    pub(crate) invocation: u64,
    pub(crate) owner: usize,
    pub(crate) thread: u64,
    pub(crate) span_id: u64,
    pub(crate) trace_id: u128,
}

/// Samples with one key, and the CPU they stand for.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SampleTotals {
    pub(crate) count: u64,
    pub(crate) cpu_ns: u64,
}

#[derive(Default)]
struct Aggregate {
    samples: HashMap<SampleKey, SampleTotals>,
    dropped_keys: u64,
}

impl Aggregate {
    fn add<'a>(&mut self, raw: impl IntoIterator<Item = &'a RawSample>) {
        self.add_bounded(raw, MAX_KEYS);
    }

    /// Adds `raw`, keeping at most `max_keys` distinct keys.
    fn add_bounded<'a>(&mut self, raw: impl IntoIterator<Item = &'a RawSample>, max_keys: usize) {
        for s in raw {
            let key = SampleKey {
                frames: s.frames.clone(),
                invocation: s.invocation,
                owner: s.owner,
                thread: s.tid,
                span_id: s.span_id,
                trace_id: s.trace_id,
            };
            if self.samples.len() >= max_keys && !self.samples.contains_key(&key) {
                self.dropped_keys += 1;
                continue;
            }
            let totals = self.samples.entry(key).or_default();
            totals.count += 1;
            totals.cpu_ns += s.weight_ns;
        }
    }
}

/// Hands drained samples to every consumer: the row totals (once), the
/// profiler's own aggregate, and each attached [`tap::CpuTap`].
fn deliver(aggregate: &Mutex<Aggregate>, raw: &mut Vec<RawSample>) {
    if raw.is_empty() {
        return;
    }
    {
        let mut by_owner = sampled_by_owner();
        let by_owner = by_owner.get_or_insert_with(HashMap::new);
        for s in raw.iter().filter(|s| s.owner != 0) {
            *by_owner.entry(s.owner).or_default() += s.weight_ns;
        }
    }
    thread_names::remember(raw.iter().map(|s| s.tid));
    tap::deliver(raw);
    exemplar_samples::deliver(raw);
    aggregate
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .add(raw.iter());
    raw.clear();
}

struct Running {
    started_in: StartedIn,
    timers: timer::Timers,
    drainer: std::thread::JoinHandle<()>,
    stop_drainer: Arc<AtomicBool>,
    aggregate: Arc<Mutex<Aggregate>>,
    started_at: SystemTime,
    started: Instant,
}

/// The CPU profiler: start, then stop and collect a
/// [`CpuReport`]. One profiler samples at a time per process.
///
/// ```
/// use agentprof::{profiled, cpu::CpuProfiler};
///
/// #[profiled(agent = "planner")]
/// fn plan(steps: u64) -> u64 {
///     (0..steps).fold(0u64, |a, i| a.wrapping_mul(31).wrapping_add(i))
/// }
///
/// let mut profiler = CpuProfiler::with_frequency(250)?;
/// profiler.start()?;
/// for _ in 0..200 {
///     std::hint::black_box(plan(100_000));
/// }
/// let report = profiler.stop_and_collect()?;
/// // pprof for `go tool pprof`, samples labelled by agent and function.
/// std::fs::write(std::env::temp_dir().join("agentprof-doc-cpu.pb.gz"), report.pprof_gzip())?;
/// # std::fs::remove_file(std::env::temp_dir().join("agentprof-doc-cpu.pb.gz"))?;
/// println!("{} samples, {} ns of CPU", report.sample_count(), report.total_cpu_ns());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CpuProfiler {
    _recording: Recording,
    frequency: u32,
    running: Option<Running>,
}

static ACTIVE: AtomicBool = AtomicBool::new(false);

impl CpuProfiler {
    /// A profiler sampling at `config.frequency` Hz of CPU time per thread.
    pub fn new(config: CpuProfilingConfig) -> Result<Self> {
        let recording = Recording::get("the CPU profiler")?;
        crate::config::check_parameter(
            crate::config::keys::CPU_FREQUENCY,
            config.frequency.into(),
            "the CPU profiler's frequency",
        )?;
        Ok(Self {
            _recording: recording,
            frequency: config.frequency,
            running: None,
        })
    }

    /// A profiler at `frequency` Hz.
    pub fn with_frequency(frequency: u32) -> Result<Self> {
        Self::new(CpuProfilingConfig {
            frequency,
            ..CpuProfilingConfig::default()
        })
    }

    /// Whether this profiler is sampling.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// How signals are delivered while running.
    pub fn mode(&self) -> Option<TimerMode> {
        self.running.as_ref().map(|r| r.timers.mode)
    }

    /// Starts sampling (a no-op when already started). Fails when another
    /// profiler samples in this process or the platform has no support.
    pub fn start(&mut self) -> Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            return Err(Error::Platform {
                what: "CPU sampling".to_owned(),
                message: format!(
                    "supported on Linux x86_64, not on {}/{}",
                    std::env::consts::OS,
                    std::env::consts::ARCH
                ),
            });
        }
        if ACTIVE.swap(true, AcqRel) {
            return Err(Error::AlreadyRunning {
                what: "a CPU profiler".to_owned(),
                hint: "a second CPU profiler cannot start: stop the running one first, \
                       or read its samples through the live endpoint"
                    .to_owned(),
            });
        }
        after_fork::register();
        match self.start_session() {
            Ok(running) => {
                self.running = Some(running);
                Ok(())
            }
            Err(e) => {
                ACTIVE.store(false, Release);
                Err(e)
            }
        }
    }

    fn start_session(&self) -> Result<Running> {
        let period_ns = 1_000_000_000 / self.frequency as u64;
        // Everything the handler touches exists before the first signal.
        let session = Box::new(Session {
            baselines: timer::Baselines::new(4096),
            unwinder: StackUnwinder::new(CONCURRENT_UNWINDS),
            buffer: SampleBuffer::new(BUFFER_SLOTS),
            period_ns,
            generation: GENERATION.fetch_add(1, Relaxed),
            dropped_busy: AtomicU64::new(0),
        });
        let session = Box::into_raw(session);
        signal::SESSION.store(session, SeqCst);
        // SAFETY: published above; freed only by `free_session`, after the
        // timers that use the baselines are stopped.
        let baselines: &'static timer::Baselines = unsafe { &(*session).baselines };
        if let Err(e) = signal::install() {
            free_session();
            return Err(e);
        }
        let timers = match timer::Timers::start(period_ns, baselines) {
            Ok(t) => t,
            Err(e) => {
                free_session();
                return Err(e);
            }
        };
        sampled_by_owner().get_or_insert_with(HashMap::new);
        let aggregate = Arc::new(Mutex::new(Aggregate::default()));
        let stop_drainer = Arc::new(AtomicBool::new(false));
        let drainer = {
            let (aggregate, stop) = (aggregate.clone(), stop_drainer.clone());
            std::thread::Builder::new()
                .name("agentprof-cpu-drain".to_owned())
                .spawn(move || {
                    crate::profiler_cost::enter_profiler_thread();
                    let mut raw = Vec::with_capacity(BUFFER_SLOTS);
                    while !stop.load(Relaxed) {
                        std::thread::park_timeout(DRAIN_INTERVAL);
                        fork::background_section(|| drain_into(&aggregate, &mut raw));
                    }
                })
        };
        let drainer = match drainer {
            Ok(drainer) => drainer,
            Err(e) => {
                // Nothing may stay live: a later start would stack a
                // second session on these timers.
                timers.stop();
                free_session();
                return Err(Error::Resource {
                    what: "the CPU sample drainer thread".to_owned(),
                    source: e,
                });
            }
        };
        tap::sampler_started(tap::Sampler {
            hz: self.frequency,
            mode: timers.mode,
            started_in: StartedIn::this_process(),
        });
        Ok(Running {
            started_in: StartedIn::this_process(),
            timers,
            drainer,
            stop_drainer,
            aggregate,
            started_at: SystemTime::now(),
            started: Instant::now(),
        })
    }

    /// Stops sampling and returns what was sampled. The SIGPROF handler
    /// stays (see the module docs); the host's own `ITIMER_PROF`, if the
    /// process-wide timer replaced it, is restored.
    pub fn stop_and_collect(&mut self) -> Result<CpuReport> {
        let running = self.running.take().ok_or_else(|| Error::NotRunning {
            what: "CpuProfiler".to_owned(),
            hint: "call start() before stop_and_collect()".to_owned(),
        })?;
        if !running.started_in.is_current() {
            // Stopped in a forked child: the session's threads and timers
            // are the parent's; its samples stay with the parent. The child
            // was reset at fork and may run a profiler of its own.
            running.timers.stop();
            std::mem::forget(running.drainer);
            return Err(Error::NotRunning {
                what: "this CpuProfiler in a forked child (the parent started it)".to_owned(),
                hint: "start a new profiler in the child".to_owned(),
            });
        }
        let duration = running.started.elapsed();
        let mode = running.timers.mode;
        // Our handler stays installed: a signal of these timers still on its
        // way to a thread lands there and is dropped once the session is
        // gone.
        running.timers.stop();
        running.stop_drainer.store(true, Relaxed);
        running.drainer.thread().unpark();
        let _ = running.drainer.join();
        let (dropped_full, dropped_busy, modules) = {
            // SAFETY: see `free_session`; still published here.
            let session = unsafe { &*signal::SESSION.load(Acquire) };
            let mut raw = Vec::new();
            session.buffer.drain(&mut raw);
            deliver(&running.aggregate, &mut raw);
            tap::sampler_stopped();
            (
                session.buffer.dropped_full.load(Relaxed),
                session.dropped_busy.load(Relaxed),
                session.unwinder.modules,
            )
        };
        free_session();
        ACTIVE.store(false, Release);
        let aggregate =
            std::mem::take(&mut *running.aggregate.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(CpuReport::new(
            aggregate.samples,
            samples::Meta {
                requested_hz: self.frequency,
                period_ns: 1_000_000_000 / self.frequency as u64,
                started_at: running.started_at,
                duration,
                mode,
                modules,
                dropped_buffer_full: dropped_full,
                dropped_unwinder_busy: dropped_busy,
                dropped_keys: aggregate.dropped_keys,
            },
        ))
    }

    /// Returns what was sampled since the start or the previous cut, and
    /// keeps sampling: how continuous profiling makes windows without a gap.
    pub fn cut_window(&mut self) -> Result<CpuReport> {
        let running = self.running.as_mut().ok_or_else(|| Error::NotRunning {
            what: "CpuProfiler".to_owned(),
            hint: "call start() before cut_window()".to_owned(),
        })?;
        let mut raw = Vec::new();
        drain_into(&running.aggregate, &mut raw);
        let aggregate =
            std::mem::take(&mut *running.aggregate.lock().unwrap_or_else(|e| e.into_inner()));
        let (dropped_full, dropped_busy, modules) = session_counters();
        let report = CpuReport::new(
            aggregate.samples,
            samples::Meta {
                requested_hz: self.frequency,
                period_ns: 1_000_000_000 / self.frequency as u64,
                started_at: running.started_at,
                duration: running.started.elapsed(),
                mode: running.timers.mode,
                modules,
                dropped_buffer_full: dropped_full,
                dropped_unwinder_busy: dropped_busy,
                dropped_keys: aggregate.dropped_keys,
            },
        );
        running.started_at = SystemTime::now();
        running.started = Instant::now();
        Ok(report)
    }

    /// Stops and renders a flamegraph SVG.
    pub fn flamegraph(&mut self) -> Result<Vec<u8>> {
        self.stop_and_collect()?.flamegraph_svg()
    }

    /// Stops and encodes the profile as gzipped pprof.
    pub fn pprof(&mut self) -> Result<Vec<u8>> {
        Ok(self.stop_and_collect()?.pprof_gzip())
    }

    /// Fixed memory a running profiler reserves (sample buffer, stack copies
    /// and unwinder caches).
    pub fn reserved_bytes() -> usize {
        let _no_free = lock_session();
        // SAFETY: `free_session` cannot free it while we hold the lock.
        unsafe { signal::SESSION.load(Acquire).as_ref() }.map_or(0, |s| {
            s.buffer.reserved_bytes() + s.unwinder.reserved_bytes()
        })
    }
}

impl Drop for CpuProfiler {
    fn drop(&mut self) {
        if self.running.is_some() {
            let _ = self.stop_and_collect();
        }
    }
}

/// (buffer full, unwinder busy, modules) of the running session.
fn session_counters() -> (u64, u64, usize) {
    let _no_free = lock_session();
    // SAFETY: `free_session` cannot free it while we hold the lock.
    unsafe { signal::SESSION.load(Acquire).as_ref() }.map_or((0, 0, 0), |s| {
        (
            s.buffer.dropped_full.load(Relaxed),
            s.dropped_busy.load(Relaxed),
            s.unwinder.modules,
        )
    })
}

fn drain_into(aggregate: &Mutex<Aggregate>, raw: &mut Vec<RawSample>) {
    // SAFETY: the session stays published until `stop_and_collect` has
    // joined this thread.
    let Some(session) = (unsafe { signal::SESSION.load(Acquire).as_ref() }) else {
        return;
    };
    session.buffer.drain(raw);
    deliver(aggregate, raw);
}

/// What a forked child must not inherit.
mod after_fork {
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::Once;

    /// In the child: no session is running (its timers and threads were
    /// not inherited), so a profiler may start there.
    extern "C" fn in_child() {
        super::signal::SESSION.store(std::ptr::null_mut(), SeqCst);
        // A handler running on another thread at fork time never finishes
        // in the child.
        super::signal::RUNNING.store(0, SeqCst);
        super::signal::PROCESS_TIMER_OURS.store(false, SeqCst);
        super::ACTIVE.store(false, SeqCst);
    }

    pub(super) fn register() {
        static REGISTERED: Once = Once::new();
        // SAFETY: `in_child` only stores atomics, which is allowed in a
        // forked child of a multithreaded process.
        REGISTERED.call_once(|| unsafe {
            libc::pthread_atfork(None, None, Some(in_child));
        });
    }
}

/// Held by readers of the session outside the handler and the drainer, so
/// that a concurrent stop cannot free it under them.
static SESSION_READERS: Mutex<()> = Mutex::new(());

fn lock_session() -> std::sync::MutexGuard<'static, ()> {
    SESSION_READERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unpublishes the session and frees it once no handler runs.
fn free_session() {
    let _no_readers = lock_session();
    let session = signal::SESSION.swap(std::ptr::null_mut(), SeqCst);
    while signal::RUNNING.load(SeqCst) != 0 {
        std::thread::yield_now();
    }
    if !session.is_null() {
        // SAFETY: created by Box::into_raw in `start_session`, unpublished
        // above, and no handler still holds it.
        drop(unsafe { Box::from_raw(session) });
    }
}
