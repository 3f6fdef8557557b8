//! What a CPU profiling session sampled, and its outputs: pprof, folded
//! stacks, flamegraphs (also per label, and differential).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{SampleKey, SampleTotals};
use crate::error::{Error, Result};
use crate::model::{SampleLabel, TimerMode};
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
    /// Its id.
    pub invocation_id: Option<u64>,
    /// OpenTelemetry span id of the invocation's span.
    pub span_id: Option<u64>,
    /// OpenTelemetry trace id of that span.
    pub trace_id: Option<u128>,
    /// Thread id.
    pub thread: u64,
    /// The thread's name when its samples were drained.
    pub thread_name: Arc<str>,
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

    /// The sample's value of one label, as profiles write it.
    pub fn label(&self, label: SampleLabel) -> Option<String> {
        match label {
            SampleLabel::Agent => self.agent.map(str::to_owned),
            SampleLabel::Function => self.function.map(str::to_owned),
            // Decimal, as span fields, logs and JSON write it, so a log
            // line's id finds its samples.
            SampleLabel::InvocationId => self.invocation_id.map(|id| id.to_string()),
            SampleLabel::SpanId => self.span_id.map(|id| format!("{id:016x}")),
            SampleLabel::TraceId => self.trace_id.map(|t| format!("{t:032x}")),
            SampleLabel::Thread => Some(self.thread_name.to_string()),
            SampleLabel::ThreadId => Some(self.thread.to_string()),
        }
    }

    fn label_by_key(&self, key: &str) -> Option<String> {
        key.parse().ok().and_then(|label| self.label(label))
    }
}

/// The labels local profiles carry (`telemetry.profiling.cpu.labels`), as
/// a bit set over [`SampleLabel::ALL`].
static LOCAL_LABELS: AtomicU8 = AtomicU8::new(u8::MAX);

fn label_bits(labels: &[SampleLabel]) -> u8 {
    labels.iter().fold(0, |bits, l| bits | 1 << (*l as u8))
}

/// Sets the labels of local profiles (files, the live endpoint,
/// [`CpuReport::pprof`]).
pub(crate) fn set_local_labels(labels: &[SampleLabel]) {
    LOCAL_LABELS.store(label_bits(labels), Relaxed);
}

/// The labels local profiles carry.
pub(crate) fn local_labels() -> Vec<SampleLabel> {
    let bits = LOCAL_LABELS.load(Relaxed);
    if bits == u8::MAX {
        return SampleLabel::LOCAL_DEFAULT.to_vec();
    }
    SampleLabel::ALL
        .into_iter()
        .filter(|l| bits & (1 << (*l as u8)) != 0)
        .collect()
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
    /// Each sample's folded stack, spelled once per distinct stack.
    stacks: OnceLock<Vec<FoldedSample>>,
    /// The flamegraph of every sample, rendered once.
    svg: OnceLock<std::result::Result<Vec<u8>, String>>,
}

