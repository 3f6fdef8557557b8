//! Per-call cost of `#[profiled]`, against the floor it is built on.
//!
//! ```text
//! cargo bench --bench invocation
//! ```
//!
//! One run measures: the thread-CPU-clock read and `Instant::now()` (the
//! floor); a trivial sync fn bare, under `#[profiled]` with recording on and
//! off, and under `#[tracing::instrument]` with a `tracing_subscriber`
//! registry; an async fn's per-poll cost and the cost of an async call that
//! suspends once (it is then visible as running); and the same sync call on one and
//! on two threads at once (timed by the wall clock and by each thread's CPU
//! clock). It ends with a summary of overheads and ratios
//! computed from this run's estimates.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::Criterion;

mod common;

const GROUP: &str = "invocation";

#[inline(never)]
fn bare(x: u64) -> u64 {
    x.wrapping_mul(31).wrapping_add(7)
}

/// A control for the 2-thread figures: about as long as a profiled call,
/// writing a thread's own records (192 bytes each, as a finished call is
/// written into its thread's batch) and sharing nothing with the other
/// thread. What it loses on two threads is the machine's, not agentprof's.
#[inline(never)]
fn unshared_work(x: u64) -> u64 {
    thread_local! {
        static RECORDS: std::cell::RefCell<Vec<[u64; 24]>> =
            std::cell::RefCell::new(vec![[0; 24]; 64]);
    }
    RECORDS.with_borrow_mut(|records| {
        let mut acc = x;
        for k in 0..4 {
            let record = &mut records[((x * 4 + k) % 64) as usize];
            for word in record.iter_mut() {
                acc = acc.rotate_left(7).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ *word;
                *word = acc;
            }
        }
        acc
    })
}

#[agentprof::profiled(agent = "bench")]
#[inline(never)]
fn profiled(x: u64) -> u64 {
    x.wrapping_mul(31).wrapping_add(7)
}

#[tracing::instrument]
#[inline(never)]
fn instrumented(x: u64) -> u64 {
    x.wrapping_mul(31).wrapping_add(7)
}

/// Returns `Pending` `n` times, then `Ready`: `n + 1` polls.
struct Yields(u32);

impl Future for Yields {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        Poll::Pending
    }
}

const POLLS: u32 = 100;

async fn bare_async() {
    Yields(POLLS - 1).await
}

#[agentprof::profiled(agent = "bench")]
async fn profiled_async() {
    Yields(POLLS - 1).await
}

async fn bare_await_once() {
    Yields(1).await
}

/// Suspends once: it joins the registry of running invocations at its
/// first `Pending` and leaves it when it finishes.
#[agentprof::profiled(agent = "bench")]
async fn profiled_await_once() {
    Yields(1).await
}

fn drive<F: Future>(future: F) {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    while future.as_mut().poll(&mut cx).is_pending() {}
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group(GROUP);
    g.bench_function("thread_cpu_clock_read", |b| {
        b.iter(|| black_box(agentprof::__test_hooks::read_thread_cpu_clock()))
    });
    let fast = agentprof::__test_hooks::set_fast_cpu_clock(true);
    g.bench_function("thread_cpu_clock_read_user_space", |b| {
        b.iter(|| black_box(agentprof::__test_hooks::read_thread_cpu_clock_fast()))
    });
    g.bench_function("instant_now", |b| b.iter(|| black_box(Instant::now())));
    g.bench_function("sync_bare", |b| b.iter(|| bare(black_box(1))));
    agentprof::set_enabled(true);
    g.bench_function("sync_profiled_on", |b| b.iter(|| profiled(black_box(1))));
    agentprof::set_enabled(false);
    g.bench_function("sync_profiled_off", |b| b.iter(|| profiled(black_box(1))));
    agentprof::set_enabled(true);
    let registry = tracing_subscriber::registry();
    tracing::subscriber::with_default(registry, || {
        g.bench_function("sync_tracing_instrument_registry", |b| {
            b.iter(|| instrumented(black_box(1)))
        });
        g.bench_function("sync_profiled_on_registry", |b| {
            b.iter(|| profiled(black_box(1)))
        });
    });
    // One fmt layer at INFO writing nowhere: the spans' fields are
    // formatted as a production subscriber would.
    let fmt = || {
        use tracing_subscriber::layer::SubscriberExt;
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
            .with(tracing_subscriber::filter::LevelFilter::INFO)
    };
    tracing::subscriber::with_default(fmt(), || {
        g.bench_function("sync_tracing_instrument_fmt", |b| {
            b.iter(|| instrumented(black_box(1)))
        });
        g.bench_function("sync_profiled_on_fmt", |b| {
            b.iter(|| profiled(black_box(1)))
        });
    });
    g.bench_function("async_bare_100_polls", |b| b.iter(|| drive(bare_async())));
    g.bench_function("async_profiled_100_polls", |b| {
        b.iter(|| drive(profiled_async()))
    });
    g.bench_function("async_bare_await_once", |b| {
        b.iter(|| drive(bare_await_once()))
    });
    g.bench_function("async_profiled_await_once", |b| {
        b.iter(|| drive(profiled_await_once()))
    });
    // The same two with the system-call clock (the fallback).
    agentprof::__test_hooks::set_fast_cpu_clock(false);
    g.bench_function("sync_profiled_on_syscall_clock", |b| {
        b.iter(|| profiled(black_box(1)))
    });
    g.bench_function("async_profiled_100_polls_syscall_clock", |b| {
        b.iter(|| drive(profiled_async()))
    });
    agentprof::__test_hooks::set_fast_cpu_clock(fast);
    // One and two threads at once, timed by the wall clock and by each
    // thread's CPU clock.
    type OnThreads = fn(usize, u64, fn(u64, usize)) -> Duration;
    let call: fn(u64, usize) = |i, _| {
        black_box(profiled(black_box(i)));
    };
    for (name, threads, run) in [
        ("sync_profiled_1_thread", 1, common::on_threads as OnThreads),
        ("sync_profiled_2_threads", 2, common::on_threads),
        ("sync_profiled_1_thread_cpu_time", 1, common::on_threads_cpu),
        (
            "sync_profiled_2_threads_cpu_time",
            2,
            common::on_threads_cpu,
        ),
    ] {
        g.bench_function(name, |b| b.iter_custom(|iters| run(threads, iters, call)));
    }
    for threads in [1, 2] {
        g.bench_function(format!("unshared_work_{threads}_threads_cpu_time"), |b| {
            b.iter_custom(|iters| {
                common::on_threads_cpu(threads, iters, |i, _| {
                    black_box(unshared_work(black_box(i)));
                })
            })
        });
    }
    g.bench_function("sync_bare_2_threads", |b| {
        b.iter_custom(|iters| {
            common::on_threads(2, iters, |i, _| {
                black_box(bare(black_box(i)));
            })
        })
    });
    g.finish();
}

