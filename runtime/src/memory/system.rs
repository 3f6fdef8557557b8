//! Resident and virtual memory of the process, and a bounded timeline of
//! it next to the allocator's figures.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::fork::{self, StartedIn};
use crate::model::{MemoryTimelinePoint, SystemMemoryInfo};

/// RSS and virtual size of this process.
///
/// Linux reads `/proc/self/statm`; macOS asks `task_info`; other platforms
/// get [`Error::Unsupported`].
pub fn system_memory() -> Result<SystemMemoryInfo> {
    if !crate::built_in::RECORDING {
        return Err(crate::built_in::compiled_out("system memory readings"));
    }
    imp::system_memory()
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;

    pub(super) fn system_memory() -> Result<SystemMemoryInfo> {
        let statm = std::fs::read_to_string("/proc/self/statm").map_err(|e| Error::Resource {
            what: "/proc/self/statm (is /proc mounted?)".to_owned(),
            source: e,
        })?;
        let mut fields = statm.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(size)), Some(Ok(resident))) = (fields.next(), fields.next()) else {
            return Err(Error::Platform {
                what: "/proc/self/statm".to_owned(),
                message: format!("cannot parse {statm:?}"),
            });
        };
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = if page > 0 { page as u64 } else { 4096 };
        Ok(SystemMemoryInfo {
            rss_bytes: resident * page,
            virtual_bytes: size * page,
        })
    }
}

// Not built or tested on this project's CI (Linux); kept minimal.
#[cfg(target_os = "macos")]
mod imp {
    use super::*;

    #[allow(deprecated)] // mach_task_self: libc points to the mach2 crate.
    pub(super) fn system_memory() -> Result<SystemMemoryInfo> {
        let mut info: libc::mach_task_basic_info = unsafe { std::mem::zeroed() };
        let mut count = (std::mem::size_of::<libc::mach_task_basic_info>()
            / std::mem::size_of::<libc::natural_t>())
            as libc::mach_msg_type_number_t;
        // SAFETY: `info` and `count` describe a writable buffer of the size
        // task_info expects for MACH_TASK_BASIC_INFO.
        let kr = unsafe {
            libc::task_info(
                libc::mach_task_self(),
                libc::MACH_TASK_BASIC_INFO,
                &mut info as *mut _ as libc::task_info_t,
                &mut count,
            )
        };
        if kr != libc::KERN_SUCCESS {
            return Err(Error::Platform {
                what: "task_info".to_owned(),
                message: format!("reading process memory failed (kern_return {kr})"),
            });
        }
        Ok(SystemMemoryInfo {
            rss_bytes: info.resident_size,
            virtual_bytes: info.virtual_size,
        })
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod imp {
    use super::*;

    pub(super) fn system_memory() -> Result<SystemMemoryInfo> {
        Err(Error::Platform {
            what: "reading RSS".to_owned(),
            message: format!(
                "supported on Linux and macOS, not on {}",
                std::env::consts::OS
            ),
        })
    }
}

struct Timeline {
    points: VecDeque<MemoryTimelinePoint>,
    capacity: usize,
    stop: Arc<AtomicBool>,
    thread: Option<(std::thread::JoinHandle<()>, StartedIn)>,
}

static TIMELINE: Mutex<Option<Timeline>> = Mutex::new(None);

fn lock() -> std::sync::MutexGuard<'static, Option<Timeline>> {
    TIMELINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes one reading now.
fn reading() -> MemoryTimelinePoint {
    let stats = super::allocator::memory_stats();
    MemoryTimelinePoint {
        unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        rss_bytes: system_memory().ok().map(|m| m.rss_bytes),
        current_bytes: stats.map(|s| s.current_usage),
        peak_bytes: stats.map(|s| s.peak_usage),
    }
}

/// Starts sampling RSS and allocator figures every `interval` into a ring
/// of `capacity` readings (replacing a timeline already running).
pub fn start_memory_timeline(interval: Duration, capacity: usize) -> Result<()> {
    if !crate::built_in::RECORDING {
        return Err(crate::built_in::compiled_out("the memory timeline"));
    }
    // The configuration's keys were checked where they were read; these
    // name the arguments.
    if interval.is_zero() {
        return Err(Error::InvalidConfig {
            key: "start_memory_timeline's interval".to_owned(),
            message: "the timeline needs an interval of at least 1 ms".to_owned(),
        });
    }
    crate::config::check_parameter(
        crate::config::keys::MEMORY_TIMELINE_CAPACITY,
        capacity as u64,
        "start_memory_timeline's capacity",
    )?;
    stop_memory_timeline();
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    *lock() = Some(Timeline {
        points: VecDeque::with_capacity(capacity),
        capacity,
        stop,
        thread: None,
    });
    let thread = std::thread::Builder::new()
        .name("agentprof-memory-timeline".to_owned())
        .spawn(move || {
            crate::profiler_cost::enter_profiler_thread();
            while !thread_stop.load(Ordering::Relaxed) {
                fork::background_section(|| {
                    let point = reading();
                    if let Some(timeline) = lock().as_mut() {
                        if timeline.points.len() == timeline.capacity {
                            timeline.points.pop_front();
                        }
                        timeline.points.push_back(point);
                    }
                });
                std::thread::park_timeout(interval);
            }
        })
        .map_err(|e| Error::Resource {
            what: "the memory timeline thread".to_owned(),
            source: e,
        })?;
    if let Some(timeline) = lock().as_mut() {
        timeline.thread = Some((thread, StartedIn::this_process()));
    }
    Ok(())
}

/// Stops the timeline sampler, keeping its readings.
pub fn stop_memory_timeline() {
    let handle = lock().as_mut().and_then(|t| {
        t.stop.store(true, Ordering::Relaxed);
        t.thread.take()
    });
    if let Some((handle, started)) = handle {
        handle.thread().unpark();
        fork::join(handle, started);
    }
}

/// The readings so far, oldest first.
pub(crate) fn timeline() -> Vec<MemoryTimelinePoint> {
    lock()
        .as_ref()
        .map(|t| t.points.iter().copied().collect())
        .unwrap_or_default()
}
