//! Per-invocation CPU and wall accounting, measured against the thread CPU
//! clock.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use agentprof::{profiled, report::Outcome};
use common::*;

static BUSY_ID: AtomicU64 = AtomicU64::new(0);
static AWAIT_ID: AtomicU64 = AtomicU64::new(0);
static MIGRATING_ID: AtomicU64 = AtomicU64::new(0);
static PING_ID: AtomicU64 = AtomicU64::new(0);
static PARENT_ID: AtomicU64 = AtomicU64::new(0);
static PANIC_ID: AtomicU64 = AtomicU64::new(0);
static CANCEL_ID: AtomicU64 = AtomicU64::new(0);
static ASYNC_PANIC_ID: AtomicU64 = AtomicU64::new(0);
static FALLIBLE_ID: AtomicU64 = AtomicU64::new(0);
static FALLIBLE_ASYNC_ID: AtomicU64 = AtomicU64::new(0);
static FAN_OUT_ID: AtomicU64 = AtomicU64::new(0);
static REFERENCE_CPU: AtomicU64 = AtomicU64::new(0);

#[profiled(agent = "accounting")]
fn busy_then_sleep(cpu_ns: u64, sleep: Duration) {
    BUSY_ID.store(current_id(), Ordering::SeqCst);
    REFERENCE_CPU.store(burn_cpu_ns(cpu_ns), Ordering::SeqCst);
    std::thread::sleep(sleep);
}

#[test]
fn cpu_of_a_busy_loop_matches_its_thread_cpu_and_sleep_is_not_charged() {
    setup();
    busy_then_sleep(50_000_000, Duration::from_millis(100));
    let record = finished(BUSY_ID.load(Ordering::SeqCst));
    let reference = REFERENCE_CPU.load(Ordering::SeqCst);
    let cpu = record.cpu_ns.expect("CPU measured");
    assert!(
        rel_diff(cpu, reference) < 0.10,
        "charged {cpu} ns for a loop that used {reference} ns"
    );
    assert!(
        record.wall_ns >= 100_000_000 + reference / 2,
        "wall {} ns",
        record.wall_ns
    );
    assert!(
        cpu < record.wall_ns / 2,
        "the 100 ms sleep was charged as CPU: {cpu} ns"
    );
    assert_eq!(record.outcome, Outcome::Ok);
    assert_eq!(record.agent.as_deref(), Some("accounting"));
}

#[profiled]
async fn busy_then_await(cpu_ns: u64, pause: Duration) -> u64 {
    let id = current_id();
    let used = burn_cpu_ns(cpu_ns);
    tokio::time::sleep(pause).await;
    AWAIT_ID.store(id, Ordering::SeqCst);
    used + burn_cpu_ns(cpu_ns)
}

#[tokio::test(flavor = "current_thread")]
async fn awaiting_is_not_charged_as_cpu() {
    setup();
    let reference = busy_then_await(20_000_000, Duration::from_millis(150)).await;
    let record = finished(AWAIT_ID.load(Ordering::SeqCst));
    let cpu = record.cpu_ns.unwrap();
    assert!(
        rel_diff(cpu, reference) < 0.10,
        "charged {cpu} ns, loops used {reference} ns"
    );
    assert!(record.wall_ns >= 150_000_000);
    assert!(record.polls >= 2, "polls {}", record.polls);
    assert_eq!(
        record.agent, None,
        "no agent named and no caller: absent, not invented"
    );
}

/// Returns `Pending` once, so the caller can move the future between polls.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }
}

#[profiled(agent = "migrating")]
async fn migrating(cpu_ns: u64) -> (std::thread::ThreadId, u64, std::thread::ThreadId, u64) {
    MIGRATING_ID.store(current_id(), Ordering::SeqCst);
    let first = std::thread::current().id();
    let on_first = burn_cpu_ns(cpu_ns);
    YieldOnce(false).await;
    let second = std::thread::current().id();
    let on_second = burn_cpu_ns(cpu_ns);
    (first, on_first, second, on_second)
}

fn poll_once<F: std::future::Future + Unpin>(future: &mut F) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(future).poll(&mut cx)
}

