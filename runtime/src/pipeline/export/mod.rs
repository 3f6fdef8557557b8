//! Exporters: where the collector's windows go.
//!
//! The trait is synchronous on purpose: exporters run on the collector's
//! own export thread, never on the application's runtime, so they need no
//! async runtime, and a slow or hanging exporter delays only that thread
//! (the window queue in front of it is bounded and drops its oldest entry).
//! Every hook has a no-op default, so an exporter implements what it
//! handles.

mod file;
#[cfg(feature = "pyroscope")]
pub mod pyroscope;

pub use file::{FileExporter, FileRetention};
#[cfg(feature = "pyroscope")]
pub use pyroscope::{PyroscopeAuth, PyroscopeConfig, PyroscopeExporter};

use std::time::SystemTime;

use crate::error::Result;
use crate::model::Report;

/// Which window a payload belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Sequence number, from 1.
    pub sequence: u64,
    /// Start of the window.
    pub start: SystemTime,
    /// End of the window.
    pub end: SystemTime,
}

/// Counters of a running collector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollectorStats {
    /// Windows cut.
    pub windows: u64,
    /// Windows every exporter accepted.
    pub exported: u64,
    /// Windows dropped from a full queue.
    pub dropped: u64,
    /// Export calls that failed.
    pub errors: u64,
}

/// What `shutdown` could do in its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownSummary {
    /// Final counters.
    pub stats: CollectorStats,
    /// Whether the export thread was still busy (a hanging exporter) when
    /// the shutdown timeout ran out; it is left to finish on its own.
    pub export_timed_out: bool,
}

/// Which of a window's payloads an exporter takes. The collector renders
/// only what at least one exporter takes: a flamegraph or an HTML page that
/// nobody writes is not drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payloads {
    /// `export_cpu_profile`.
    pub cpu_profile: bool,
    /// `export_memory_profile`.
    pub memory_profile: bool,
    /// `export_flamegraph`.
    pub flamegraph: bool,
    /// `export_report`.
    pub report: bool,
    /// `export_html_report`.
    pub html_report: bool,
}

impl Payloads {
    /// Every payload.
    pub const ALL: Payloads = Payloads {
        cpu_profile: true,
        memory_profile: true,
        flamegraph: true,
        report: true,
        html_report: true,
    };
    /// None: the exporter is told only of windows' ends.
    pub const NONE: Payloads = Payloads {
        cpu_profile: false,
        memory_profile: false,
        flamegraph: false,
        report: false,
        html_report: false,
    };

    /// What either takes.
    pub fn union(self, other: Payloads) -> Payloads {
        Payloads {
            cpu_profile: self.cpu_profile || other.cpu_profile,
            memory_profile: self.memory_profile || other.memory_profile,
            flamegraph: self.flamegraph || other.flamegraph,
            report: self.report || other.report,
            html_report: self.html_report || other.html_report,
        }
    }
}

/// Receives each window's profiles: CPU and heap pprof, flamegraph,
/// report, with a check at start.
pub trait ProfileExporter: Send {
    /// The payloads this exporter takes (all unless it says otherwise);
    /// asked once, at the collector's start. A payload left out is never
    /// passed to it.
    fn payloads(&self) -> Payloads {
        Payloads::ALL
    }
    /// Called once before the first window; an error refuses the start
    /// (e.g. a directory that cannot be written).
    fn start(&mut self) -> Result<()> {
        Ok(())
    }
    /// The window's CPU profile, gzipped pprof.
    fn export_cpu_profile(&mut self, _window: &Window, _profile: &[u8]) -> Result<()> {
        Ok(())
    }
    /// The window's heap profile, gzipped pprof.
    fn export_memory_profile(&mut self, _window: &Window, _profile: &[u8]) -> Result<()> {
        Ok(())
    }
    /// The window's CPU flamegraph, SVG.
    fn export_flamegraph(&mut self, _window: &Window, _svg: &[u8]) -> Result<()> {
        Ok(())
    }
    /// The attribution report at the end of the window.
    fn export_report(&mut self, _window: &Window, _report: &Report) -> Result<()> {
        Ok(())
    }
    /// The window's report as a self-contained HTML page (tables, memory
    /// timeline, flamegraphs, heap sites).
    fn export_html_report(&mut self, _window: &Window, _html: &str) -> Result<()> {
        Ok(())
    }
    /// Called after each window's payloads, whether they succeeded or not.
    /// An exporter that writes a window as a unit commits it here (the
    /// file exporter names its staged files and lists them).
    fn finish_window(&mut self, _window: &Window) -> Result<()> {
        Ok(())
    }
}

