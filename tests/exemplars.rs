//! Exemplars: each function's slowest invocations kept with their callee
//! tree (across tasks and threads) and their own CPU profile.

mod common;

use std::sync::Mutex;

use agentprof::cpu::CpuProfiler;
use agentprof::profiled;
use agentprof::report::{CalleeNode, FunctionRow};
use common::{burn_cpu_ns, current_id, rel_diff, setup};

const MS: u64 = 1_000_000;

/// What each invocation measured of its own thread CPU, by id.
static MEASURED: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
/// The heavy session's planner invocation.
static HEAVY_PLAN: Mutex<Option<u64>> = Mutex::new(None);

fn measured(id: u64) -> u64 {
    let measured = MEASURED.lock().unwrap();
    measured
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, ns)| *ns)
        .unwrap()
}

#[inline(never)]
fn slow_tool_hot_loop(ns: u64) -> u64 {
    std::hint::black_box(burn_cpu_ns(ns))
}

#[inline(never)]
fn quick_tool_hot_loop(ns: u64) -> u64 {
    std::hint::black_box(burn_cpu_ns(ns))
}

#[profiled(agent = "tool")]
fn run_tool(heavy: bool) -> u64 {
    let used = if heavy {
        slow_tool_hot_loop(80 * MS)
    } else {
        quick_tool_hot_loop(5 * MS)
    };
    MEASURED.lock().unwrap().push((current_id(), used));
    used
}

#[profiled(agent = "researcher")]
async fn research(heavy: bool) -> u64 {
    tokio::task::yield_now().await;
    let used = burn_cpu_ns(if heavy { 40 * MS } else { 5 * MS });
    MEASURED.lock().unwrap().push((current_id(), used));
    used
}

#[profiled(agent = "planner")]
async fn plan(heavy: bool) -> u64 {
    if heavy {
        *HEAVY_PLAN.lock().unwrap() = Some(current_id());
    }
    let research = agentprof::spawn(research(heavy));
    let tool = agentprof::spawn_blocking(move || run_tool(heavy));
    research.await.unwrap() + tool.await.unwrap()
}

fn row(suffix: &str) -> FunctionRow {
    agentprof::report()
        .functions_named(suffix)
        .next()
        .unwrap_or_else(|| panic!("no row {suffix}"))
        .clone()
}

fn only(tree: &CalleeNode, function: &str) -> CalleeNode {
    let found = tree.find(function);
    assert_eq!(found.len(), 1, "{function} in {tree:#?}");
    found[0].clone()
}

#[test]
fn the_slowest_planner_call_keeps_its_callees_on_other_tasks_and_threads_and_its_own_profile() {
    setup();
    let mut profiler = CpuProfiler::with_frequency(997).unwrap();
    profiler.start().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Seven light sessions run beside one heavy one on the same workers.
    runtime.block_on(async {
        let sessions: Vec<_> = (0..8).map(|i| tokio::spawn(plan(i == 3))).collect();
        for session in sessions {
            session.await.unwrap();
        }
    });
    drop(runtime);
    // Stopping delivers the last samples.
    drop(profiler.stop_and_collect().unwrap());

    let heavy = HEAVY_PLAN.lock().unwrap().expect("the heavy session ran");
    let plan_row = row("::plan");
    assert!(
        plan_row.exemplars.len() <= 8,
        "at most K by CPU and K by wall: {:?}",
        plan_row.exemplars
    );
    // The most CPU is the heavy session's (wall times depend on how the
    // machine schedules the sessions).
    let most_cpu = plan_row.exemplars.iter().max_by_key(|e| e.cpu_ns).unwrap();
    assert_eq!(most_cpu.id, heavy, "{:?}", plan_row.exemplars);

    let detail = agentprof::invocation_detail(heavy).expect("the heavy call is kept");
    assert_eq!(detail.invocation.id, heavy);
    assert_eq!(detail.tree.id, Some(heavy));
    // Its two callees, each on another task or thread, with the CPU each
    // measured of itself.
    for function in ["::research", "::run_tool"] {
        let node = only(&detail.tree, function);
        let id = node.id.expect("an exact node");
        let cpu = node.cpu_ns.expect("CPU measured");
        let own = measured(id);
        assert!(
            rel_diff(cpu, own) < 0.05,
            "{function}: tree says {cpu} ns, the call measured {own} ns"
        );
    }
    assert_eq!(detail.tree.walk().len(), 3, "{:#?}", detail.tree);
    // The planner's CPU holds both callees'.
    let cpu = detail.invocation.cpu_ns.unwrap();
    assert!(cpu >= 115 * MS, "{cpu}");

    // Its own profile: the tool's hot loop, not the light sessions' work
    // that ran meanwhile on the same workers.
    let profile = detail.profile.as_ref().expect("the sampler ran");
    let functions: Vec<String> = profile
        .samples
        .iter()
        .flat_map(|s| s.function_names())
        .collect();
    assert!(
        functions.iter().any(|f| f.contains("slow_tool_hot_loop")),
        "{} samples, no slow_tool_hot_loop",
        profile.samples.len()
    );
    assert!(
        !functions.iter().any(|f| f.contains("quick_tool_hot_loop")),
        "another session's work in this invocation's profile"
    );
    assert_eq!(detail.profile_samples, profile.sample_count());
    let svg = String::from_utf8(profile.flamegraph_svg().unwrap()).unwrap();
    assert!(svg.contains("slow_tool_hot_loop"));

    // A light session's tool is in none of this.
    let light_tool = MEASURED
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| *id)
        .find(|id| !detail.tree.walk().iter().any(|n| n.id == Some(*id)));
    assert!(light_tool.is_some());
    let json = detail.to_json().unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["invocation"]["id"], heavy);
    assert_eq!(value["tree"]["children"].as_array().unwrap().len(), 2);
}

