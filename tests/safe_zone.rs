//! The code the SIGPROF handler and the allocator hook run must not
//! allocate: the handler may interrupt `malloc` itself, and the hook is
//! inside it. `runtime/tests/layers.rs` refuses allocating constructs in
//! that code by reading it; this test runs it under a tripwire: a global
//! allocator around agentprof's that counts allocations requested from
//! where none may happen.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

use agentprof::{heap::HeapProfiler, heap::HeapProfilerConfig};

struct Tripwire(agentprof::Allocator);

thread_local! {
    /// Set while this thread is inside agentprof's allocator hook.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
    /// Allocations this thread requested, ever.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    /// Allocations this thread requested from inside agentprof's hook.
    static FROM_THE_HOOK: Cell<u64> = const { Cell::new(0) };
}

impl Tripwire {
    fn enter(&self) -> bool {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        IN_HOOK.with(|flag| {
            if flag.replace(true) {
                FROM_THE_HOOK.with(|n| n.set(n.get() + 1));
                false
            } else {
                true
            }
        })
    }

    fn leave(entered: bool) {
        if entered {
            IN_HOOK.with(|flag| flag.set(false));
        }
    }
}

// SAFETY: every call is forwarded to agentprof's allocator with the same
// arguments; the bookkeeping is const thread-locals and an atomic, which
// do not allocate.
unsafe impl GlobalAlloc for Tripwire {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let entered = self.enter();
        // SAFETY: forwarded as received.
        let ptr = unsafe { self.0.alloc(layout) };
        Self::leave(entered);
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let entered = IN_HOOK.with(|flag| !flag.replace(true));
        // SAFETY: forwarded as received.
        unsafe { self.0.dealloc(ptr, layout) };
        Self::leave(entered);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let entered = self.enter();
        // SAFETY: forwarded as received.
        let new = unsafe { self.0.realloc(ptr, layout, new_size) };
        Self::leave(entered);
        new
    }
}

#[global_allocator]
static ALLOC: Tripwire = Tripwire(agentprof::Allocator::system());

fn allocations_on_this_thread() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn the_allocator_hook_allocates_nothing_even_when_it_samples_every_allocation() {
    let profiler = HeapProfiler::start(HeapProfilerConfig {
        // Every allocation is sampled: each one takes the cold path,
        // unwinds its stack and enters the side table.
        sample_interval: 1,
        ..HeapProfilerConfig::default()
    })
    .unwrap();
    let from_the_hook: Vec<u64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|t| {
                s.spawn(move || {
                    // A thread's first allocation registers its exit flush
                    // (a thread-local destructor): the one allocation the
                    // hook's cold path may make, once per thread.
                    drop(vec![0u8; 64]);
                    let before = FROM_THE_HOOK.with(Cell::get);
                    let mut kept = Vec::new();
                    for i in 0..5_000usize {
                        let mut text = String::with_capacity(16 + (i % 64));
                        text.push_str("agentprof");
                        text.reserve(200 + t); // a realloc
                        if i % 3 == 0 {
                            kept.push(text);
                        }
                        if kept.len() > 100 {
                            kept.clear(); // frees of sampled blocks
                        }
                    }
                    FROM_THE_HOOK.with(Cell::get) - before
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let snapshot = profiler.snapshot();
    profiler.stop();
    let sampled: i64 = snapshot.stacks.iter().map(|s| s.alloc_estimate().0).sum();
    assert!(sampled > 10_000, "the hook sampled {sampled} allocations");
    assert_eq!(
        from_the_hook,
        [0, 0],
        "allocations agentprof's allocator hook requested of its own, per thread, while sampling"
    );
}

#[test]
fn a_thread_sampled_by_sigprof_allocates_nothing_in_between() {
    let mut profiler = agentprof::cpu::CpuProfiler::with_frequency(1000).unwrap();
    profiler.start().unwrap();
    let samples_seen = std::thread::spawn(|| {
        let sampled = agentprof::__test_hooks::this_thread_sampled_cpu_ns;
        let before = allocations_on_this_thread();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut samples = 0u32;
        let mut last = sampled();
        // Pure arithmetic: any allocation on this thread now is the
        // handler's. Runs until the thread has been sampled 50 times, or
        // has burnt 20 s of CPU on a machine that delivers no signal.
        let give_up = cpu_now() + 20_000_000_000;
        while samples < 50 && cpu_now() < give_up {
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            let now = sampled();
            if now != last {
                samples += 1;
                last = now;
            }
        }
        std::hint::black_box(x);
        (samples, allocations_on_this_thread() - before)
    })
    .join()
    .unwrap();
    let report = profiler.stop_and_collect().unwrap();
    let (samples, allocations) = samples_seen;
    assert!(
        samples >= 10,
        "the thread was sampled {samples} times ({} samples in all)",
        report.samples.len()
    );
    assert_eq!(
        allocations, 0,
        "{allocations} allocations on a thread that only computed while SIGPROF sampled it {samples} times"
    );
}

/// This thread's CPU time, ns.
fn cpu_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer for clock_gettime.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
