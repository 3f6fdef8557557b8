//! Cost of the counting allocator on allocation-heavy workloads.
//!
//! ```text
//! cargo bench --bench allocator
//! ```
//!
//! One process, one run: the global allocator dispatches on a mode switch
//! to an inner allocator alone (the system allocator or mimalloc), to
//! `agentprof::Allocator` over it (attribution), or to the same with heap
//! sampling at a 512 KiB mean interval. The switch costs every mode the same
//! relaxed load; frees go to the allocator the pointer came from, whatever
//! the mode is now. Two workloads, each inside one `#[profiled]` invocation
//! per batch, on 1 and on 2 threads at once: a churn of small `Box`, `Vec`
//! and `String` allocations, and serde_json round trips of agent messages
//! with prompt building.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use agentprof::{heap::HeapProfiler, heap::HeapProfilerConfig};
use criterion::Criterion;
use mimalloc::MiMalloc;

mod common;

const GROUP: &str = "allocator";
const SYSTEM: u8 = 0;
const COUNTING_SYSTEM: u8 = 1;
const MIMALLOC: u8 = 2;
const COUNTING_MIMALLOC: u8 = 3;

static MODE: AtomicU8 = AtomicU8::new(SYSTEM);
static COUNTING_OVER_SYSTEM: agentprof::Allocator = agentprof::Allocator::system();
static COUNTING_OVER_MIMALLOC: agentprof::Allocator<MiMalloc> = agentprof::Allocator::new(MiMalloc);

struct Switch;

fn from_mimalloc(ptr: *mut u8) -> bool {
    // SAFETY: a pure query of mimalloc's own address ranges.
    unsafe { libmimalloc_sys::mi_is_in_heap_region(ptr as *const _) }
}

// SAFETY: allocations go to the allocator the mode names; frees and
// resizes go to the allocator that made the pointer (mimalloc knows its
// own regions; the counting wrappers forward to the same inner allocators),
// so memory is always returned to where it came from.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            match MODE.load(Relaxed) {
                SYSTEM => System.alloc(layout),
                COUNTING_SYSTEM => COUNTING_OVER_SYSTEM.alloc(layout),
                MIMALLOC => MiMalloc.alloc(layout),
                _ => COUNTING_OVER_MIMALLOC.alloc(layout),
            }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let counting = matches!(MODE.load(Relaxed), COUNTING_SYSTEM | COUNTING_MIMALLOC);
        // SAFETY: forwarded to the allocator that made `ptr`.
        unsafe {
            match (from_mimalloc(ptr), counting) {
                (false, false) => System.dealloc(ptr, layout),
                (false, true) => COUNTING_OVER_SYSTEM.dealloc(ptr, layout),
                (true, false) => MiMalloc.dealloc(ptr, layout),
                (true, true) => COUNTING_OVER_MIMALLOC.dealloc(ptr, layout),
            }
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let counting = matches!(MODE.load(Relaxed), COUNTING_SYSTEM | COUNTING_MIMALLOC);
        // SAFETY: forwarded to the allocator that made `ptr`.
        unsafe {
            match (from_mimalloc(ptr), counting) {
                (false, false) => System.realloc(ptr, layout, new_size),
                (false, true) => COUNTING_OVER_SYSTEM.realloc(ptr, layout, new_size),
                (true, false) => MiMalloc.realloc(ptr, layout, new_size),
                (true, true) => COUNTING_OVER_MIMALLOC.realloc(ptr, layout, new_size),
            }
        }
    }
}

#[global_allocator]
static GLOBAL: Switch = Switch;

/// About 200 allocations and as many frees of 8 B to 1 KiB.
#[agentprof::profiled(agent = "bench", span = false)]
fn churn(seed: u64) -> usize {
    let mut total = 0;
    let boxes: Vec<Box<u64>> = (0..64).map(|i| Box::new(seed ^ i)).collect();
    total += boxes.len();
    for i in 0..32u64 {
        let mut s = String::new();
        for _ in 0..(i % 8 + 1) {
            s.push_str("agent-token ");
        }
        let mut v: Vec<u32> = Vec::new();
        for j in 0..(i as u32 * 4) {
            v.push(j);
        }
        total += s.len() + v.len();
    }
    black_box(boxes);
    total
}

/// An agent's turn: parse the conversation (JSON), build the prompt,
/// serialize the reply.
#[agentprof::profiled(agent = "bench", span = false)]
fn agent_messages(seed: u64) -> usize {
    let conversation: Vec<serde_json::Value> = (0..8)
        .map(|i| {
            serde_json::json!({
                "role": if i % 2 == 0 { "user" } else { "assistant" },
                "content": format!("message {i} of turn {seed}: please plan the next step"),
                "tool_calls": [{"name": "search", "arguments": {"query": "flights", "top_k": i}}],
            })
        })
        .collect();
    let text = serde_json::to_string(&conversation).unwrap_or_default();
    let parsed: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
    let mut prompt = String::new();
    for message in &parsed {
        prompt.push_str(message["role"].as_str().unwrap_or(""));
        prompt.push_str(": ");
        prompt.push_str(message["content"].as_str().unwrap_or(""));
        prompt.push('\n');
    }
    let reply = serde_json::json!({"role": "assistant", "content": prompt, "tokens": prompt.len()});
    black_box(reply.to_string()).len()
}

