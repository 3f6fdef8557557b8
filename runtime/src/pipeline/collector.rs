//! The collector: a background thread that cuts a window every period (CPU
//! profile, heap snapshot, report) and an export thread that hands windows
//! to the exporters, with a bounded queue between them.
//!
//! Neither thread depends on the application's async runtime. A full queue
//! drops its oldest window and counts it, so a slow exporter costs windows,
//! never memory, and instrumented code never waits for either thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::export::{CollectorStats, Payloads, ProfileExporter, ShutdownSummary, Window};
use crate::cpu::CpuProfiler;
use crate::fork::{self, StartedIn};
use crate::memory::HeapProfiler;
use crate::model::Report;
use crate::profiler_cost;
use crate::report::{message_svg, WindowMeter};

/// A window's payloads, each rendered only when an exporter takes it.
struct Payload {
    window: Window,
    cpu_profile: Option<Vec<u8>>,
    flamegraph: Option<Vec<u8>>,
    heap: Option<Vec<u8>>,
    report: Option<Report>,
    html: Option<String>,
}

#[derive(Default)]
struct Counters {
    windows: AtomicU64,
    exported: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> CollectorStats {
        CollectorStats {
            windows: self.windows.load(Relaxed),
            exported: self.exported.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }
}

struct Queue {
    items: Mutex<VecDeque<Payload>>,
    changed: Condvar,
    capacity: usize,
    closed: AtomicBool,
}

impl Queue {
    fn push(&self, payload: Payload, counters: &Counters) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if items.len() >= self.capacity {
            items.pop_front();
            counters.dropped.fetch_add(1, Relaxed);
        }
        items.push_back(payload);
        self.changed.notify_all();
    }

    fn pop(&self) -> Option<Payload> {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(payload) = items.pop_front() {
                return Some(payload);
            }
            if self.closed.load(Relaxed) {
                return None;
            }
            items = self.changed.wait(items).unwrap_or_else(|e| e.into_inner());
        }
    }
}

pub(crate) struct Collector {
    stop: Arc<(Mutex<bool>, Condvar)>,
    cutter: std::thread::JoinHandle<()>,
    exporter_done: mpsc::Receiver<()>,
    queue: Arc<Queue>,
    counters: Arc<Counters>,
    shutdown_timeout: Duration,
    started_in: StartedIn,
}

pub(crate) struct CollectorConfig {
    pub(crate) window: Duration,
    pub(crate) queue_size: usize,
    pub(crate) shutdown_timeout: Duration,
}

impl Collector {
    pub(crate) fn start(
        config: CollectorConfig,
        mut cpu: Option<CpuProfiler>,
        mut exporter: Box<dyn ProfileExporter>,
    ) -> std::io::Result<Collector> {
        let wants = exporter.payloads();
        let queue = Arc::new(Queue {
            items: Mutex::new(VecDeque::with_capacity(config.queue_size)),
            changed: Condvar::new(),
            capacity: config.queue_size.max(1),
            closed: AtomicBool::new(false),
        });
        let counters = Arc::new(Counters::default());
        let stop = Arc::new((Mutex::new(false), Condvar::new()));

        let (done_tx, exporter_done) = mpsc::channel();
        {
            let (queue, counters) = (queue.clone(), counters.clone());
            std::thread::Builder::new()
                .name("agentprof-export".to_owned())
                .spawn(move || {
                    profiler_cost::enter_profiler_thread();
                    while let Some(payload) = queue.pop() {
                        export(&mut *exporter, &payload, &counters);
                    }
                    let _ = done_tx.send(());
                })?;
        }
        // The first window starts now, before `start` returns.
        let mut meter = WindowMeter::new();
        let cutter = {
            let (queue, counters, stop) = (queue.clone(), counters.clone(), stop.clone());
            std::thread::Builder::new()
                .name("agentprof-collector".to_owned())
                .spawn(move || {
                    profiler_cost::enter_profiler_thread();
                    let mut sequence = 0;
                    let mut start = SystemTime::now();
                    let mut deadline = Instant::now() + config.window;
                    loop {
                        let stopping = {
                            let (flag, wake) = &*stop;
                            let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
                            while !*stopped && Instant::now() < deadline {
                                let left = deadline.saturating_duration_since(Instant::now());
                                stopped = wake
                                    .wait_timeout(stopped, left)
                                    .unwrap_or_else(|e| e.into_inner())
                                    .0;
                            }
                            *stopped
                        };
                        sequence += 1;
                        let end = SystemTime::now();
                        let window = Window {
                            sequence,
                            start,
                            end,
                        };
                        let cut_started = profiler_cost::this_thread_cpu_ns();
                        let payload = fork::background_section(|| {
                            cut(window, &mut cpu, &mut meter, stopping, wants)
                        });
                        profiler_cost::window_cut(
                            profiler_cost::this_thread_cpu_ns().saturating_sub(cut_started),
                        );
                        counters.windows.fetch_add(1, Relaxed);
                        queue.push(payload, &counters);
                        if stopping {
                            break;
                        }
                        start = end;
                        deadline += config.window;
                    }
                    queue.closed.store(true, Relaxed);
                    queue.changed.notify_all();
                })?
        };
        Ok(Collector {
            stop,
            cutter,
            exporter_done,
            queue,
            counters,
            shutdown_timeout: config.shutdown_timeout,
            started_in: StartedIn::this_process(),
        })
    }

