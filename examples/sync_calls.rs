//! Calls a `#[profiled]` fn (or a `#[tracing::instrument]` one) N times,
//! for instruction counts under callgrind: the per-call figure is the
//! difference between N calls and 0 calls, divided by N.
//!
//! ```text
//! cargo build --release --example sync_calls
//! for n in 0 20000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/sync_calls profiled $n 2>&1 | grep Collected
//! done
//! ```
//!
//! The first argument is `profiled` (no subscriber), `profiled-registry`
//! or `instrument-registry` (a `tracing_subscriber::Registry` as default),
//! `nested` (a `#[profiled]` fn calling another: two calls, one callee
//! tree, per round) or `nested-no-exemplars` (the same with
//! `exemplars_per_function = 0`).

use std::hint::black_box;

#[agentprof::profiled(agent = "calls")]
#[inline(never)]
fn profiled(x: u64) -> u64 {
    black_box(x) + 1
}

#[agentprof::profiled(agent = "calls")]
#[inline(never)]
fn caller(x: u64) -> u64 {
    profiled(black_box(x)) + 1
}

#[tracing::instrument(skip_all)]
#[inline(never)]
fn instrumented(x: u64) -> u64 {
    black_box(x) + 1
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: sync_calls profiled|profiled-registry|instrument-registry|nested|\
                 nested-no-exemplars CALLS";
    let mode = args.next().expect(usage);
    let calls: u64 = args.next().and_then(|n| n.parse().ok()).expect(usage);
    let call: fn(u64) -> u64 = match mode.as_str() {
        "profiled" | "profiled-registry" => profiled,
        "instrument-registry" => instrumented,
        "nested" | "nested-no-exemplars" => caller,
        _ => panic!("{usage}"),
    };
    if mode == "nested-no-exemplars" {
        let mut config = agentprof::Config::default();
        config.telemetry.profiling.enabled = true;
        config
            .telemetry
            .profiling
            .attribution
            .exemplars_per_function = 0;
        agentprof::init(&config).expect("a valid configuration");
    }
    let run = || {
        // Both callsites registered and their first-call work done, so that
        // 0 calls and N calls differ only by the calls.
        black_box(caller(0) + instrumented(0));
        black_box((0..calls).map(|i| call(black_box(i))).sum::<u64>());
    };
    if mode.ends_with("-registry") {
        tracing::subscriber::with_default(tracing_subscriber::registry(), run);
    } else {
        run();
    }
}
