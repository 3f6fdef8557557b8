//! A known call chain, profiled: `chain_outer -> chain_middle -> chain_inner`.
//! Writes `cpu.pb.gz`, `flamegraph.svg` and `folded.txt` into the directory
//! given as the first argument. The test suite builds this in release mode
//! to check unwinding on default release builds.

use std::hint::black_box;

#[inline(never)]
fn chain_inner(rounds: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(i);
    }
    black_box(x)
}

#[inline(never)]
fn chain_middle(rounds: u64) -> u64 {
    black_box(chain_inner(rounds)) ^ 2
}

#[inline(never)]
fn chain_outer(rounds: u64) -> u64 {
    black_box(chain_middle(rounds)) ^ 1
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "profiles".to_owned()),
    );
    std::fs::create_dir_all(&out)?;
    let mut profiler = agentprof::cpu::CpuProfiler::with_frequency(1000)?;
    profiler.start()?;
    let start = std::time::Instant::now();
    let mut x = 0;
    while start.elapsed() < std::time::Duration::from_millis(1500) {
        x ^= chain_outer(black_box(1_000_000));
    }
    let report = profiler.stop_and_collect()?;
    std::fs::write(out.join("cpu.pb.gz"), report.pprof_gzip())?;
    std::fs::write(out.join("flamegraph.svg"), report.flamegraph_svg()?)?;
    std::fs::write(out.join("folded.txt"), report.folded())?;
    println!("{x} {} samples", report.sample_count());
    Ok(())
}
