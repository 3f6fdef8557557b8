//! The counting allocator: per-invocation and process figures, measured
//! against known allocations; and the sampled heap profiler, read back with
//! prost and `go tool pprof`.

mod common;

use std::sync::{Arc, Barrier, Mutex};

use agentprof::{heap::HeapProfiler, heap::HeapProfilerConfig, profiled};
use common::{current_id, finished, rel_diff, setup};

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

#[profiled(agent = "memory")]
fn keeps_buffer(n: usize) -> (u64, Vec<u8>) {
    (current_id(), Vec::with_capacity(n))
}

#[profiled(agent = "memory")]
fn frees_buffer(n: usize) -> u64 {
    let buffer: Vec<u8> = Vec::with_capacity(n);
    std::hint::black_box(&buffer);
    drop(buffer);
    current_id()
}

#[test]
fn a_known_allocation_is_charged_and_its_free_leaves_nothing_retained() {
    setup();
    const N: usize = 3 << 20;
    let (id, buffer) = keeps_buffer(N);
    let kept = finished(id);
    assert_eq!(buffer.capacity(), N);
    let m = kept_memory(&kept.id);
    assert!(
        m.0 >= N as u64 && m.1 >= 1,
        "charged {} bytes in {} allocations",
        m.0,
        m.1
    );

    let id = frees_buffer(N);
    let (alloc, allocs, retained, peak) = kept_memory(&id);
    assert!(alloc >= N as u64 && allocs >= 1);
    assert_eq!(retained, 0, "freed before returning");
    assert!(peak >= N as u64, "peak {peak}");

    let report = agentprof::report();
    let row = report
        .function(Some("memory"), &format!("{}::frees_buffer", module_path!()))
        .unwrap();
    assert!(row.alloc_bytes.unwrap() >= N as u64);
    assert!(row.peak_bytes.unwrap() >= N as u64);
    assert_eq!(row.retained_bytes, Some(0));
    assert!(report.memory.unwrap().peak_usage >= N as u64);
    assert!(report.memory_note.is_none());
}

/// (alloc bytes, allocations, retained, peak) of a finished invocation.
fn kept_memory(id: &u64) -> (u64, u64, i64, u64) {
    let r = finished(*id);
    let missing = "memory figures with the allocator installed";
    (
        r.alloc_bytes.expect(missing),
        r.allocs.expect(missing),
        r.retained_bytes.expect(missing),
        r.peak_bytes.expect(missing),
    )
}

#[profiled(agent = "memory")]
fn allocate_chunks(chunks: usize, barrier: &Barrier) -> (u64, u64) {
    barrier.wait();
    let mut kept = Vec::with_capacity(chunks);
    let mut expected = (chunks * std::mem::size_of::<Vec<u8>>()) as u64;
    for i in 0..chunks {
        let size = 10_000 + i % 7;
        kept.push(vec![1u8; size]);
        expected += size as u64;
    }
    std::hint::black_box(&kept);
    (current_id(), expected)
}

#[test]
fn concurrent_invocations_on_two_threads_are_charged_only_their_own_bytes() {
    setup();
    let barrier = Arc::new(Barrier::new(2));
    let spawn = |chunks: usize| {
        let barrier = barrier.clone();
        std::thread::spawn(move || allocate_chunks(chunks, &barrier))
    };
    let a = spawn(300);
    let b = spawn(100);
    for (id, expected) in [a.join().unwrap(), b.join().unwrap()] {
        let (alloc, ..) = kept_memory(&id);
        assert!(
            rel_diff(alloc, expected) < 0.01,
            "charged {alloc} bytes, allocated {expected}"
        );
    }
}

#[profiled(agent = "memory")]
async fn interleaved(chunks: usize, size: usize) -> (u64, u64) {
    let mut kept = Vec::with_capacity(chunks);
    for _ in 0..chunks {
        kept.push(vec![7u8; size]);
        tokio::task::yield_now().await;
    }
    (
        current_id(),
        (chunks * size + chunks * std::mem::size_of::<Vec<u8>>()) as u64,
    )
}

#[tokio::test(flavor = "current_thread")]
async fn interleaved_async_invocations_on_one_thread_are_charged_only_their_own_bytes() {
    setup();
    let (a, b) = tokio::join!(interleaved(200, 20_000), interleaved(200, 5_000));
    for (id, expected) in [a, b] {
        let (alloc, ..) = kept_memory(&id);
        assert!(
            rel_diff(alloc, expected) < 0.01,
            "charged {alloc} bytes, allocated {expected}"
        );
    }
}

