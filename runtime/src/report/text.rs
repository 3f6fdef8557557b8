//! The report as a human-readable table (`Display`).

use std::fmt;

use crate::model::{ProfilerCost, Report, RunningFigures};

/// A duration in the unit that keeps 3–4 significant digits.
pub(crate) struct Nanos(pub(crate) Option<u64>);

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(ns) = self.0 else {
            return f.pad("-");
        };
        let text = match ns {
            0..=999 => format!("{ns}ns"),
            1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
            1_000_000..=999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
            _ => format!("{:.2}s", ns as f64 / 1e9),
        };
        f.pad(&text)
    }
}

/// A byte count in binary units.
pub(crate) struct Bytes(pub(crate) Option<i64>);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(b) = self.0 else {
            return f.pad("-");
        };
        let magnitude = b.unsigned_abs() as f64;
        let sign = if b < 0 { "-" } else { "" };
        let text = match b.unsigned_abs() {
            0..=1023 => format!("{b}B"),
            1024..=1_048_575 => format!("{sign}{:.1}KiB", magnitude / 1024.0),
            1_048_576..=1_073_741_823 => format!("{sign}{:.1}MiB", magnitude / 1_048_576.0),
            _ => format!("{sign}{:.2}GiB", magnitude / 1_073_741_824.0),
        };
        f.pad(&text)
    }
}

const NO_AGENT: &str = "(none)";

/// What the memory columns mean, printed under the tables.
const MEMORY_LEGEND: &str = "memory: allocated = bytes allocated by the calls (callees included; \
     an agent: its own calls); peak = most live at once in one call; net p50 / net max = \
     allocated minus freed when one call ended (median, largest; negative: it freed older memory)";
const INUSE_LEGEND: &str = "in use = heap allocated by these invocations and not freed yet \
     (the heap profiler's estimate)";

/// CPU that running invocations have spent so far; blank when none runs.
struct RunningCpu<'a>(&'a RunningFigures);

impl fmt::Display for RunningCpu<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.invocations == 0 {
            return f.pad("");
        }
        Nanos(self.0.cpu_ns).fmt(f)
    }
}

/// Says why a report may be empty.
const RECORDING_OFF: &str = "agentprof: recording is off (AGENTPROF_PROFILING_ENABLED=false, \
     telemetry.profiling.enabled = false, or set_enabled(false))";

/// What agentprof itself uses, in one line.
pub(crate) struct ProfilerLine<'a>(pub(crate) &'a ProfilerCost);

