//! A three-agent tokio service written from the README alone, as a new
//! user would: agents behind a trait (`#[async_trait]`), methods, `?`
//! errors, `agentprof::spawn`, a `Drop` impl, the counting allocator, a
//! tracing-subscriber fmt layer with an `EnvFilter`, continuous profiling
//! into files with heap profiling. Then it is read back through the
//! report, the profiles the exporter wrote, the logs and the window's HTML
//! page, and every figure must read true at first sight.

mod agents;
mod tools;

#[path = "../common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentprof::pprof::Profile;
use agentprof::Profiler;
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use agents::{Agent, Hasher, Librarian, Planner, Researcher, ToolCaller};

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

/// The cache the librarian holds: 2,000 documents of 10 KiB.
const DOCUMENTS: usize = 2000;
const DOCUMENT_BYTES: usize = 10 * 1024;
/// Sessions, every third with a malformed tool call.
const SESSIONS: usize = 60;

/// The fmt layer's output, kept for the test to read.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A new span's `agent` field and its parent's (through the registry).
type SpanAgents = (String, Option<String>);

/// Every new span's [`SpanAgents`].
#[derive(Clone, Default)]
struct Parents(Arc<Mutex<Vec<SpanAgents>>>);

struct AgentField(Option<String>);

impl tracing::field::Visit for AgentField {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "agent" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "agent" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Parents {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut agent = AgentField(None);
        attrs.record(&mut agent);
        let Some(span) = ctx.span(id) else { return };
        if let Some(agent) = &agent.0 {
            span.extensions_mut()
                .insert(AgentField(Some(agent.clone())));
        }
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<AgentField>().and_then(|a| a.0.clone()));
        if let Some(agent) = agent.0 {
            self.0.lock().unwrap().push((agent, parent));
        }
    }
}

