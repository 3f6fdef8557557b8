//! What a CPU profiling session sampled, and its outputs: pprof, folded
//! stacks, flamegraphs (also per label, and differential).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{SampleKey, SampleTotals};
use crate::error::{Error, Result};
use crate::model::TimerMode;
use crate::pprof::{self, Profile, ProfileBuilder};
use crate::thread::memory::untracked;
use crate::thread::slot::Owner;

pub(super) struct Meta {
    pub(super) requested_hz: u32,
    pub(super) period_ns: u64,
    pub(super) started_at: SystemTime,
    pub(super) duration: Duration,
    pub(super) mode: TimerMode,
    pub(super) modules: usize,
    pub(super) dropped_buffer_full: u64,
    pub(super) dropped_unwinder_busy: u64,
    pub(super) dropped_keys: u64,
}

/// One sampled stack with the labels of the invocation it ran in.
#[derive(Clone, Debug)]
pub struct CpuSample {
    frames: Vec<u64>,
    /// Agent of the invocation running when sampled.
    pub agent: Option<&'static str>,
    /// Function of that invocation.
    pub function: Option<&'static str>,
    /// Its id (also the `span_id` label when there is no OpenTelemetry
    /// span).
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
}

impl CpuSample {
    /// Function names of the stack, leaf first (inlined frames expanded).
    pub fn function_names(&self) -> Vec<String> {
        self.frames
            .iter()
            .flat_map(|&f| pprof::symbolize(f as usize))
            .map(|f| f.name)
            .collect()
    }

    fn label(&self, key: &str) -> Option<String> {
        match key {
            "agent" => self.agent.map(str::to_owned),
            "function" => self.function.map(str::to_owned),
            "invocation_id" => self.invocation_id.map(span_id),
            "span_id" => self.span_id.or(self.invocation_id).map(span_id),
            "trace_id" => self.trace_id.map(|t| format!("{t:032x}")),
            "thread" => Some(self.thread.to_string()),
            _ => None,
        }
    }
}

/// A span id (or an invocation id standing in for one) as 16 hex digits,
/// the form OpenTelemetry span ids take.
fn span_id(id: u64) -> String {
    format!("{id:016x}")
}

/// The samples of one session.
#[derive(Clone, Debug)]
pub struct CpuReport {
    /// Samples, one per distinct (stack, invocation, thread).
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
}

impl CpuReport {
    pub(super) fn new(samples: HashMap<SampleKey, SampleTotals>, meta: Meta) -> Self {
        let known = crate::aggregate::owner_keys();
        let samples = samples
            .into_iter()
            .map(
                |(
                    SampleKey {
                        frames,
                        invocation,
                        owner,
                        thread,
                        span_id,
                        trace_id,
                    },
                    SampleTotals { count, cpu_ns },
                )| {
                    // SAFETY: a key of a row that exists is an `Owner::key`
                    // value (rows are never freed); any other is ignored.
                    let owner = known
                        .contains(&owner)
                        .then(|| unsafe { Owner::from_key(owner) })
                        .flatten();
                    CpuSample {
                        frames,
                        agent: owner.and_then(|o| o.agent),
                        function: owner.map(|o| o.function),
                        invocation_id: (invocation != 0).then_some(invocation),
                        span_id: (span_id != 0).then_some(span_id),
                        trace_id: (trace_id != 0).then_some(trace_id),
                        thread,
                        count,
                        cpu_ns,
                    }
                },
            )
            .collect();
        Self {
            samples,
            requested_hz: meta.requested_hz,
            period_ns: meta.period_ns,
            started_at: meta.started_at,
            duration: meta.duration,
            mode: meta.mode,
            modules: meta.modules,
            dropped_buffer_full: meta.dropped_buffer_full,
            dropped_unwinder_busy: meta.dropped_unwinder_busy,
            dropped_keys: meta.dropped_keys,
        }
    }

    /// Samples taken.
    pub fn sample_count(&self) -> u64 {
        self.samples.iter().map(|s| s.count).sum()
    }

    /// CPU time the samples stand for, ns.
    pub fn total_cpu_ns(&self) -> u64 {
        self.samples.iter().map(|s| s.cpu_ns).sum()
    }

    /// Samples delivered per second of CPU time (compare with
    /// `requested_hz`: CPU timers fire on the kernel tick).
    pub fn delivered_hz(&self) -> f64 {
        let cpu = self.total_cpu_ns() as f64 / 1e9;
        if cpu == 0.0 {
            0.0
        } else {
            self.sample_count() as f64 / cpu
        }
    }