fn summary() {
    let m = |name: &str| common::mean_ns(GROUP, name);
    let clock = m("thread_cpu_clock_read");
    let fast_clock = m("thread_cpu_clock_read_user_space");
    let bare = m("sync_bare");
    let on = m("sync_profiled_on") - bare;
    let on_syscall = m("sync_profiled_on_syscall_clock") - bare;
    let off = m("sync_profiled_off") - bare;
    let tracing = m("sync_tracing_instrument_registry") - bare;
    let per_poll = (m("async_profiled_100_polls") - m("async_bare_100_polls")) / POLLS as f64;
    let per_poll_syscall =
        (m("async_profiled_100_polls_syscall_clock") - m("async_bare_100_polls")) / POLLS as f64;
    let one = m("sync_profiled_1_thread");
    let two = m("sync_profiled_2_threads");
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("\nsummary (means of this run, ns per call)");
    println!("  thread CPU clock, system call        {clock:8.1}");
    println!("  thread CPU clock, user space         {fast_clock:8.1}");
    println!(
        "  Instant::now                         {:8.1}",
        m("instant_now")
    );
    println!(
        "  #[profiled] off, overhead            {off:8.1}   target <= 2: {}",
        met(off <= 2.0)
    );
    println!(
        "  #[profiled] on, overhead             {on:8.1}   target <= 60: {} (2 clock reads {:.1}, the rest {:.1})",
        met(on <= 60.0),
        2.0 * fast_clock,
        on - 2.0 * fast_clock
    );
    println!(
        "  #[profiled] on, system-call clock    {on_syscall:8.1}   (fallback; 2 reads = {:.1})",
        2.0 * clock
    );
    println!("  #[tracing::instrument] overhead      {tracing:8.1}   (registry subscriber)");
    let on_registry = m("sync_profiled_on_registry") - bare;
    println!(
        "  #[profiled] on, registry             {on_registry:8.1}   = {:.2}x #[instrument], target <= 1.0: {}",
        on_registry / tracing,
        met(on_registry <= tracing)
    );
    let tracing_fmt = m("sync_tracing_instrument_fmt") - bare;
    let on_fmt = m("sync_profiled_on_fmt") - bare;
    println!("  #[tracing::instrument], fmt layer    {tracing_fmt:8.1}");
    println!(
        "  #[profiled] on, fmt layer            {on_fmt:8.1}   = {:.2}x #[instrument], target <= 1.0: {}",
        on_fmt / tracing_fmt,
        met(on_fmt <= tracing_fmt)
    );
    println!(
        "  async, overhead per poll             {per_poll:8.1}   target <= 30: {}",
        met(per_poll <= 30.0)
    );
    println!("  async per poll, system-call clock    {per_poll_syscall:8.1}   (fallback)");
    println!(
        "  async call that awaits once          {:8.1}   (2 polls, joins and leaves the running registry)",
        m("async_profiled_await_once") - m("async_bare_await_once")
    );
    println!(
        "  2 threads / 1 thread per call        {:8.2}x  target <= 1.1x: {} ({two:.1} / {one:.1})",
        two / one,
        met(two / one <= 1.1)
    );
    let (one_cpu, two_cpu) = (
        m("sync_profiled_1_thread_cpu_time"),
        m("sync_profiled_2_threads_cpu_time"),
    );
    println!(
        "  same, thread CPU time per call       {:8.2}x  target <= 1.1x: {} ({two_cpu:.1} / {one_cpu:.1})",
        two_cpu / one_cpu,
        met(two_cpu / one_cpu <= 1.1)
    );
    let (one_control, two_control) = (
        m("unshared_work_1_threads_cpu_time"),
        m("unshared_work_2_threads_cpu_time"),
    );
    println!(
        "  control sharing nothing, CPU time    {:8.2}x  (this machine's own 2-thread cost: {two_control:.1} / {one_control:.1})",
        two_control / one_control,
    );
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    benches(&mut c);
    c.final_summary();
    summary();
}
