//! Invocations that are still running: the report shows what they have
//! consumed so far, apart from finished calls, and continuous windows
//! charge CPU to the window in which it was spent.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentprof::export::{ProfileExporter, Window};
use agentprof::{profiled, report::Report, Profiler};

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

const STEP_NS: u64 = 2_000_000;

/// What a loop reports about itself: iterations done and the CPU its
/// thread used since the loop started.
#[derive(Default)]
struct Progress {
    iterations: AtomicU64,
    cpu_ns: AtomicU64,
    parked: AtomicBool,
}

#[profiled(agent = "looper")]
fn async_step() -> u64 {
    common::burn_cpu_ns(STEP_NS)
}

/// A never-ending agent loop: works a while, then waits forever.
#[profiled(agent = "looper")]
async fn endless_loop(progress: Arc<Progress>, iterations: u64) {
    let start = common::thread_cpu_ns();
    let mut buffers = Vec::new();
    for _ in 0..iterations {
        async_step();
        buffers.push(vec![7u8; 4096]);
        tokio::task::yield_now().await;
    }
    progress
        .cpu_ns
        .store(common::thread_cpu_ns() - start, SeqCst);
    progress.iterations.store(iterations, SeqCst);
    progress.parked.store(true, SeqCst);
    std::future::pending::<()>().await;
    drop(buffers);
}

fn table_line<'a>(table: &'a str, function_suffix: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|t| t.len() > 2 && t[1].ends_with(function_suffix))
        .unwrap_or_else(|| panic!("no line for {function_suffix} in\n{table}"))
}

#[test]
fn a_never_ending_async_loop_shows_what_it_consumed_so_far() {
    common::setup();
    let progress = Arc::new(Progress::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // One runtime thread, so the loop's CPU is that thread's CPU.
    let task = {
        let progress = progress.clone();
        let runtime_thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let task = tokio::spawn(endless_loop(progress, 40));
                let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
                STOP.lock().unwrap().replace(stop_tx);
                let _ = stop_rx.await;
                task.abort();
                let _ = task.await;
            })
        });
        runtime_thread
    };
    common::wait_until("the loop to park", || progress.parked.load(SeqCst));
    let used = progress.cpu_ns.load(SeqCst);
    assert!(used >= 40 * STEP_NS);

    let report = agentprof::report();
    let row = report
        .functions_named("::endless_loop")
        .next()
        .expect("the running loop has a row");
    assert_eq!(row.calls, 0, "it has not finished");
    assert_eq!(row.active, 1);
    assert_eq!(row.running.invocations, 1);
    let running_cpu = row.running.cpu_ns.expect("CPU measured");
    // As of its last transition (the await after `used` was read); the
    // thread's figure also holds the scheduler's work between polls.
    assert!(
        running_cpu.abs_diff(used) <= used / 20 + 1_000_000,
        "running CPU {running_cpu} vs the thread's {used}"
    );
    assert!(row.running.polls >= 41, "{:?}", row.running);
    assert!(row.running.wall_ns >= running_cpu);
    assert_eq!(row.running.longest_wall_ns, row.running.wall_ns);
    let allocated = row.running.alloc_bytes.expect("allocator installed");
    assert!(allocated >= 40 * 4096, "{allocated}");
    assert!(row.running.retained_bytes.unwrap() >= 40 * 4096);
    // Finished-call figures stay about finished calls.
    assert_eq!(row.cpu_ns, Some(0));
    assert_eq!(row.wall_ns_p99, 0);
    let step = report.functions_named("::async_step").next().unwrap();
    assert_eq!(step.calls, 40);
    assert_eq!(step.running.invocations, 0);
    // The agent: its finished callees plus the loop's own CPU so far.
    let agent = report.agent(Some("looper")).unwrap();
    assert_eq!(agent.active, 1);
    assert_eq!(agent.running.invocations, 1);
    let agent_total = agent.cpu_ns.unwrap() + agent.running.cpu_ns.unwrap();
    assert!(
        common::rel_diff(agent_total, running_cpu) < 0.05,
        "agent {agent_total} vs loop {running_cpu}"
    );
    // It sorts by what it has spent, not by its finished calls' CPU.
    let position = |suffix: &str| {
        report
            .functions
            .iter()
            .position(|r| r.function.ends_with(suffix))
            .unwrap()
    };
    assert!(position("::endless_loop") < position("::async_step"));

    let listed = agentprof::report::running_invocations();
    let me = listed
        .iter()
        .find(|r| r.function.ends_with("::endless_loop"))
        .expect("listed as running");
    assert_eq!(me.agent.as_deref(), Some("looper"));
    assert_eq!(me.cpu_ns, Some(running_cpu), "the loop is parked");

    let table = report.to_string();
    assert!(table.contains("active cpu"), "{table}");
    let line = table_line(&table, "::endless_loop");
    assert_eq!((line[2], line[3]), ("0", "1"), "calls, active: {line:?}");
    assert!(line[14].ends_with("ms"), "active cpu: {line:?}");

    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["schema_version"], 2);
    let json_row = json["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["function"].as_str().unwrap().ends_with("::endless_loop"))
        .unwrap();
    assert_eq!(json_row["running"]["invocations"], 1);
    assert_eq!(json_row["running"]["cpu_ns"], running_cpu);

    // Cancelled: it becomes a finished call with all it spent.
    STOP.lock().unwrap().take().unwrap().send(()).unwrap();
    task.join().unwrap();
    let report = agentprof::report();
    let row = report.functions_named("::endless_loop").next().unwrap();
    assert_eq!((row.calls, row.cancelled, row.active), (1, 1, 0));
    assert_eq!(row.running.invocations, 0);
    assert!(row.cpu_ns.unwrap() >= running_cpu);
    assert!(!agentprof::report::running_invocations()
        .iter()
        .any(|r| r.function.ends_with("::endless_loop")));
}

