//! Collecting what the server asked for: a CPU profile of the requested
//! duration from the running sampler (through a tap, so the collector's
//! windows go on without a gap), the heap now, or the allocations of the
//! requested duration.

use std::time::Duration;

use tokio::sync::watch;

use super::protocol::ProfileType;
use super::until_stopped;
use crate::cpu::CpuTap;
use crate::memory::HeapProfiler;

/// The longest stretch the agent profiles for one request; the service
/// asks for 10 s.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(3600);

/// A collected profile.
pub(super) struct Collected {
    /// Gzipped pprof.
    pub(super) pprof_gzip: Vec<u8>,
    /// A CPU profile from a sampler another consumer runs.
    pub(super) shared_sampler: bool,
}

pub(super) enum Failure {
    /// Shutdown came first.
    Stopped,
    /// Could not be collected, and why.
    Failed(String),
}

/// The profile types this process can provide now.
pub(super) fn available() -> Vec<ProfileType> {
    let mut types = vec![ProfileType::Cpu];
    if HeapProfiler::is_running() {
        types.extend([ProfileType::Heap, ProfileType::HeapAlloc]);
    }
    types
}

pub(super) async fn collect(
    profile_type: ProfileType,
    duration: Option<Duration>,
    hz: u32,
    sample_labels: &[crate::model::SampleLabel],
    stop: &mut watch::Receiver<bool>,
) -> Result<Collected, Failure> {
    let stretch = || match duration {
        Some(d) if d.is_zero() => Err(Failure::Failed(format!(
            "a {} profile of no duration",
            profile_type.as_str()
        ))),
        Some(d) if d > MAX_DURATION => Err(Failure::Failed(format!(
            "a {} profile of {d:?}, longer than the {MAX_DURATION:?} the agent profiles for",
            profile_type.as_str()
        ))),
        Some(d) => Ok(d),
        None => Err(Failure::Failed(format!(
            "a {} profile without a duration",
            profile_type.as_str()
        ))),
    };
    match profile_type {
        ProfileType::Cpu => {
            let stretch = stretch()?;
            let tap = CpuTap::attach(hz).map_err(|e| Failure::Failed(e.to_string()))?;
            let shared_sampler = tap.is_shared();
            // Shutdown drops the tap, which detaches it (or stops the
            // sampler it started).
            until_stopped(stop, tokio::time::sleep(stretch))
                .await
                .ok_or(Failure::Stopped)?;
            let report = tap.finish().map_err(|e| Failure::Failed(e.to_string()))?;
            Ok(Collected {
                pprof_gzip: report.pprof_with_labels(sample_labels).encode_gzip(),
                shared_sampler,
            })
        }
        ProfileType::Heap => {
            let heap = HeapProfiler::running()
                .ok_or_else(|| Failure::Failed("the heap profiler is off".to_owned()))?;
            Ok(Collected {
                pprof_gzip: heap.snapshot_aside().to_pprof_gzip(),
                shared_sampler: false,
            })
        }
        ProfileType::HeapAlloc => {
            let stretch = stretch()?;
            let heap = HeapProfiler::running()
                .ok_or_else(|| Failure::Failed("the heap profiler is off".to_owned()))?;
            let before = heap.snapshot_aside();
            until_stopped(stop, tokio::time::sleep(stretch))
                .await
                .ok_or(Failure::Stopped)?;
            let after = heap.snapshot_aside();
            Ok(Collected {
                pprof_gzip: after.allocations_since(&before).encode_gzip(),
                shared_sampler: false,
            })
        }
    }
}