    /// CPU ns per value of a label (`agent`, `function`, `invocation_id`,
    /// `span_id`, `thread`); samples without it are under `""`.
    pub fn cpu_by(&self, key: &str) -> BTreeMap<String, u64> {
        let mut by = BTreeMap::new();
        for s in &self.samples {
            *by.entry(s.label(key).unwrap_or_default()).or_default() += s.cpu_ns;
        }
        by
    }

    /// The samples whose label `key` equals `value` (e.g. one agent).
    pub fn filter_label(&self, key: &str, value: &str) -> CpuReport {
        CpuReport {
            samples: self
                .samples
                .iter()
                .filter(|s| s.label(key).as_deref() == Some(value))
                .cloned()
                .collect(),
            ..self.clone()
        }
    }

    /// The profile as pprof: sample types samples/count and cpu/nanoseconds,
    /// period in CPU ns, labels `agent`, `function`, `invocation_id`,
    /// `span_id`, `trace_id` (with OpenTelemetry), `thread`.
    pub fn pprof(&self) -> Profile {
        untracked(|| {
            let mut builder = ProfileBuilder::new(&[("samples", "count"), ("cpu", "nanoseconds")]);
            for s in &self.samples {
                let mut labels: Vec<(&str, String)> = Vec::new();
                for key in [
                    "agent",
                    "function",
                    "invocation_id",
                    "span_id",
                    "trace_id",
                    "thread",
                ] {
                    if let Some(v) = s.label(key) {
                        labels.push((key, v));
                    }
                }
                let labels: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let frames: Vec<usize> = s.frames.iter().map(|&f| f as usize).collect();
                builder.sample(
                    &frames,
                    |_| false,
                    vec![s.count as i64, s.cpu_ns as i64],
                    &labels,
                );
            }
            let start = self
                .started_at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            builder.finish(
                ("cpu", "nanoseconds"),
                self.period_ns as i64,
                "cpu",
                start.as_nanos() as i64,
                self.duration.as_nanos() as i64,
            )
        })
    }

    /// Gzipped pprof (`cpu_profile_*.pb.gz`).
    pub fn pprof_gzip(&self) -> Vec<u8> {
        self.pprof().encode_gzip()
    }

    /// Folded stacks, root first, one line per stack with its CPU in
    /// microseconds: the input format of flamegraph tools.
    pub fn folded(&self) -> String {
        untracked(|| {
            let mut lines: BTreeMap<String, u64> = BTreeMap::new();
            for s in &self.samples {
                let mut names = s.function_names();
                names.reverse();
                let stack = names
                    .iter()
                    .map(|n| n.replace(';', ":"))
                    .collect::<Vec<_>>()
                    .join(";");
                *lines.entry(stack).or_default() += s.cpu_ns / 1_000;
            }
            lines
                .into_iter()
                .filter(|(_, us)| *us > 0)
                .map(|(stack, us)| format!("{stack} {us}\n"))
                .collect()
        })
    }

    /// A flamegraph SVG (inferno) of CPU microseconds.
    pub fn flamegraph_svg(&self) -> Result<Vec<u8>> {
        render(&self.folded(), "CPU")
    }

    /// A differential flamegraph from `before` to `after`: frame widths
    /// from `after`, colours by how much each grew (red) or shrank (blue).
    pub fn differential_flamegraph(before: &CpuReport, after: &CpuReport) -> Result<Vec<u8>> {
        let mut diff = Vec::new();
        inferno::differential::from_readers(
            inferno::differential::Options::default(),
            before.folded().as_bytes(),
            after.folded().as_bytes(),
            &mut diff,
        )
        .map_err(|e| render_error(e.to_string()))?;
        render(&String::from_utf8_lossy(&diff), "CPU difference")
    }
}

fn render_error(message: String) -> Error {
    Error::Render {
        what: "the flamegraph".to_owned(),
        message,
    }
}

fn render(folded: &str, title: &str) -> Result<Vec<u8>> {
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_owned();
    options.count_name = "µs".to_owned();
    let mut svg = Vec::new();
    if folded.trim().is_empty() {
        return Err(render_error("no samples".to_owned()));
    }
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
        .map_err(|e| render_error(e.to_string()))?;
    Ok(svg)
}