static STOP: Mutex<Option<tokio::sync::oneshot::Sender<()>>> = Mutex::new(None);

#[profiled(agent = "sync-looper")]
fn sync_step() -> u64 {
    common::burn_cpu_ns(STEP_NS)
}

/// A sync worker loop: works, then idles until told to stop.
#[profiled(agent = "sync-looper")]
fn sync_worker(progress: &Progress, stop: &AtomicBool) {
    let start = common::thread_cpu_ns();
    for _ in 0..25 {
        sync_step();
    }
    progress
        .cpu_ns
        .store(common::thread_cpu_ns() - start, SeqCst);
    progress.parked.store(true, SeqCst);
    while !stop.load(SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_long_sync_loop_is_seen_once_it_has_run_a_millisecond() {
    common::setup();
    let progress = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (progress, stop) = (progress.clone(), stop.clone());
        std::thread::spawn(move || sync_worker(&progress, &stop))
    };
    common::wait_until("the worker to idle", || progress.parked.load(SeqCst));
    let used = progress.cpu_ns.load(SeqCst);
    let report = agentprof::report();
    let row = report.functions_named("::sync_worker").next().unwrap();
    assert_eq!((row.calls, row.active, row.running.invocations), (0, 1, 1));
    let running_cpu = row.running.cpu_ns.unwrap();
    // As of the last step's return, just before `used` was read.
    assert!(
        running_cpu.abs_diff(used) <= used / 20 + 1_000_000,
        "running CPU {running_cpu} vs the thread's {used}"
    );
    assert_eq!(row.running.polls, 1);
    stop.store(true, SeqCst);
    worker.join().unwrap();
    let row = agentprof::report()
        .functions_named("::sync_worker")
        .next()
        .unwrap()
        .clone();
    assert_eq!((row.calls, row.active, row.running.invocations), (1, 0, 0));
}

/// Keeps every window's report.
struct Keep(Arc<Mutex<Vec<Report>>>);

impl ProfileExporter for Keep {
    fn export_report(&mut self, _: &Window, report: &Report) -> agentprof::Result<()> {
        self.0.lock().unwrap().push(report.clone());
        Ok(())
    }
}

#[profiled(agent = "windowed-looper")]
fn windowed_step() -> u64 {
    common::burn_cpu_ns(1_000_000)
}

/// Phases of `PHASE_CPU` each, with a whole window cut between two
/// phases: it waits for the collector, whose exported windows it counts, never for
/// a time, so a busy machine only makes it slower.
#[profiled(agent = "windowed-looper")]
fn windowed_loop(exported: &Mutex<Vec<Report>>) -> u64 {
    let windows = || exported.lock().unwrap().len();
    let start = common::thread_cpu_ns();
    for phase in 0..PHASES {
        if phase > 0 {
            // A cut counted after this point began after the phase ended;
            // the phase starts after the cut that follows it.
            let seen = windows();
            while windows() < seen + 2 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let phase_start = common::thread_cpu_ns();
        while common::thread_cpu_ns() - phase_start < PHASE_CPU {
            windowed_step();
        }
    }
    common::thread_cpu_ns() - start
}

const PHASES: usize = 4;
const PHASE_CPU: u64 = 60_000_000;

#[test]
fn each_window_is_charged_the_cpu_spent_in_it() {
    common::setup();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let profiler = Profiler::builder()
        .window(Duration::from_millis(250))
        .cpu_frequency(100)
        .exporter(Keep(reports.clone()))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let used = std::thread::scope(|scope| scope.spawn(|| windowed_loop(&reports)).join().unwrap());
    let summary = profiler.shutdown().unwrap();
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len() as u64, summary.stats.windows);
    let loop_cpu: Vec<u64> = reports
        .iter()
        .map(|r| {
            let window = r.window.as_ref().expect("window figures");
            window
                .functions
                .iter()
                .find(|f| f.function.ends_with("::windowed_loop"))
                .map_or(0, |f| f.cpu_ns.unwrap())
        })
        .collect();
    let total: u64 = loop_cpu.iter().sum();
    // Over the windows, what the call used (the profiler reads the
    // user-space clock, the test the system call: they agree within a few
    // parts per million).
    assert!(
        total.abs_diff(used) <= used / 20 + 1_000_000,
        "windows {loop_cpu:?} sum to {total}, the call used {used}"
    );
    // Spread over the windows it ran in, not all charged to the last one:
    // phases separated by a cut land in different windows, so no window
    // holds more than a phase (and the waits' few polls).
    let busy = loop_cpu.iter().filter(|&&cpu| cpu > 0).count();
    assert!(busy >= PHASES, "per window: {loop_cpu:?}");
    assert!(
        *loop_cpu.iter().max().unwrap() < total * 3 / (PHASES as u64 * 2),
        "{loop_cpu:?}"
    );
    // Finished calls are counted in the window they finished in.
    let steps: u64 = reports
        .iter()
        .flat_map(|r| r.window.as_ref().unwrap().functions.iter())
        .filter(|f| f.function.ends_with("::windowed_step"))
        .map(|f| f.calls)
        .sum();
    let finished = agentprof::report()
        .functions_named("::windowed_step")
        .next()
        .unwrap()
        .calls;
    assert_eq!(steps, finished);
    // The agent's window CPU is its invocations' own CPU: the same total.
    let agent_total: u64 = reports
        .iter()
        .flat_map(|r| r.window.as_ref().unwrap().agents.iter())
        .filter(|a| a.agent.as_deref() == Some("windowed-looper"))
        .map(|a| a.cpu_ns.unwrap())
        .sum();
    assert!(
        common::rel_diff(agent_total, total) < 0.02,
        "{agent_total} vs {total}"
    );
    // Windows follow each other.
    for (i, r) in reports.iter().enumerate() {
        let w = r.window.as_ref().unwrap();
        assert_eq!(w.sequence, i as u64 + 1);
        assert!(w.end_unix_ms >= w.start_unix_ms);
    }
}