/// A sample's agent, its stack folded root first, and its CPU in µs.
type FoldedSample = (Option<&'static str>, Arc<str>, u64);

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
                        thread_name: super::thread_names::name_of(thread),
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
            stacks: OnceLock::new(),
            svg: OnceLock::new(),
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
    /// `span_id`, `trace_id`, `thread`, `thread_id`); samples without it
    /// are under `""`.
    pub fn cpu_by(&self, key: &str) -> BTreeMap<String, u64> {
        let mut by = BTreeMap::new();
        for s in &self.samples {
            *by.entry(s.label_by_key(key).unwrap_or_default())
                .or_default() += s.cpu_ns;
        }
        by
    }

    /// The samples whose label `key` equals `value` (e.g. one agent).
    pub fn filter_label(&self, key: &str, value: &str) -> CpuReport {
        CpuReport {
            samples: self
                .samples
                .iter()
                .filter(|s| s.label_by_key(key).as_deref() == Some(value))
                .cloned()
                .collect(),
            requested_hz: self.requested_hz,
            period_ns: self.period_ns,
            started_at: self.started_at,
            duration: self.duration,
            mode: self.mode,
            modules: self.modules,
            dropped_buffer_full: self.dropped_buffer_full,
            dropped_unwinder_busy: self.dropped_unwinder_busy,
            dropped_keys: self.dropped_keys,
            stacks: OnceLock::new(),
            svg: OnceLock::new(),
        }
    }

    /// The profile as pprof: sample types samples/count and cpu/nanoseconds,
    /// period in CPU ns, with the labels of local profiles
    /// (`telemetry.profiling.cpu.labels`; by default `agent`, `function`,
    /// `invocation_id`, `span_id` and `trace_id` (with OpenTelemetry),
    /// `thread`).
    pub fn pprof(&self) -> Profile {
        self.pprof_with_labels(&local_labels())
    }

    /// The profile as pprof with only `labels` on its samples (samples
    /// that then look alike are merged): what a shared backend should get.
    pub fn pprof_with_labels(&self, labels: &[SampleLabel]) -> Profile {
        untracked(|| {
            let mut builder = ProfileBuilder::new(&[("samples", "count"), ("cpu", "nanoseconds")]);
            // (stack, label values) to (samples, CPU ns).
            type Likeness<'a> = (&'a [u64], Vec<(&'static str, String)>);
            let mut merged: HashMap<Likeness, (u64, u64)> = HashMap::new();
            for s in &self.samples {
                let mut values: Vec<(&str, String)> = Vec::new();
                for &label in labels {
                    if let Some(v) = s.label(label) {
                        values.push((label.as_str(), v));
                    }
                }
                let totals = merged.entry((&s.frames, values)).or_default();
                totals.0 += s.count;
                totals.1 += s.cpu_ns;
            }
            for ((frames, labels), (count, cpu_ns)) in merged {
                let labels: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let frames: Vec<usize> = frames.iter().map(|&f| f as usize).collect();
                builder.sample(
                    &frames,
                    |_| false,
                    vec![count as i64, cpu_ns as i64],
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

    /// Each sample's folded stack with its agent and CPU µs; a stack is
    /// spelled (symbolized and joined) once however many samples share it.
    fn folded_samples(&self) -> &[FoldedSample] {
        self.stacks.get_or_init(|| {
            untracked(|| {
                let mut spelled: HashMap<&[u64], Arc<str>> = HashMap::new();
                // Stacks share most of their frames: each address once.
                let mut named: HashMap<u64, String> = HashMap::new();
                self.samples
                    .iter()
                    .map(|s| {
                        let stack = spelled
                            .entry(&s.frames)
                            .or_insert_with(|| {
                                let mut names: Vec<&str> = Vec::with_capacity(s.frames.len());
                                for &frame in &s.frames {
                                    named.entry(frame).or_insert_with(|| {
                                        pprof::symbolize(frame as usize)
                                            .iter()
                                            .map(|f| f.name.replace(';', ":"))
                                            .rev()
                                            .collect::<Vec<_>>()
                                            .join(";")
                                    });
                                }
                                for frame in s.frames.iter().rev() {
                                    names.push(&named[frame]);
                                }
                                Arc::from(names.join(";"))
                            })
                            .clone();
                        (s.agent, stack, s.cpu_ns / 1_000)
                    })
                    .collect()
            })
        })
    }

    /// Folded stacks of the samples whose agent `keep` accepts.
    fn folded_where(&self, keep: impl Fn(Option<&str>) -> bool) -> String {
        untracked(|| {
            let mut lines: BTreeMap<&str, u64> = BTreeMap::new();
            for (agent, stack, us) in self.folded_samples() {
                if keep(*agent) {
                    *lines.entry(stack).or_default() += us;
                }
            }
            lines
                .into_iter()
                .filter(|(_, us)| *us > 0)
                .map(|(stack, us)| format!("{stack} {us}\n"))
                .collect()
        })
    }

    /// Folded stacks, root first, one line per stack with its CPU in
    /// microseconds: the input format of flamegraph tools.
    pub fn folded(&self) -> String {
        self.folded_where(|_| true)
    }

    /// A flamegraph SVG (inferno) of CPU microseconds (rendered once per
    /// report).
    pub fn flamegraph_svg(&self) -> Result<Vec<u8>> {
        self.svg
            .get_or_init(|| render(&self.folded(), "CPU").map_err(|e| e.to_string()))
            .clone()
            .map_err(render_error)
    }

    /// The flamegraph of one agent's samples.
    pub(crate) fn agent_flamegraph_svg(&self, agent: &str) -> Result<Vec<u8>> {
        render(&self.folded_where(|a| a == Some(agent)), "CPU")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A report without samples has no flamegraph, and says why: the
    /// reason a window's placeholder file shows.
    #[test]
    fn a_report_without_samples_says_why_it_has_no_flamegraph() {
        let report = CpuReport::new(
            HashMap::new(),
            Meta {
                requested_hz: 100,
                period_ns: 10_000_000,
                started_at: SystemTime::now(),
                duration: Duration::from_millis(400),
                mode: TimerMode::PerThread,
                modules: 0,
                dropped_buffer_full: 0,
                dropped_unwinder_busy: 0,
                dropped_keys: 0,
            },
        );
        let error = report.flamegraph_svg().unwrap_err().to_string();
        assert!(error.contains("no samples"), "{error}");
    }
}