/// One batch of a workload, from a seed.
type Workload = fn(u64) -> usize;

const WORKLOADS: [(&str, Workload); 2] = [("churn", churn), ("json", agent_messages)];
const INNER: [(&str, u8, u8); 2] = [
    ("system", SYSTEM, COUNTING_SYSTEM),
    ("mimalloc", MIMALLOC, COUNTING_MIMALLOC),
];

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group(GROUP);
    for (inner, plain_mode, counting_mode) in INNER {
        for (variant, mode, sampling) in [
            ("plain", plain_mode, false),
            ("counting", counting_mode, false),
            ("counting_heap_512k", counting_mode, true),
        ] {
            MODE.store(mode, Relaxed);
            if sampling {
                HeapProfiler::start(HeapProfilerConfig::default())
                    .expect("counting allocator active");
            }
            for (workload, work) in WORKLOADS {
                for threads in [1, 2] {
                    g.bench_function(format!("{workload}_{inner}_{variant}_{threads}t"), |b| {
                        b.iter_custom(|iters| common::on_threads_with(threads, iters, work))
                    });
                }
            }
            if let Some(heap) = HeapProfiler::running() {
                heap.stop();
            }
        }
    }
    MODE.store(SYSTEM, Relaxed);
    g.finish();
}

/// Ratios to the inner allocator alone, measured interleaved: rounds of
/// plain, attribution, attribution + sampling back to back, medians per
/// mode, so that the machine's drift falls on all three alike.
fn interleaved(
    work: fn(u64) -> usize,
    plain_mode: u8,
    counting_mode: u8,
    threads: usize,
) -> [f64; 3] {
    const ROUNDS: usize = 15;
    const BATCHES: u64 = 1_500;
    let mut times: [Vec<f64>; 3] = Default::default();
    for _ in 0..ROUNDS {
        for (i, (mode, sampling)) in [
            (plain_mode, false),
            (counting_mode, false),
            (counting_mode, true),
        ]
        .into_iter()
        .enumerate()
        {
            MODE.store(mode, Relaxed);
            let heap = sampling.then(|| {
                HeapProfiler::start(HeapProfilerConfig::default())
                    .expect("counting allocator active")
            });
            let elapsed = common::on_threads_with(threads, BATCHES, work);
            if let Some(heap) = heap {
                heap.stop();
            }
            times[i].push(elapsed.as_nanos() as f64 / BATCHES as f64);
        }
    }
    MODE.store(SYSTEM, Relaxed);
    times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    })
}

#[inline(never)]
fn nested_box(depth: u32) -> Box<u64> {
    if depth == 0 {
        Box::new(black_box(7))
    } else {
        black_box(nested_box(depth - 1))
    }
}

/// What one heap sample costs (stack capture through the prepared unwind
/// tables, bucket and side-table work): allocations 12 frames deep, every
/// one sampled, against the same with sampling off; medians of rounds.
fn per_sample_ns() -> f64 {
    const ALLOCATIONS: u64 = 5_000;
    MODE.store(COUNTING_SYSTEM, Relaxed);
    let time = || {
        let start = std::time::Instant::now();
        for _ in 0..ALLOCATIONS {
            black_box(nested_box(10));
        }
        start.elapsed().as_nanos() as f64 / ALLOCATIONS as f64
    };
    let mut differences = Vec::new();
    for _ in 0..9 {
        let off = time();
        let heap = HeapProfiler::start(HeapProfilerConfig {
            sample_interval: 1,
            ..HeapProfilerConfig::default()
        })
        .expect("counting allocator active");
        // Past the 16 KiB in which a thread notices the start.
        for _ in 0..4096 {
            black_box(nested_box(0));
        }
        let on = time();
        heap.stop();
        differences.push(on - off);
    }
    MODE.store(SYSTEM, Relaxed);
    differences.sort_by(f64::total_cmp);
    differences[differences.len() / 2]
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    benches(&mut c);
    c.final_summary();
    let met = |ratio: f64, target: f64| if ratio <= target { "met" } else { "NOT met" };
    println!("\nsummary (interleaved rounds, medians; ratio to the inner allocator alone)");
    for (workload, work) in WORKLOADS {
        for (inner, plain_mode, counting_mode) in INNER {
            for threads in [1, 2] {
                let [plain, counting, heap] = interleaved(work, plain_mode, counting_mode, threads);
                let (counting, heap) = (counting / plain, heap / plain);
                println!(
                    "  {workload:5} {inner:8} {threads}t: {plain:7.0} ns/batch, attribution {counting:.3}x (<= 1.05: {}), + heap sampling {heap:.3}x (<= 1.08: {})",
                    met(counting, 1.05),
                    met(heap, 1.08)
                );
            }
        }
    }
    let sample = per_sample_ns();
    println!(
        "  one heap sample (stack capture + tables) {sample:.0} ns (stack capture <= 2000: {})",
        met(sample / 2000.0, 1.0)
    );
    println!(
        "  heap profiler reserves {} KiB",
        HeapProfiler::reserved_bytes() / 1024
    );
}