fn files(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

fn function_labels(profile: &Profile) -> HashSet<String> {
    profile
        .sample
        .iter()
        .filter_map(|s| profile.label(s, "function").map(str::to_owned))
        .collect()
}

/// Rounds of `Hasher::digest` that take about `target_ns` of CPU here.
fn calibrate(hasher: &Hasher, target_ns: u64) -> u64 {
    let rounds = 200_000;
    let before = common::thread_cpu_ns();
    hasher.digest(1, rounds);
    let took = (common::thread_cpu_ns() - before).max(1);
    (rounds * target_ns / took).max(rounds)
}

#[test]
fn a_service_written_from_the_readme_reads_true_at_first_sight() {
    let logs = Logs::default();
    let parents = Parents::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        )
        .with(parents.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = common::TempDir::new("agent-service");
    let profiler = Profiler::builder()
        .window(Duration::from_secs(1))
        .heap_sample_interval(64 * 1024)
        .file_exporter(dir.0.to_string_lossy())
        .build()
        .unwrap()
        .start()
        .unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let librarian = Librarian::new();
    librarian.load(DOCUMENTS, DOCUMENT_BYTES);
    let hasher = Hasher;
    let rounds = calibrate(&hasher, 40_000_000);
    let planner = Arc::new(Planner {
        researcher: Arc::new(Researcher),
        tools: Arc::new(ToolCaller),
    });
    let malformed = runtime.block_on(async {
        let mut malformed = 0;
        let mut sessions = Vec::new();
        for i in 0..SESSIONS {
            let input = if i % 3 == 0 {
                malformed += 1;
                format!("search flights {i}")
            } else {
                format!("search(flights {i})")
            };
            let planner = planner.clone();
            sessions.push(tokio::spawn(async move { planner.run(&input).await }));
        }
        for session in sessions {
            session.await.unwrap().unwrap();
        }
        malformed
    });
    for seed in 0..6 {
        hasher.digest(seed, rounds);
    }
    let windows_before = profiler.stats().windows;
    common::wait_until("a window cut after the work", || {
        profiler.stats().windows > windows_before
    });

    // While the heap profiler runs: the report.
    let report = agentprof::report();
    let table = report.to_string();
    let process = report.memory.expect("the counting allocator is installed");

    // Errors once per agent: a malformed call fails in `parse_call` and
    // again in `ToolCaller::run` by `?`; the agent counts its failing roots.
    let tools = report.agent(Some("tools")).unwrap();
    assert_eq!(tools.errors, malformed, "{table}");
    let parse = report.functions_named("::parse_call").next().unwrap();
    assert_eq!(parse.errors, malformed);
    assert_eq!(tools.root_calls, SESSIONS as u64);

    // Memory per agent that means something: the librarian holds its cache.
    let held = librarian.held() as f64;
    let librarian_row = report.agent(Some("librarian")).unwrap();
    let inuse = librarian_row
        .inuse_bytes
        .expect("in use while the heap profiler runs") as f64;
    assert!(
        (inuse - held).abs() <= 0.3 * held,
        "librarian in use {inuse} vs its cache {held}\n{table}"
    );
    // No memory figure that reads like a leak and is not one.
    assert!(!table.contains("retained"), "{table}");
    for f in &report.functions {
        if let Some(inuse) = f.inuse_bytes {
            assert!(inuse <= process.current_usage, "{}: {inuse}", f.function);
        }
        if let Some(max) = f.net_bytes_max {
            assert!(
                max <= process.peak_usage as i64,
                "{}: net {max}",
                f.function
            );
        }
    }
    for a in &report.agents {
        if let Some(inuse) = a.inuse_bytes {
            assert!(inuse <= process.current_usage, "{:?}: {inuse}", a.agent);
        }
    }
    // What agentprof itself costs, beside the application's figures.
    let own = report.profiler.clone().expect("the profiler's own bill");
    assert!(own.cpu_ns > 0 && own.threads >= 2, "{own:?}");
    assert!(own.first_cut_cpu_ns.is_some() && own.last_cut_cpu_ns.is_some());
    let own_heap = own.heap_inuse_bytes.expect("the heap profiler runs");
    assert!(own_heap > 0 && own_heap < process.current_usage, "{own:?}");
    assert!(own.reserved_bytes > 0);
    assert!(
        report
            .agents
            .iter()
            .all(|a| a.agent.as_deref() != Some("agentprof")),
        "agentprof is not one of the application's agents"
    );
    assert!(table.contains("agentprof itself: heap"), "{table}");
    let heap = agentprof::heap::HeapProfiler::running().unwrap().snapshot();
    let heap_sites: HashSet<String> = heap.stacks.iter().map(|s| s.site()).collect();
    // The profiler's own allocations are its own.
    assert!(
        heap.stacks.iter().any(|s| s.agent == Some("agentprof")),
        "agentprof's allocations labelled as its own"
    );

    drop(librarian);
    profiler.shutdown().unwrap();

    // One name per function: the report's, in the table, the heap sites
    // and both profiles' `function` label.
    let load = report
        .function(
            Some("librarian"),
            &format!("{}::agents::Librarian::load", module_path!()),
        )
        .unwrap_or_else(|| panic!("librarian's load row\n{table}"));
    let name = &load.function;
    assert!(table.contains(name.as_str()));
    assert!(heap_sites.contains(name), "heap sites: {heap_sites:?}");
    let cpu_profiles: Vec<Profile> = files(&dir.0, "cpu_profile_")
        .iter()
        .map(|p| Profile::decode(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    assert!(cpu_profiles
        .iter()
        .any(|p| function_labels(p).contains(name)));
    let heap_files = files(&dir.0, "mem_profile_");
    let heap_profile =
        Profile::decode(&std::fs::read(heap_files.last().unwrap()).unwrap()).unwrap();
    assert!(function_labels(&heap_profile).contains(name));
    // A trait method too: one name, with its type and trait.
    let researcher = report.agent(Some("researcher")).unwrap();
    assert_eq!(researcher.calls, SESSIONS as u64);
    assert!(report
        .functions
        .iter()
        .any(|f| f.function.contains("Researcher as") && f.function.ends_with("::run")));

    // Heap stacks start at the program's code, not the allocator's.
    let functions: HashMap<u64, &str> = heap_profile
        .function
        .iter()
        .map(|f| (f.id, heap_profile.string(f.name)))
        .collect();
    let locations: HashMap<u64, &agentprof::pprof::Location> =
        heap_profile.location.iter().map(|l| (l.id, l)).collect();
    for sample in &heap_profile.sample {
        let leaf = sample
            .location_id
            .first()
            .and_then(|id| locations.get(id))
            .and_then(|l| l.line.first())
            .map_or("", |line| functions[&line.function_id]);
        for allocator in ["alloc::alloc::", "__rust", "agentprof_runtime::memory::"] {
            assert!(
                !leaf.starts_with(allocator) && !leaf.contains("count_down"),
                "leaf {leaf}"
            );
        }
        // The profiler's own code allocates under its own name only.
        if leaf.starts_with("agentprof_runtime::") {
            assert_eq!(
                heap_profile.label(sample, "agent"),
                Some("agentprof"),
                "{leaf}"
            );
        }
    }

    // One id per invocation: a log line's id finds its samples.
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let ids: Vec<String> = logged
        .lines()
        .filter(|l| l.contains("hashed"))
        .filter_map(|l| {
            let at = l.find("invocation_id=")? + "invocation_id=".len();
            Some(l[at..].chars().take_while(char::is_ascii_digit).collect())
        })
        .collect();
    assert_eq!(ids.len(), 7, "hashed lines with ids:\n{logged}");
    // The first is the short calibration call; the others ran ~40 ms each.
    for id in &ids[1..] {
        let cpu_ns: i64 = cpu_profiles
            .iter()
            .flat_map(|p| {
                p.sample
                    .iter()
                    .filter(|s| p.label(s, "invocation_id") == Some(id.as_str()))
                    .map(|s| s.value[1])
            })
            .sum();
        assert!(cpu_ns > 0, "no samples of invocation {id} from the log");
    }
    // No span id without OpenTelemetry, and thread names, not numbers.
    for p in &cpu_profiles {
        for s in &p.sample {
            assert_eq!(p.label(s, "span_id"), None);
            assert!(p
                .label(s, "thread")
                .is_some_and(|t| t.parse::<u64>().is_err()));
        }
    }

    // Spawned work's spans have the invoking span as parent.
    let parents = parents.0.lock().unwrap();
    let research: Vec<_> = parents.iter().filter(|(a, _)| a == "researcher").collect();
    assert_eq!(research.len(), SESSIONS, "{parents:?}");
    assert!(
        research
            .iter()
            .all(|(_, p)| p.as_deref() == Some("planner")),
        "{research:?}"
    );

    // The window's page: its own figures first, labelled; since start one
    // click away; functions by self CPU; charts with ticks.
    // The busiest window's page.
    let window_rows = |html: &str| {
        section(html, "<section class=\"functions\" data-scope=\"window\">")
            .matches("<tr>")
            .count()
    };
    let (page, html) = files(&dir.0, "report_")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .map(|p| {
            let html = std::fs::read_to_string(&p).unwrap();
            (p, html)
        })
        .max_by_key(|(_, html)| window_rows(html))
        .unwrap();
    let page = &page;
    assert!(html.contains("Agents, this window (#") && html.contains("Agents, since start"));
    let Some(browser) = common::chromium() else {
        return;
    };
    let (dom, log) = common::run_chromium(
        &browser,
        &dir.0.join("browser"),
        &format!("file://{}", page.display()),
        &["--dump-dom"],
    );
    assert!(!log.contains("Uncaught"), "{log}");
    let window_functions = section(&dom, "<section class=\"functions\" data-scope=\"window\">");
    assert!(window_functions.contains("by self CPU"));
    let self_cpu = column_values(window_functions, 4);
    assert!(self_cpu.len() >= 3, "{window_functions}");
    assert!(
        self_cpu.windows(2).all(|w| w[0] >= w[1]),
        "sorted by self CPU: {self_cpu:?}"
    );
    assert!(dom.contains("<details id=\"since-start\">"));
    assert!(
        dom.contains("<dt>agentprof itself</dt>"),
        "the profiler's bill in the header"
    );
    for chart in ["id=\"memory-timeline\"", "id=\"agent-cpu\""] {
        let svg = section(&dom, chart);
        let svg = &svg[..svg.find("</svg>").unwrap()];
        assert!(
            svg.matches("class=\"tick-label\"").count() >= 8,
            "{chart} has ticks on both axes"
        );
    }
}

/// The DOM from `start` to the end of its section (or element).
fn section<'a>(dom: &'a str, start: &str) -> &'a str {
    let at = dom
        .find(start)
        .unwrap_or_else(|| panic!("{start} in the page"));
    let rest = &dom[at..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

/// The `data-v` of column `index` of a table's body rows, in order.
fn column_values(table: &str, index: usize) -> Vec<f64> {
    let body = &table[table.find("<tbody>").unwrap()..];
    body.split("<tr>")
        .skip(1)
        .filter_map(|row| {
            row.split("<td")
                .skip(1)
                .nth(index)
                .and_then(|cell| cell.split("data-v=\"").nth(1))
                .and_then(|v| v.split('"').next())
                .and_then(|v| v.parse().ok())
        })
        .collect()
}