#[profiled(agent = "memory")]
fn grows_by_realloc() -> (u64, usize) {
    let mut v: Vec<u8> = Vec::with_capacity(1024);
    while v.capacity() < 1 << 20 {
        let double = v.capacity() * 2;
        v.reserve_exact(double - v.len());
    }
    (current_id(), v.capacity())
}

#[test]
fn realloc_growth_counts_as_the_final_size_not_the_sum() {
    setup();
    let (id, capacity) = grows_by_realloc();
    assert_eq!(capacity, 1 << 20);
    let (alloc, allocs, retained, peak) = kept_memory(&id);
    assert_eq!(
        alloc,
        1 << 20,
        "a resize counts its growth: 1 KiB + growths = 1 MiB, not the 2 MiB sum"
    );
    assert_eq!(allocs, 1, "resizes are not new allocations");
    assert_eq!(retained, 0);
    assert_eq!(peak, 1 << 20);
}

#[inline(never)]
fn heap_three_parts(out: &mut Vec<Vec<u8>>) {
    for _ in 0..12_000 {
        out.push(vec![3u8; 1024]);
    }
}

#[inline(never)]
fn heap_one_part(out: &mut Vec<Vec<u8>>) {
    for _ in 0..4_000 {
        out.push(vec![1u8; 1024]);
    }
}

#[profiled(agent = "heap-a")]
fn agent_a(out: &mut Vec<Vec<u8>>) {
    heap_three_parts(out)
}

#[profiled(agent = "heap-b")]
fn agent_b(out: &mut Vec<Vec<u8>>) {
    heap_one_part(out)
}

static HEAP_TESTS: Mutex<()> = Mutex::new(());

fn space_of(profile: &agentprof::pprof::Profile, function: &str, index: usize) -> i64 {
    profile
        .sample
        .iter()
        .filter(|s| profile.stack_names(s).iter().any(|n| n.ends_with(function)))
        .map(|s| s.value[index])
        .sum()
}

#[test]
fn heap_profile_reflects_a_three_to_one_split_and_frees() {
    setup();
    let _serial = HEAP_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let heap = HeapProfiler::start(HeapProfilerConfig {
        sample_interval: 2048,
        ..HeapProfilerConfig::default()
    })
    .expect("allocator installed");
    let mut a = Vec::with_capacity(12_000);
    let mut b = Vec::with_capacity(4_000);
    agent_a(&mut a);
    agent_b(&mut b);
    let profile = heap.snapshot().to_pprof();
    let (three, one) = (
        space_of(&profile, "heap_three_parts", 1),
        space_of(&profile, "heap_one_part", 1),
    );
    let ratio = three as f64 / one as f64;
    assert!(
        (ratio - 3.0).abs() / 3.0 < 0.10,
        "alloc_space {three} : {one} = {ratio:.3}"
    );
    assert!(
        rel_diff(three as u64, 12_000 * 1024) < 0.10,
        "estimate {three} for 12000 KiB"
    );
    let inuse_before = space_of(&profile, "heap_one_part", 3);
    assert!(
        rel_diff(inuse_before as u64, 4_000 * 1024) < 0.15,
        "in use {inuse_before}"
    );
    let sample = profile
        .sample
        .iter()
        .find(|s| {
            profile
                .stack_names(s)
                .iter()
                .any(|n| n.ends_with("heap_one_part"))
        })
        .unwrap();
    assert_eq!(profile.label(sample, "agent"), Some("heap-b"));
    assert_eq!(
        profile.label(sample, "function"),
        Some(&*format!("{}::agent_b", module_path!()))
    );

    drop(b);
    let after = heap.snapshot().to_pprof();
    assert_eq!(
        space_of(&after, "heap_one_part", 3),
        0,
        "freed memory leaves inuse_space"
    );
    assert_eq!(
        space_of(&after, "heap_one_part", 1),
        space_of(&profile, "heap_one_part", 1),
        "but stays in alloc_space"
    );
    assert!(space_of(&after, "heap_three_parts", 3) > 0);

    let dir = common::TempDir::new("heap");
    let file = dir.0.join("mem_profile.pb.gz");
    std::fs::write(&file, after.encode_gzip()).unwrap();
    if let Some(top) = common::go_pprof(&["-sample_index=inuse_space", "-top"], &file) {
        assert!(
            top.contains("heap_three_parts"),
            "go tool pprof -top:\n{top}"
        );
    }
    if let Some(tags) = common::go_pprof(&["-sample_index=alloc_space", "-tags"], &file) {
        assert!(
            tags.contains("heap-a") && tags.contains("heap-b"),
            "go tool pprof -tags:\n{tags}"
        );
    }
    if let Some(raw) = common::go_pprof(&["-raw"], &file) {
        assert!(
            raw.contains("alloc_objects/count") && raw.contains("inuse_space/bytes"),
            "{raw}"
        );
    }
    drop(a);
    heap.stop();
}

