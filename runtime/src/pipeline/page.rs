//! The HTML report as the collector writes it per window and the live
//! endpoint serves it: the report with the process's facts (service, host,
//! process start), the profiles at hand and the recent windows' CPU per
//! agent.

use std::time::{Duration, SystemTime};

use super::export::{service_name, timestamp};
use crate::cpu::CpuReport;
use crate::memory::HeapProfile;
use crate::model::Report;
use crate::report::HtmlReport;

/// Where a page's function rows take a reader to their slowest calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlowestCalls {
    /// To their pages on the live endpoint.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    LivePages,
    /// To their figures and callee trees, embedded in the page (a file).
    Embedded,
}

/// Function rows whose slowest calls a file embeds (by CPU), and calls
/// per row: the page stays small.
const EMBEDDED_ROWS: usize = 20;
const EMBEDDED_PER_ROW: usize = 2;

/// The page of `report`, with `cpu` and `heap` when at hand and `extra`
/// facts (the window, or how the live profile was taken).
pub(crate) fn render(
    report: &Report,
    cpu: Option<&CpuReport>,
    heap: Option<&HeapProfile>,
    extra: Vec<(String, String)>,
    slowest: SlowestCalls,
) -> String {
    let mut page = HtmlReport::new(report).title(format!("agentprof: {}", service_name()));
    page = match slowest {
        SlowestCalls::LivePages => page.link_invocation_pages(),
        SlowestCalls::Embedded => {
            let mut rows: Vec<_> = report.functions.iter().collect();
            rows.sort_by_key(|f| std::cmp::Reverse(f.cpu_ns.unwrap_or(f.wall_ns)));
            let details = rows
                .into_iter()
                .take(EMBEDDED_ROWS)
                .flat_map(|f| f.exemplars.iter().take(EMBEDDED_PER_ROW))
                .filter_map(|e| crate::report::invocation_figures(e.id).ok())
                .collect();
            page.slowest_calls(details)
        }
    };
    page = page.fact("host", host_name());
    if let Some(start) = process_start() {
        page = page.fact(
            "process start",
            format!("{} UTC (pid {})", readable(start), std::process::id()),
        );
    }
    for (name, value) in extra {
        page = page.fact(name, value);
    }
    page.profiles(cpu, heap)
        .cpu_history(super::history::windows())
        .render()
}

/// `2026-12-01 23:46:24`: the file names' timestamp, for people.
pub(crate) fn readable(time: SystemTime) -> String {
    let stamp = timestamp(time);
    match (
        stamp.get(0..4),
        stamp.get(4..6),
        stamp.get(6..8),
        stamp.get(9..11),
        stamp.get(11..13),
        stamp.get(13..15),
    ) {
        (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) => {
            format!("{y}-{mo}-{d} {h}:{mi}:{s}")
        }
        _ => stamp,
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "(unknown)".to_owned())
}

/// When this process started: its start in clock ticks after boot
/// (`/proc/self/stat`, field 22) plus the boot time (`/proc/stat`).
fn process_start() -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after its
    // closing parenthesis start at field 3.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&hz| hz > 0)?;
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(boot)
            + Duration::from_millis(ticks * 1000 / hz),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_read_as_dates() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_168_784);
        assert_eq!(super::readable(time), "2026-12-01 23:46:24");
    }

    #[test]
    fn this_process_started_in_the_last_hour() {
        let start = super::process_start().expect("a process start on Linux");
        let age = std::time::SystemTime::now()
            .duration_since(start)
            .unwrap_or_default();
        assert!(age < std::time::Duration::from_secs(3600), "{age:?}");
    }
}