#[test]
fn an_invocation_polled_on_two_threads_is_charged_for_both() {
    setup();
    let mut future = Box::pin(migrating(30_000_000));
    let mut future = std::thread::spawn(move || {
        assert!(poll_once(&mut future).is_pending());
        future
    })
    .join()
    .unwrap();
    let (first, a, second, b) = std::thread::spawn(move || match poll_once(&mut future) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("second poll completes"),
    })
    .join()
    .unwrap();
    assert_ne!(first, second);
    let record = finished(MIGRATING_ID.load(Ordering::SeqCst));
    let cpu = record.cpu_ns.unwrap();
    assert_eq!(record.polls, 2);
    assert!(
        cpu >= a + b,
        "charged {cpu} ns; the two threads used {a} + {b} ns"
    );
    assert!(
        rel_diff(cpu, a + b) < 0.10,
        "charged {cpu} ns; the two threads used {a} + {b} ns"
    );
}

#[test]
fn a_task_woken_from_either_tokio_worker_is_charged_for_every_poll() {
    setup();
    // Two tasks hand a token back and forth on a 2-worker runtime, so the
    // measured one is resumed on whichever worker woke it. Where it runs is
    // up to tokio (the deterministic move is the test above); what is
    // asserted is that every poll's CPU reaches the invocation.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let used = runtime.block_on(async {
        let (to_echo, mut echo_rx) = tokio::sync::mpsc::channel::<()>(1);
        let (to_main, main_rx) = tokio::sync::mpsc::channel::<()>(1);
        let echo = tokio::spawn(async move {
            while echo_rx.recv().await.is_some() {
                burn_cpu_ns(1_000_000);
                if to_main.send(()).await.is_err() {
                    break;
                }
            }
        });
        let used = tokio::spawn(ping_pong(to_echo, main_rx)).await.unwrap();
        echo.await.unwrap();
        used
    });
    let record = finished(PING_ID.load(Ordering::SeqCst));
    let cpu = record.cpu_ns.unwrap();
    assert!(record.polls >= 20, "polls {}", record.polls);
    assert!(
        rel_diff(cpu, used) < 0.10,
        "charged {cpu} ns; polls used {used} ns"
    );
}

#[profiled(agent = "migrating")]
async fn ping_pong(
    to_echo: tokio::sync::mpsc::Sender<()>,
    mut from_echo: tokio::sync::mpsc::Receiver<()>,
) -> u64 {
    PING_ID.store(current_id(), Ordering::SeqCst);
    let mut used = 0;
    for _ in 0..20 {
        used += burn_cpu_ns(2_000_000);
        to_echo.send(()).await.unwrap();
        from_echo.recv().await.unwrap();
    }
    used
}

#[profiled(agent = "nesting")]
fn parent(own_ns: u64, child_ns: u64) {
    PARENT_ID.store(current_id(), Ordering::SeqCst);
    burn_cpu_ns(own_ns);
    child(child_ns);
    child(child_ns);
}

#[profiled]
fn child(ns: u64) {
    burn_cpu_ns(ns);
}

#[test]
fn self_plus_children_is_total() {
    setup();
    parent(20_000_000, 15_000_000);
    let p = finished(PARENT_ID.load(Ordering::SeqCst));
    let children: Vec<_> = agentprof::report::recent_invocations()
        .into_iter()
        .filter(|r| r.parent_id == Some(p.id))
        .collect();
    assert_eq!(children.len(), 2);
    for c in &children {
        assert_eq!(
            c.agent.as_deref(),
            Some("nesting"),
            "a callee without an agent inherits its caller's"
        );
    }
    let total = p.cpu_ns.unwrap();
    let own = p.self_cpu_ns.unwrap();
    let children_cpu: u64 = children.iter().map(|c| c.cpu_ns.unwrap()).sum();
    assert!(own <= total);
    assert!(
        rel_diff(own + children_cpu, total) < 0.05,
        "self {own} + children {children_cpu} vs total {total}"
    );
    assert!(rel_diff(own, 20_000_000) < 0.10, "self {own}");
    assert!(p.self_wall_ns <= p.wall_ns);
}

#[profiled(agent = "outcomes")]
fn panics_inside() {
    PANIC_ID.store(current_id(), Ordering::SeqCst);
    panic!("deliberate");
}

#[test]
fn panic_is_recorded_and_the_slot_restored() {
    setup();
    assert!(agentprof::propagation::current_context().is_empty());
    let caught = std::panic::catch_unwind(panics_inside);
    assert!(caught.is_err());
    assert!(
        agentprof::propagation::current_context().is_empty(),
        "slot restored after unwinding"
    );
    assert_eq!(
        finished(PANIC_ID.load(Ordering::SeqCst)).outcome,
        Outcome::Panicked
    );
}

