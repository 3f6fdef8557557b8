//! Cost of the counting allocator on an allocation-heavy workload.
//!
//! ```text
//! cargo bench --bench allocator
//! ```
//!
//! One process, one run: the global allocator dispatches on a mode switch
//! to `System` alone, to `agentprof::Allocator<System>` (attribution), or to
//! the same with heap sampling at a 512 KiB mean interval. The switch costs
//! every mode the same relaxed load. The workload (many small `Box`, `Vec`
//! and `String` allocations and frees, inside one `#[profiled]` invocation
//! per batch) runs on 1 and on 2 threads at once.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use agentprof::{HeapProfiler, HeapProfilerConfig};
use criterion::Criterion;

mod common;

const GROUP: &str = "allocator";
const SYSTEM: u8 = 0;
const COUNTING: u8 = 1;

static MODE: AtomicU8 = AtomicU8::new(SYSTEM);
static COUNTING_ALLOC: agentprof::Allocator = agentprof::Allocator::system();

struct Switch;

// SAFETY: both targets are sound allocators over `System`, so memory from
// either can be freed by either; the mode only decides who counts.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if MODE.load(Relaxed) == SYSTEM {
                System.alloc(layout)
            } else {
                COUNTING_ALLOC.alloc(layout)
            }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if MODE.load(Relaxed) == SYSTEM {
                System.dealloc(ptr, layout)
            } else {
                COUNTING_ALLOC.dealloc(ptr, layout)
            }
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if MODE.load(Relaxed) == SYSTEM {
                System.realloc(ptr, layout, new_size)
            } else {
                COUNTING_ALLOC.realloc(ptr, layout, new_size)
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

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group(GROUP);
    for (mode, name) in [
        (SYSTEM, "system"),
        (COUNTING, "counting"),
        (COUNTING, "counting_heap_512k"),
    ] {
        MODE.store(mode, Relaxed);
        if name == "counting_heap_512k" {
            HeapProfiler::start(HeapProfilerConfig::default()).expect("counting allocator active");
        }
        for threads in [1, 2] {
            g.bench_function(format!("{name}_{threads}t"), |b| {
                b.iter_custom(|iters| {
                    common::on_threads(threads, iters, |i, t| {
                        black_box(churn(i ^ t as u64));
                    })
                })
            });
        }
        if let Some(heap) = HeapProfiler::running() {
            heap.stop();
        }
    }
    MODE.store(SYSTEM, Relaxed);
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    benches(&mut c);
    c.final_summary();
    println!("\nsummary (means of this run, per churn batch of ~200 allocations)");
    for threads in [1, 2] {
        let system = common::mean_ns(GROUP, &format!("system_{threads}t"));
        let counting = common::mean_ns(GROUP, &format!("counting_{threads}t"));
        let heap = common::mean_ns(GROUP, &format!("counting_heap_512k_{threads}t"));
        println!(
            "  {threads} thread(s): system {system:.0} ns, attribution {:.3}x (target <= 1.10), with heap sampling {:.3}x (target <= 1.15)",
            counting / system,
            heap / system
        );
    }
    println!(
        "  heap profiler reserves {} KiB",
        HeapProfiler::reserved_bytes() / 1024
    );
}
