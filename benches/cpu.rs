//! Cost of CPU sampling on a CPU-bound workload, against pprof-rs.
//!
//! ```text
//! cargo bench --bench cpu
//! ```
//!
//! One run: the workload (two threads, each about 20 ms of arithmetic) with
//! no profiler, with ours at 100 Hz and 1000 Hz, and with pprof-rs at the
//! same frequencies; ends with the time ratios and the samples each
//! profiler took.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;

mod common;

const GROUP: &str = "cpu";

#[inline(never)]
fn crunch(rounds: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(i);
    }
    x
}

fn workload() -> u64 {
    let threads: Vec<_> = (0..2)
        .map(|t| std::thread::spawn(move || crunch(black_box(20_000_000 + t))))
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold(0, |a, b| a ^ b)
}

/// CPU time of this process so far (all threads, exited ones included).
fn process_cpu_ns() -> u64 {
    // SAFETY: a zeroed rusage is valid output space for getrusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    let mut g = c.benchmark_group(GROUP);
    let mut samples = Vec::new();

    g.bench_function("off", |b| b.iter(workload));
    for hz in [100, 1000] {
        let mut ours = agentprof::cpu::CpuProfiler::with_frequency(hz).unwrap();
        let before = process_cpu_ns();
        ours.start().unwrap();
        g.bench_function(format!("agentprof_{hz}hz"), |b| b.iter(workload));
        let report = ours.stop_and_collect().unwrap();
        let used = process_cpu_ns() - before;
        samples.push((
            format!("agentprof_{hz}hz"),
            report.sample_count(),
            report.total_cpu_ns(),
            used,
        ));

        let before = process_cpu_ns();
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(hz as i32)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .unwrap();
        g.bench_function(format!("pprof_rs_{hz}hz"), |b| b.iter(workload));
        let report = guard.report().build().unwrap();
        let used = process_cpu_ns() - before;
        let count: isize = report.data.values().sum();
        // pprof-rs weighs every sample as one period.
        let weighted = count as u64 * 1_000_000_000 / hz as u64;
        samples.push((format!("pprof_rs_{hz}hz"), count as u64, weighted, used));
    }
    g.finish();
    c.final_summary();

    let mean = |name: &str| common::mean_ns(GROUP, name);
    let off = mean("off");
    println!("\nsummary (means of this run; workload = 2 threads x ~20 ms CPU)");
    println!("  off                  {:8.2} ms", off / 1e6);
    for hz in [100, 1000] {
        let ours = mean(&format!("agentprof_{hz}hz"));
        let theirs = mean(&format!("pprof_rs_{hz}hz"));
        let target = if hz == 100 { 1.01 } else { 1.05 };
        println!(
            "  {hz:>4} Hz  agentprof {:.3}x (target <= {target}), pprof-rs {:.3}x",
            ours / off,
            theirs / off
        );
    }
    println!("  samples, CPU they stand for, and the CPU the process actually used meanwhile:");
    for (name, count, cpu_ns, used) in samples {
        println!(
            "  {name:<18} {count:>7} samples = {:6.2} s of {:6.2} s used ({:5.1}%)",
            cpu_ns as f64 / 1e9,
            used as f64 / 1e9,
            100.0 * cpu_ns as f64 / used as f64
        );
    }
}