#[inline(never)]
fn exiting_thread_allocation() -> Box<[u8; 4096]> {
    Box::new([9u8; 4096])
}

#[test]
fn allocations_outliving_their_thread_and_freed_elsewhere_are_matched() {
    setup();
    let _serial = HEAP_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    // At a 256-byte mean interval a 4 KiB allocation is sampled with
    // probability 1 - e^-16, so every box is recorded, while the small
    // allocations of tests running alongside do not flood the side table.
    let heap = HeapProfiler::start(HeapProfilerConfig {
        sample_interval: 256,
        ..HeapProfilerConfig::default()
    })
    .unwrap();
    let boxes: Vec<Box<[u8; 4096]>> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                (0..50)
                    .map(|_| exiting_thread_allocation())
                    .collect::<Vec<_>>()
            })
        })
        .flat_map(|t| t.join().unwrap())
        .collect();
    let held = heap.snapshot().to_pprof();
    assert_eq!(
        space_of(&held, "exiting_thread_allocation", 3),
        400 * 4096,
        "every box recorded"
    );
    drop(boxes);
    let freed = heap.snapshot().to_pprof();
    assert_eq!(
        space_of(&freed, "exiting_thread_allocation", 3),
        0,
        "frees on another thread matched"
    );
    assert_eq!(space_of(&freed, "exiting_thread_allocation", 0), 400);
    heap.stop();
}

#[test]
fn leak_signal_names_the_site_that_grew() {
    setup();
    let _serial = HEAP_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let heap = HeapProfiler::start(HeapProfilerConfig {
        sample_interval: 1024,
        ..HeapProfilerConfig::default()
    })
    .unwrap();
    heap.snapshot();
    let mut leaked = Vec::with_capacity(4_000);
    heap_three_parts_leak(&mut leaked);
    heap.snapshot();
    let growth = agentprof::report().heap_growth;
    let top = growth.first().expect("growth between two snapshots");
    assert!(
        top.function.ends_with("heap_three_parts_leak"),
        "{growth:?}"
    );
    assert!(top.growth_bytes > 2_000_000, "{growth:?}");
    heap.stop();
}

#[inline(never)]
fn heap_three_parts_leak(out: &mut Vec<Vec<u8>>) {
    for _ in 0..4_000 {
        out.push(vec![5u8; 1024]);
    }
}

#[test]
fn system_memory_and_the_timeline_are_read() {
    setup();
    let info = agentprof::memory::system_memory().expect("Linux procfs");
    assert!(
        info.rss_bytes > 1 << 20 && info.virtual_bytes >= info.rss_bytes,
        "{info:?}"
    );
    agentprof::memory::start_memory_timeline(std::time::Duration::from_millis(5), 4).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    agentprof::memory::stop_memory_timeline();
    let timeline = agentprof::report().memory_timeline;
    assert_eq!(timeline.len(), 4, "the ring keeps the last 4 readings");
    assert!(timeline.windows(2).all(|w| w[0].unix_ms <= w[1].unix_ms));
    assert!(timeline
        .iter()
        .all(|p| p.rss_bytes.is_some() && p.current_bytes.is_some()));
}

#[inline(never)]
fn small_box_after_start(i: u64) -> Box<u64> {
    Box::new(std::hint::black_box(i))
}

/// A thread that allocated a lot while no profiler ran is sampled soon after
/// one starts (within 16 KiB of its allocations), not after its next fold.
#[test]
fn a_profiler_started_later_samples_busy_threads_at_once() {
    setup();
    let _serial = HEAP_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let samples = std::thread::spawn(|| {
        // Allocate while no profiler runs: the thread's countdowns are armed.
        for i in 0..10_000u64 {
            drop(std::hint::black_box(small_box_after_start(i)));
        }
        let heap = HeapProfiler::start(HeapProfilerConfig {
            sample_interval: 1,
            ..HeapProfilerConfig::default()
        })
        .unwrap();
        for i in 0..10_000u64 {
            drop(std::hint::black_box(small_box_after_start(i)));
        }
        let snapshot = heap.snapshot();
        heap.stop();
        snapshot
            .stacks
            .iter()
            .filter(|s| {
                s.function_names()
                    .iter()
                    .any(|f| f.contains("small_box_after_start"))
            })
            .map(|s| s.samples)
            .sum::<u64>()
    })
    .join()
    .unwrap();
    // Every allocation is sampled once the thread noticed the start: at
    // most 16 KiB of 8-byte boxes (2048) before it did.
    assert!(
        (10_000 - 2_048..=20_000).contains(&samples),
        "{samples} samples of 10000 allocations made after the start"
    );
}
