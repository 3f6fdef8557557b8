//! More consumers of the one running sampler.
//!
//! An HTTP profile request wants the CPU profile of the next N seconds
//! while the collector cuts windows from the same sampler. A second sampler
//! cannot exist (one handler, one set of timers per process), and borrowing
//! the collector's would leave a gap in its windows. A tap is a second
//! aggregate that the drainer fills with a copy of every sample drained
//! while it is attached. When no sampler runs, the tap starts one of its
//! own at the rate it asks for, and stops it when it is done.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use super::buffer::RawSample;
use super::samples::{CpuReport, Meta};
use super::{session_counters, Aggregate, CpuProfiler, TimerMode};
use crate::error::{Error, Result};
use crate::fork::StartedIn;

/// Taps attached at once; each holds a copy of what it was fed.
const MAX_TAPS: usize = 8;

/// The running sampler, as a tap reports it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sampler {
    pub(super) hz: u32,
    pub(super) mode: TimerMode,
    /// A forked child inherits this record but not the sampler.
    pub(super) started_in: StartedIn,
}

struct Consumers {
    sampler: Option<Sampler>,
    taps: Vec<Arc<Mutex<Aggregate>>>,
}

static CONSUMERS: Mutex<Consumers> = Mutex::new(Consumers {
    sampler: None,
    taps: Vec::new(),
});

fn consumers() -> MutexGuard<'static, Consumers> {
    CONSUMERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A sampler started: taps may attach to it from now on.
pub(super) fn sampler_started(sampler: Sampler) {
    consumers().sampler = Some(sampler);
}

/// The sampler stopped, after its last samples were delivered.
pub(super) fn sampler_stopped() {
    consumers().sampler = None;
}

/// The running sampler, if one runs in this process.
pub(super) fn sampler() -> Option<Sampler> {
    consumers().sampler.filter(|s| s.started_in.is_current())
}

fn sampler_running() -> bool {
    consumers()
        .sampler
        .is_some_and(|s| s.started_in.is_current())
}

/// Copies drained samples into every attached tap.
pub(super) fn deliver(raw: &[RawSample]) {
    let consumers = consumers();
    for tap in &consumers.taps {
        tap.lock().unwrap_or_else(|e| e.into_inner()).add(raw);
    }
}

enum Source {
    /// Fed by a sampler someone else runs.
    Attached {
        aggregate: Arc<Mutex<Aggregate>>,
        sampler: Sampler,
        dropped_at_start: (u64, u64),
    },
    /// Its own sampler, started because none ran.
    Own(CpuProfiler),
}

/// The CPU profile of a stretch of time, taken from the running sampler
/// (or from one started for it) without disturbing its other consumers.
pub(crate) struct CpuTap {
    source: Option<Source>,
    started_at: SystemTime,
    started: Instant,
}

impl CpuTap {
    /// Attaches to the running sampler, or starts one at `hz` when none
    /// runs. `hz` does not change a sampler that already runs.
    pub(crate) fn attach(hz: u32) -> Result<CpuTap> {
        // A sampler may start between the look and our own start: then
        // ours fails as a second profiler, and the next look finds it.
        for _ in 0..2 {
            {
                let mut consumers = consumers();
                if let Some(sampler) = consumers.sampler.filter(|s| s.started_in.is_current()) {
                    if consumers.taps.len() >= MAX_TAPS {
                        return Err(Error::Busy {
                            what: format!("{MAX_TAPS} CPU profiles are being taken"),
                            hint: "wait for one to finish".to_owned(),
                        });
                    }
                    let aggregate = Arc::new(Mutex::new(Aggregate::default()));
                    consumers.taps.push(aggregate.clone());
                    let (full, busy, _) = session_counters();
                    return Ok(CpuTap {
                        source: Some(Source::Attached {
                            aggregate,
                            sampler,
                            dropped_at_start: (full, busy),
                        }),
                        started_at: SystemTime::now(),
                        started: Instant::now(),
                    });
                }
            }
            let mut own = CpuProfiler::with_frequency(hz)?;
            match own.start() {
                Ok(()) => {
                    return Ok(CpuTap {
                        source: Some(Source::Own(own)),
                        started_at: SystemTime::now(),
                        started: Instant::now(),
                    })
                }
                Err(e) if !sampler_running() => return Err(e),
                Err(_) => continue,
            }
        }
        Err(Error::Busy {
            what: "samplers were starting and stopping".to_owned(),
            hint: "try again".to_owned(),
        })
    }

    /// The rate the samples are taken at, Hz.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn sampling_hz(&self) -> u32 {
        match &self.source {
            Some(Source::Attached { sampler, .. }) => sampler.hz,
            Some(Source::Own(own)) => own.frequency,
            None => 0,
        }
    }

    /// Whether another consumer (the collector) runs the sampler.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.source, Some(Source::Attached { .. }))
    }

    /// Detaches and returns what was sampled since `attach`.
    pub(crate) fn finish(mut self) -> Result<CpuReport> {
        match self.source.take() {
            Some(Source::Own(mut own)) => own.stop_and_collect(),
            Some(Source::Attached {
                aggregate,
                sampler,
                dropped_at_start,
            }) => {
                detach(&aggregate);
                let (full, busy, modules) = session_counters();
                let aggregate =
                    std::mem::take(&mut *aggregate.lock().unwrap_or_else(|e| e.into_inner()));
                Ok(CpuReport::new(
                    aggregate.samples,
                    Meta {
                        requested_hz: sampler.hz,
                        period_ns: 1_000_000_000 / u64::from(sampler.hz.max(1)),
                        started_at: self.started_at,
                        duration: self.started.elapsed(),
                        mode: sampler.mode,
                        modules,
                        dropped_buffer_full: full.saturating_sub(dropped_at_start.0),
                        dropped_unwinder_busy: busy.saturating_sub(dropped_at_start.1),
                        dropped_keys: aggregate.dropped_keys,
                    },
                ))
            }
            None => Err(Error::NotRunning {
                what: "CpuTap".to_owned(),
                hint: "attach before finishing".to_owned(),
            }),
        }
    }
}

fn detach(aggregate: &Arc<Mutex<Aggregate>>) {
    consumers().taps.retain(|t| !Arc::ptr_eq(t, aggregate));
}

impl Drop for CpuTap {
    fn drop(&mut self) {
        match self.source.take() {
            Some(Source::Attached { aggregate, .. }) => detach(&aggregate),
            Some(Source::Own(own)) => drop(own),
            None => {}
        }
    }
}
