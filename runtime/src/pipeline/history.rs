//! What the collector's recent windows showed, for pages drawn between
//! windows: each window's per-agent figures (the CPU-per-agent chart) and
//! the last window's CPU profile (the live page's flamegraphs without
//! sampling again).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::cpu::CpuReport;
use crate::model::WindowFigures;

/// Windows of per-agent figures kept: two hours of 60-second windows.
pub(crate) const MAX_WINDOWS: usize = 120;

struct History {
    windows: VecDeque<WindowFigures>,
    last_cpu: Option<Arc<CpuReport>>,
}

static HISTORY: Mutex<History> = Mutex::new(History {
    windows: VecDeque::new(),
    last_cpu: None,
});

fn history() -> MutexGuard<'static, History> {
    HISTORY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps a cut window's figures (dropping the oldest beyond
/// [`MAX_WINDOWS`]) and its CPU profile.
pub(crate) fn record(window: &WindowFigures, cpu: Option<Arc<CpuReport>>) {
    let mut h = history();
    if h.windows.len() >= MAX_WINDOWS {
        h.windows.pop_front();
    }
    h.windows.push_back(window.clone());
    if cpu.is_some() {
        h.last_cpu = cpu;
    }
}

/// The kept windows, oldest first.
pub(crate) fn windows() -> Vec<WindowFigures> {
    history().windows.iter().cloned().collect()
}

/// The last window's CPU profile, if a collector cut one.
#[cfg(feature = "http")]
pub(crate) fn last_cpu() -> Option<Arc<CpuReport>> {
    history().last_cpu.clone()
}