impl<E: ProfileExporter + ?Sized> ProfileExporter for Box<E> {
    fn payloads(&self) -> Payloads {
        (**self).payloads()
    }
    fn start(&mut self) -> Result<()> {
        (**self).start()
    }
    fn export_cpu_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        (**self).export_cpu_profile(window, profile)
    }
    fn export_memory_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        (**self).export_memory_profile(window, profile)
    }
    fn export_flamegraph(&mut self, window: &Window, svg: &[u8]) -> Result<()> {
        (**self).export_flamegraph(window, svg)
    }
    fn export_report(&mut self, window: &Window, report: &Report) -> Result<()> {
        (**self).export_report(window, report)
    }
    fn export_html_report(&mut self, window: &Window, html: &str) -> Result<()> {
        (**self).export_html_report(window, html)
    }
    fn finish_window(&mut self, window: &Window) -> Result<()> {
        (**self).finish_window(window)
    }
}

impl<E: ProfileExporter> ProfileExporter for Option<E> {
    fn payloads(&self) -> Payloads {
        self.as_ref().map_or(Payloads::NONE, E::payloads)
    }
    fn start(&mut self) -> Result<()> {
        self.as_mut().map_or(Ok(()), E::start)
    }
    fn export_cpu_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        self.as_mut()
            .map_or(Ok(()), |e| e.export_cpu_profile(window, profile))
    }
    fn export_memory_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        self.as_mut()
            .map_or(Ok(()), |e| e.export_memory_profile(window, profile))
    }
    fn export_flamegraph(&mut self, window: &Window, svg: &[u8]) -> Result<()> {
        self.as_mut()
            .map_or(Ok(()), |e| e.export_flamegraph(window, svg))
    }
    fn export_report(&mut self, window: &Window, report: &Report) -> Result<()> {
        self.as_mut()
            .map_or(Ok(()), |e| e.export_report(window, report))
    }
    fn export_html_report(&mut self, window: &Window, html: &str) -> Result<()> {
        self.as_mut()
            .map_or(Ok(()), |e| e.export_html_report(window, html))
    }
    fn finish_window(&mut self, window: &Window) -> Result<()> {
        self.as_mut().map_or(Ok(()), |e| e.finish_window(window))
    }
}

/// Every exporter gets the payloads it takes; the first error is returned
/// after all have been tried.
impl<E: ProfileExporter> ProfileExporter for Vec<E> {
    fn payloads(&self) -> Payloads {
        self.iter()
            .map(E::payloads)
            .fold(Payloads::NONE, Payloads::union)
    }
    fn start(&mut self) -> Result<()> {
        self.iter_mut().try_for_each(E::start)
    }
    fn export_cpu_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        first_error(
            self.iter_mut()
                .filter(|e| e.payloads().cpu_profile)
                .map(|e| e.export_cpu_profile(window, profile)),
        )
    }
    fn export_memory_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        first_error(
            self.iter_mut()
                .filter(|e| e.payloads().memory_profile)
                .map(|e| e.export_memory_profile(window, profile)),
        )
    }
    fn export_flamegraph(&mut self, window: &Window, svg: &[u8]) -> Result<()> {
        first_error(
            self.iter_mut()
                .filter(|e| e.payloads().flamegraph)
                .map(|e| e.export_flamegraph(window, svg)),
        )
    }
    fn export_report(&mut self, window: &Window, report: &Report) -> Result<()> {
        first_error(
            self.iter_mut()
                .filter(|e| e.payloads().report)
                .map(|e| e.export_report(window, report)),
        )
    }
    fn export_html_report(&mut self, window: &Window, html: &str) -> Result<()> {
        first_error(
            self.iter_mut()
                .filter(|e| e.payloads().html_report)
                .map(|e| e.export_html_report(window, html)),
        )
    }
    fn finish_window(&mut self, window: &Window) -> Result<()> {
        first_error(self.iter_mut().map(|e| e.finish_window(window)))
    }
}

/// The service's name for labels and page titles: the executable's file
/// name.
pub(crate) fn service_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "agentprof".to_owned())
}

fn first_error(results: impl Iterator<Item = Result<()>>) -> Result<()> {
    let mut first = Ok(());
    for result in results {
        if first.is_ok() {
            first = result;
        }
    }
    first
}

/// `YYYYMMDD_HHMMSS` in UTC: the timestamp in window file names.
pub(crate) fn timestamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}_{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::timestamp;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_utc_civil_time() {
        assert_eq!(timestamp(UNIX_EPOCH), "19700101_000000");
        // 2026-11-26 10:46:55 UTC
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(1_795_690_015)),
            "20261126_104655"
        );
        // 2024-02-29 23:59:59 UTC
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "20240229_235959"
        );
    }
}
