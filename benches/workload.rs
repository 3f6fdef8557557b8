//! A fine-grained async service with every function instrumented, against
//! the same code without the attribute, and the observer effect on a
//! trivial function.
//!
//! ```text
//! cargo bench --bench workload
//! ```
//!
//! The service runs on a 2-worker tokio runtime: each request is a handler
//! calling a parser, a planner with three tool calls and a formatter, each
//! 1–10 µs of work, with a yield between steps (about 7 invocations per
//! request). One run times plain, instrumented (user-space CPU clock) and
//! instrumented with the system-call clock, and ends with the ratios. The
//! observer effect is the self CPU the report gives a function of a few
//! instructions called in a loop from an instrumented parent.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;

mod common;

const GROUP: &str = "workload";
const REQUESTS: u64 = 2_000;

/// About `n` ns of arithmetic.
#[inline(never)]
fn work(seed: u64, n: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..n / 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

macro_rules! service {
    ($name:ident $(, #[$attr:meta])?) => {
        mod $name {
            use super::work;

            $(#[$attr])?
            pub async fn handle(request: u64) -> u64 {
                let parsed = parse(request).await;
                let plan = plan(parsed).await;
                format(plan)
            }

            $(#[$attr])?
            async fn parse(request: u64) -> u64 {
                let head = work(request, 1_500);
                tokio::task::yield_now().await;
                work(head, 1_000)
            }

            $(#[$attr])?
            async fn plan(parsed: u64) -> u64 {
                let mut acc = parsed;
                for step in 0..3 {
                    acc = tool(acc, step).await;
                }
                acc
            }

            $(#[$attr])?
            async fn tool(input: u64, step: u64) -> u64 {
                tokio::task::yield_now().await;
                work(input ^ step, 2_000 + step * 1_000)
            }

            $(#[$attr])?
            fn format(plan: u64) -> u64 {
                work(plan, 1_000)
            }
        }
    };
}

service!(plain);
service!(instrumented, #[agentprof::profiled(agent = "service")]);

fn run(runtime: &tokio::runtime::Runtime, instrumented: bool) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|r| {
                tokio::spawn(async move {
                    if instrumented {
                        instrumented::handle(r).await
                    } else {
                        plain::handle(r).await
                    }
                })
            })
            .collect();
        for task in tasks {
            black_box(task.await.unwrap());
        }
        start.elapsed()
    })
}

#[agentprof::profiled(agent = "observer")]
#[inline(never)]
fn trivial_leaf(x: u64) -> u64 {
    x.wrapping_mul(31).wrapping_add(7)
}

#[agentprof::profiled(agent = "observer")]
fn parent(calls: u64) -> u64 {
    (0..calls).map(|i| trivial_leaf(black_box(i))).sum()
}

/// Self CPU per call the report gives the trivial leaf, ns.
fn observed_leaf_cpu(fast: bool) -> f64 {
    agentprof::__test_hooks::set_fast_cpu_clock(fast);
    agentprof::report::reset();
    black_box(parent(200_000));
    let report = agentprof::report();
    let row = report
        .functions_named("::trivial_leaf")
        .next()
        .expect("the leaf ran");
    row.self_cpu_ns.unwrap_or(0) as f64 / row.calls as f64
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let fast = agentprof::__test_hooks::set_fast_cpu_clock(true);
    let mut g = c.benchmark_group(GROUP);
    g.sample_size(20);
    g.bench_function("plain", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run(&runtime, false)).sum())
    });
    g.bench_function("instrumented", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run(&runtime, true)).sum())
    });
    agentprof::__test_hooks::set_fast_cpu_clock(false);
    g.bench_function("instrumented_syscall_clock", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run(&runtime, true)).sum())
    });
    agentprof::__test_hooks::set_fast_cpu_clock(fast);
    g.finish();
}

fn summary(leaf_fast: f64, leaf_syscall: f64) {
    let m = |name: &str| common::mean_ns(GROUP, name);
    let plain = m("plain");
    let instrumented = m("instrumented");
    let syscall = m("instrumented_syscall_clock");
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("\nsummary (means of this run)");
    println!(
        "  {REQUESTS} requests, plain                    {:8.2} ms",
        plain / 1e6
    );
    println!(
        "  instrumented / plain, user-space clock    {:8.3}x  target <= 1.5 (moonshot 1.2): {}",
        instrumented / plain,
        met(instrumented / plain <= 1.5)
    );
    println!(
        "  instrumented / plain, system-call clock   {:8.3}x",
        syscall / plain
    );
    println!(
        "  invocations per second, instrumented      {:8.0}",
        REQUESTS as f64 * 7.0 / (instrumented / 1e9)
    );
    println!(
        "  observer effect: trivial leaf self CPU    {leaf_fast:8.1} ns  target <= 100: {}",
        met(leaf_fast <= 100.0)
    );
    println!("  same, system-call clock                   {leaf_syscall:8.1} ns");
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    benches(&mut c);
    c.final_summary();
    let leaf_syscall = observed_leaf_cpu(false);
    let leaf_fast = observed_leaf_cpu(true);
    summary(leaf_fast, leaf_syscall);
}