#[profiled(agent = "outcomes")]
async fn never_finishes() {
    CANCEL_ID.store(current_id(), Ordering::SeqCst);
    std::future::pending::<()>().await;
}

#[profiled(agent = "outcomes")]
async fn panics_in_poll() {
    ASYNC_PANIC_ID.store(current_id(), Ordering::SeqCst);
    tokio::task::yield_now().await;
    panic!("deliberate");
}

#[tokio::test(flavor = "current_thread")]
async fn cancellation_and_async_panics_are_recorded() {
    setup();
    let timed_out = tokio::time::timeout(Duration::from_millis(20), never_finishes()).await;
    assert!(timed_out.is_err());
    assert_eq!(
        finished(CANCEL_ID.load(Ordering::SeqCst)).outcome,
        Outcome::Cancelled
    );
    assert!(agentprof::propagation::current_context().is_empty());

    let joined = tokio::spawn(panics_in_poll()).await;
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(
        finished(ASYNC_PANIC_ID.load(Ordering::SeqCst)).outcome,
        Outcome::Panicked
    );
}

#[derive(Debug)]
struct Refused;

#[profiled(agent = "outcomes")]
fn fallible(fail: bool) -> Result<u32, Refused> {
    FALLIBLE_ID.store(current_id(), Ordering::SeqCst);
    let value: u32 = if fail { Err(Refused)? } else { 7 };
    Ok(value)
}

#[profiled(agent = "outcomes")]
async fn fallible_async(fail: bool) -> std::result::Result<u32, Refused> {
    FALLIBLE_ASYNC_ID.store(current_id(), Ordering::SeqCst);
    if fail {
        return Err(Refused);
    }
    Ok(1)
}

#[tokio::test(flavor = "current_thread")]
async fn err_results_are_error_outcomes() {
    setup();
    assert!(fallible(true).is_err());
    assert_eq!(
        finished(FALLIBLE_ID.load(Ordering::SeqCst)).outcome,
        Outcome::Error
    );
    assert_eq!(fallible(false).unwrap(), 7);
    assert_eq!(
        finished(FALLIBLE_ID.load(Ordering::SeqCst)).outcome,
        Outcome::Ok
    );
    assert!(fallible_async(true).await.is_err());
    assert_eq!(
        finished(FALLIBLE_ASYNC_ID.load(Ordering::SeqCst)).outcome,
        Outcome::Error
    );
}

#[profiled(agent = "counting")]
fn counted(x: u64) -> u64 {
    x.wrapping_mul(3)
}

#[test]
fn n_threads_by_m_calls_give_exact_counts() {
    setup();
    const THREADS: usize = 8;
    const CALLS: usize = 5_000;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (0..CALLS)
                    .map(|i| counted((t * CALLS + i) as u64))
                    .sum::<u64>()
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let report = agentprof::report();
    let row = report
        .functions_named("::counted")
        .next()
        .expect("counted ran");
    assert_eq!(row.calls, (THREADS * CALLS) as u64);
    assert_eq!(row.polls, (THREADS * CALLS) as u64);
    assert_eq!(row.active, 0);
    assert!(row.wall_ns_p50 <= row.wall_ns_p99 && row.wall_ns_p99 <= row.wall_ns_max);
}

#[profiled(agent = "propagation")]
async fn fan_out(cpu_ns: u64) -> u64 {
    FAN_OUT_ID.store(current_id(), Ordering::SeqCst);
    let task = agentprof::spawn(async move { burn_cpu_ns(cpu_ns) });
    let blocking = agentprof::spawn_blocking(move || burn_cpu_ns(cpu_ns));
    let thread = agentprof::spawn_thread(move || burn_cpu_ns(cpu_ns));
    task.await.unwrap() + blocking.await.unwrap() + thread.join().unwrap()
}

#[test]
fn work_spawned_under_an_invocation_is_charged_to_it() {
    setup();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let spawned = runtime.block_on(fan_out(20_000_000));
    let record = finished(FAN_OUT_ID.load(Ordering::SeqCst));
    let cpu = record.cpu_ns.unwrap();
    assert!(
        cpu >= spawned,
        "charged {cpu} ns; spawned work used {spawned} ns"
    );
    assert!(
        rel_diff(cpu, spawned) < 0.10,
        "charged {cpu} ns; spawned work used {spawned} ns"
    );
    assert_eq!(
        record.self_cpu_ns, record.cpu_ns,
        "propagated work is the invocation's own"
    );
}