#[profiled(agent = "ranked")]
fn ranked(ns: u64) -> u64 {
    burn_cpu_ns(ns);
    current_id()
}

#[test]
fn a_function_keeps_only_its_slowest_calls_and_says_which_were_evicted() {
    setup();
    let ids: Vec<u64> = (1..=12u64).map(|i| ranked(i * 300_000)).collect();
    let row = row("::ranked");
    let kept: Vec<u64> = row.exemplars.iter().map(|e| e.id).collect();
    assert!((4..=8).contains(&kept.len()), "K = 4 per ranking: {kept:?}");
    // The most CPU is kept.
    assert!(kept.contains(&ids[11]), "{kept:?} / {ids:?}");
    let report = agentprof::report();
    assert!(report.dropped.exemplars_evicted >= 4);
    for id in ids.iter().filter(|id| !kept.contains(id)) {
        let error = agentprof::invocation_detail(*id).unwrap_err().to_string();
        assert!(
            error.contains("evicted") && error.contains("ranked"),
            "{error}"
        );
    }
    let unknown = agentprof::invocation_detail(u64::MAX)
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("is not known"), "{unknown}");
}

#[profiled]
fn steady(ns: u64) -> u64 {
    burn_cpu_ns(ns);
    current_id()
}

#[test]
fn a_call_below_the_floor_is_not_kept_and_says_so() {
    setup();
    for _ in 0..4 {
        steady(20 * MS);
    }
    // Drained: the floor is now the fourth slowest.
    let _ = agentprof::report();
    let quick = steady(0);
    let error = agentprof::invocation_detail(quick).unwrap_err().to_string();
    assert!(
        error.contains("not among its function's slowest"),
        "{error}"
    );
}

#[profiled]
fn leaf_a() {}

#[profiled]
fn leaf_b() {}

#[profiled]
fn fan_out(n: usize) {
    for i in 0..n {
        if i % 2 == 0 {
            leaf_a();
        } else {
            leaf_b();
        }
    }
}

#[test]
fn a_wide_tree_is_folded_by_function_within_its_bound() {
    setup();
    fan_out(300);
    let row = row("::fan_out");
    let detail = agentprof::invocation_detail(row.exemplars[0].id).unwrap();
    assert!(detail.tree_folded);
    let nodes = detail.tree.walk();
    assert!(nodes.len() <= 64, "{}", nodes.len());
    let calls: u64 = nodes.iter().map(|n| n.calls + n.cut_calls).sum();
    assert_eq!(calls, 301, "every call counted: {:#?}", detail.tree);
    let a: u64 = detail.tree.find("::leaf_a").iter().map(|n| n.calls).sum();
    assert_eq!(a, 150);
    assert_eq!(row.exemplars[0].callees, 300);
}