impl fmt::Display for ProfilerLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        write!(f, "agentprof itself: heap ")?;
        match p.heap_inuse_bytes {
            Some(b) => write!(f, "{} in use", Bytes(Some(b as i64)))?,
            None => write!(f, "in use unknown (no heap profiler)")?,
        }
        write!(
            f,
            " + {} reserved; CPU {} since start",
            Bytes(Some(p.reserved_bytes as i64)),
            Nanos(Some(p.cpu_ns))
        )?;
        if let Some(w) = p.window_cpu_ns {
            write!(f, ", {} in the last window", Nanos(Some(w)))?;
        }
        if let (Some(first), Some(last)) = (p.first_cut_cpu_ns, p.last_cut_cpu_ns) {
            write!(
                f,
                " (window cuts: first {}, last {})",
                Nanos(Some(first)),
                Nanos(Some(last))
            )?;
        }
        write!(f, "; {} threads", p.threads)?;
        if p.clock_fds > 0 {
            write!(f, "; {} clock fds", p.clock_fds)?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.recording {
            if self.functions.is_empty() && self.agents.is_empty() {
                return writeln!(f, "{RECORDING_OFF}; nothing was recorded.");
            }
            writeln!(f, "{RECORDING_OFF}; the figures below are from before.")?;
        }
        let agent_width = self
            .functions
            .iter()
            .filter_map(|r| r.agent.as_deref())
            .chain(self.agents.iter().filter_map(|r| r.agent.as_deref()))
            .map(|a| a.chars().count())
            .chain([NO_AGENT.len(), "agent".len()])
            .max()
            .unwrap_or(5);
        let function_width = self
            .functions
            .iter()
            .map(|r| r.function.chars().count())
            .chain(["function".len()])
            .max()
            .unwrap_or(8);
        let memory = self.memory.is_some();
        let inuse = self.functions.iter().any(|r| r.inuse_bytes.is_some());
        let sampled = self.functions.iter().any(|r| r.sampled_cpu_ns.is_some());
        write!(
            f,
            "{:<aw$}  {:<fw$}  {:>8} {:>6} {:>6} {:>6} {:>6}  {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}  {:>10}",
            "agent", "function", "calls", "active", "err", "panic", "cancel", "cpu", "self cpu", "wall", "wall p50", "wall p99", "cpu p99", "polls", "active cpu",
            aw = agent_width,
            fw = function_width,
        )?;
        if sampled {
            write!(f, " {:>10}", "sampled")?;
        }
        if memory {
            write!(
                f,
                "  {:>10} {:>10} {:>10} {:>10}",
                "allocated", "peak", "net p50", "net max"
            )?;
        }
        if inuse {
            write!(f, " {:>10}", "in use")?;
        }
        writeln!(f)?;
        for r in &self.functions {
            write!(
                f,
                "{:<aw$}  {:<fw$}  {:>8} {:>6} {:>6} {:>6} {:>6}  {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}  {:>10}",
                r.agent.as_deref().unwrap_or(NO_AGENT),
                r.function,
                r.calls,
                r.active,
                r.errors,
                r.panics,
                r.cancelled,
                Nanos(r.cpu_ns),
                Nanos(r.self_cpu_ns),
                Nanos(Some(r.wall_ns)),
                Nanos(Some(r.wall_ns_p50)),
                Nanos(Some(r.wall_ns_p99)),
                Nanos(r.cpu_ns_p99),
                r.polls,
                RunningCpu(&r.running),
                aw = agent_width,
                fw = function_width,
            )?;
            if sampled {
                write!(f, " {:>10}", Nanos(r.sampled_cpu_ns))?;
            }
            if memory {
                write!(
                    f,
                    "  {:>10} {:>10} {:>10} {:>10}",
                    Bytes(r.alloc_bytes.map(|b| b as i64)),
                    Bytes(r.peak_bytes.map(|b| b as i64)),
                    Bytes(r.net_bytes_p50),
                    Bytes(r.net_bytes_max)
                )?;
            }
            if inuse {
                write!(f, " {:>10}", Bytes(r.inuse_bytes.map(|b| b as i64)))?;
            }
            writeln!(f)?;
        }
        writeln!(f)?;
        write!(
            f,
            "{:<aw$}  {:>8} {:>8} {:>6} {:>6} {:>6} {:>6}  {:>10} {:>10} {:>10} {:>10} {:>10}  {:>10}",
            "agent",
            "calls",
            "roots",
            "active",
            "err",
            "panic",
            "cancel",
            "cpu",
            "wall",
            "wall p50",
            "wall p99",
            "cpu p99",
            "active cpu",
            aw = agent_width,
        )?;
        if memory {
            write!(f, "  {:>10} {:>10}", "allocated", "peak")?;
        }
        if inuse {
            write!(f, " {:>10}", "in use")?;
        }
        writeln!(f)?;
        for r in &self.agents {
            write!(
                f,
                "{:<aw$}  {:>8} {:>8} {:>6} {:>6} {:>6} {:>6}  {:>10} {:>10} {:>10} {:>10} {:>10}  {:>10}",
                r.agent.as_deref().unwrap_or(NO_AGENT),
                r.calls,
                r.root_calls,
                r.active,
                r.errors,
                r.panics,
                r.cancelled,
                Nanos(r.cpu_ns),
                Nanos(Some(r.wall_ns)),
                Nanos(Some(r.wall_ns_p50)),
                Nanos(Some(r.wall_ns_p99)),
                Nanos(r.cpu_ns_p99),
                RunningCpu(&r.running),
                aw = agent_width,
            )?;
            if memory {
                write!(
                    f,
                    "  {:>10} {:>10}",
                    Bytes(r.alloc_bytes.map(|b| b as i64)),
                    Bytes(r.peak_bytes.map(|b| b as i64))
                )?;
            }
            if inuse {
                write!(f, " {:>10}", Bytes(r.inuse_bytes.map(|b| b as i64)))?;
            }
            writeln!(f)?;
        }
        if memory {
            writeln!(f, "\n{MEMORY_LEGEND}")?;
            if inuse {
                writeln!(f, "{INUSE_LEGEND}")?;
            }
        }
        match (&self.memory, &self.memory_note) {
            (Some(m), _) => writeln!(
                f,
                "\nheap: {} in use, {} peak, {} allocated in {} allocations",
                Bytes(Some(m.current_usage as i64)),
                Bytes(Some(m.peak_usage as i64)),
                Bytes(Some(m.total_allocated as i64)),
                m.allocation_count
            )?,
            (None, Some(note)) => writeln!(f, "\n{note}")?,
            (None, None) => {}
        }
        if let Some(s) = &self.system_memory {
            writeln!(
                f,
                "process: {} resident, {} virtual",
                Bytes(Some(s.rss_bytes as i64)),
                Bytes(Some(s.virtual_bytes as i64))
            )?;
        }
        for g in self.heap_growth.iter().take(5) {
            writeln!(
                f,
                "heap grew {} at {} ({})",
                Bytes(Some(g.growth_bytes)),
                g.function,
                g.agent.as_deref().unwrap_or(NO_AGENT)
            )?;
        }
        let d = &self.dropped;
        if d.label_values_truncated + d.label_values_overflowed + d.dynamic_functions_overflowed > 0
        {
            writeln!(
                f,
                "\ncut by bounds: {} label values truncated, {} label values over the per-key limit, {} future labels merged",
                d.label_values_truncated, d.label_values_overflowed, d.dynamic_functions_overflowed
            )?;
        }
        if d.running_untracked > 0 {
            writeln!(
                f,
                "{} running invocations found the registry full and show only once they finish",
                d.running_untracked
            )?;
        }
        if let Some(p) = &self.profiler {
            writeln!(f, "{}", ProfilerLine(p))?;
        }
        if let Some(clock) = self.cpu_clock {
            write!(f, "CPU clock: {}", clock.as_str())?;
            if d.cpu_clock_fallback_threads > 0 {
                write!(
                    f,
                    " ({} threads on the system call)",
                    d.cpu_clock_fallback_threads
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_significant_digits() {
        assert_eq!(Nanos(Some(950)).to_string(), "950ns");
        assert_eq!(Nanos(Some(1_250)).to_string(), "1.2µs");
        assert_eq!(Nanos(Some(12_345)).to_string(), "12.3µs");
        assert_eq!(Nanos(Some(12_345_678)).to_string(), "12.3ms");
        assert_eq!(Nanos(Some(6_583_900_000)).to_string(), "6.58s");
        assert_eq!(Nanos(None).to_string(), "-");
        assert_eq!(Bytes(Some(512)).to_string(), "512B");
        assert_eq!(Bytes(Some(-3 << 20)).to_string(), "-3.0MiB");
        assert_eq!(Bytes(None).to_string(), "-");
    }
}