    pub(crate) fn stats(&self) -> CollectorStats {
        self.counters.snapshot()
    }

    /// Cuts the last (partial) window, lets the exporters take what is
    /// queued, and returns within the shutdown timeout even when an
    /// exporter hangs.
    pub(crate) fn shutdown(self) -> ShutdownSummary {
        if !self.started_in.is_current() {
            // A forked child: neither thread exists here, and the windows
            // are the parent's to export.
            let stats = self.counters.snapshot();
            std::mem::forget(self);
            return ShutdownSummary {
                stats,
                export_timed_out: false,
            };
        }
        {
            let (flag, wake) = &*self.stop;
            *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
            wake.notify_all();
        }
        let _ = self.cutter.join();
        let export_timed_out = self
            .exporter_done
            .recv_timeout(self.shutdown_timeout)
            .is_err();
        if export_timed_out {
            // Abandon what is still queued; the exporter thread ends when
            // its current call returns.
            let mut items = self.queue.items.lock().unwrap_or_else(|e| e.into_inner());
            self.counters.dropped.fetch_add(items.len() as u64, Relaxed);
            items.clear();
        }
        ShutdownSummary {
            stats: self.counters.snapshot(),
            export_timed_out,
        }
    }
}

/// Takes one window's profiles and renders what `wants` asks for. On the
/// last window the CPU profiler is stopped rather than cut.
fn cut(
    window: Window,
    cpu: &mut Option<CpuProfiler>,
    meter: &mut WindowMeter,
    last: bool,
    wants: Payloads,
) -> Payload {
    let cpu_report = cpu.as_mut().and_then(|p| {
        if last {
            p.stop_and_collect()
        } else {
            p.cut_window()
        }
        .ok()
        .map(std::sync::Arc::new)
    });
    #[cfg(feature = "metrics")]
    if let Some(r) = &cpu_report {
        super::metrics::add_samples(r.sample_count());
    }
    let heap_snapshot = HeapProfiler::running().map(|h| h.snapshot());
    let mut report = crate::report::report_with_heap(heap_snapshot.as_ref());
    let figures = meter.cut(window.sequence, window.start, window.end);
    super::history::record(&figures, cpu_report.clone());
    report.window = Some(figures);
    #[cfg(feature = "metrics")]
    super::metrics::publish(&report);
    let html = wants.html_report.then(|| {
        super::page::render(
            &report,
            cpu_report.as_deref(),
            heap_snapshot.as_ref(),
            vec![(
                "window".to_owned(),
                format!(
                    "{} to {} UTC",
                    super::page::readable(window.start),
                    super::page::readable(window.end)
                ),
            )],
            super::page::SlowestCalls::Embedded,
        )
    });
    // Calls drained from now on compete for the next window's exemplars
    // (after the page, which embeds this window's: the rotation evicts the
    // oldest window's).
    crate::aggregate::exemplars::rotate(window.sequence + 1);
    let cpu_profile = cpu_report
        .as_ref()
        .filter(|_| wants.cpu_profile)
        .map(|r| r.pprof_gzip());
    let flamegraph = cpu_report.as_ref().filter(|_| wants.flamegraph).map(|r| {
        // A window in which no thread was sampled still gets its file.
        r.flamegraph_svg()
            .unwrap_or_else(|e| message_svg("CPU", &format!("No flamegraph for this window: {e}")))
    });
    let heap = heap_snapshot
        .filter(|_| wants.memory_profile)
        .map(|h| h.to_pprof_gzip());
    Payload {
        window,
        cpu_profile,
        flamegraph,
        heap,
        report: wants.report.then_some(report),
        html,
    }
}

fn export(exporter: &mut dyn ProfileExporter, payload: &Payload, counters: &Counters) {
    let w = &payload.window;
    let mut results = Vec::with_capacity(6);
    if let Some(profile) = &payload.cpu_profile {
        results.push(exporter.export_cpu_profile(w, profile));
    }
    if let Some(svg) = &payload.flamegraph {
        results.push(exporter.export_flamegraph(w, svg));
    }
    if let Some(heap) = &payload.heap {
        results.push(exporter.export_memory_profile(w, heap));
    }
    if let Some(report) = &payload.report {
        results.push(exporter.export_report(w, report));
    }
    if let Some(html) = &payload.html {
        results.push(exporter.export_html_report(w, html));
    }
    results.push(exporter.finish_window(w));
    let errors: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        counters.exported.fetch_add(1, Relaxed);
        return;
    }
    counters.errors.fetch_add(errors.len() as u64, Relaxed);
    // Once per window, however many payloads failed.
    tracing::warn!(
        window = w.sequence,
        failures = errors.len(),
        error = %errors[0],
        "agentprof could not export a profile window"
    );
}
