//! Invocation CPU against the kernel's thread CPU clock, with whichever
//! clock this run uses (CI runs the file again with
//! `AGENTPROF_CPU_CLOCK=syscall`): threads preempting each other on one
//! CPU, a sleep inside an invocation, a migration between CPUs inside one.

mod common;

use std::time::{Duration, Instant};

use agentprof::profiled;
use common::{burn_cpu_ns, setup, thread_cpu_ns};

fn pin_to(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
    // sched_setaffinity only touch it and the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

fn current_cpu() -> i32 {
    // SAFETY: sched_getcpu has no preconditions.
    unsafe { libc::sched_getcpu() }
}

fn cpu_of(suffix: &str) -> (u64, u64) {
    let report = agentprof::report();
    let row = report
        .functions_named(suffix)
        .next()
        .expect("the function ran");
    (row.cpu_ns.expect("CPU measured"), row.calls)
}

macro_rules! worker {
    ($name:ident) => {
        #[profiled(agent = "accuracy")]
        fn $name(ns: u64) -> u64 {
            burn_cpu_ns(ns)
        }
    };
}
/// A function that burns the CPU it is asked for.
type Worker = fn(u64) -> u64;

worker!(preempted_a);
worker!(preempted_b);
worker!(preempted_c);

#[test]
fn threads_preempting_each_other_are_charged_their_own_cpu() {
    setup();
    let workers: [(&str, Worker); 3] = [
        ("::preempted_a", preempted_a),
        ("::preempted_b", preempted_b),
        ("::preempted_c", preempted_c),
    ];
    let handles: Vec<_> = workers
        .iter()
        .enumerate()
        .map(|(i, &(_, work))| {
            std::thread::spawn(move || {
                assert!(pin_to(0), "pin to CPU 0");
                let (wall, cpu) = (Instant::now(), thread_cpu_ns());
                let mut n = 0u64;
                // The truth lies between the thread clock read inside each
                // body (the invocation's own edges are outside it) and the
                // clock read around each call (the edges inside it); the
                // loop around the calls is nobody's invocation, and on a
                // slow host it is more than a percent of the thread's CPU.
                let (mut inside, mut around) = (0, 0);
                while wall.elapsed() < Duration::from_millis(1_500) {
                    // 50 to 500 µs per invocation.
                    let before = thread_cpu_ns();
                    inside += work(50_000 + (n * 7919 + i as u64 * 104_729) % 450_000);
                    around += thread_cpu_ns() - before;
                    n += 1;
                }
                ((inside, around), thread_cpu_ns() - cpu, wall.elapsed())
            })
        })
        .collect();
    let truths: Vec<((u64, u64), u64, Duration)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    for ((suffix, _), ((inside, around), thread_total, wall)) in workers.iter().zip(truths) {
        // Three busy threads on one CPU: each ran about a third of the time,
        // so it was switched out and back in many times.
        assert!(
            (thread_total as f64) < wall.as_nanos() as f64 * 0.6,
            "{suffix}: {thread_total} ns CPU in {wall:?}: the threads did not share the CPU"
        );
        let (measured, calls) = cpu_of(suffix);
        // Within the bracket, give or take the two clocks' agreement (a few
        // parts per million) and their resolution per call.
        let slack = around / 1000 + calls;
        assert!(
            measured + slack >= inside && measured <= around + slack,
            "{suffix}: invocations {measured} ns, thread clock {inside} ns inside the bodies and \
             {around} ns around the calls ({calls} calls)"
        );
    }
}

#[profiled(agent = "accuracy")]
fn burns_then_sleeps() -> u64 {
    let used = burn_cpu_ns(2_000_000);
    std::thread::sleep(Duration::from_millis(100));
    used
}

#[test]
fn a_sleep_inside_an_invocation_is_not_charged() {
    setup();
    let used = burns_then_sleeps();
    let (measured, _) = cpu_of("::burns_then_sleeps");
    assert!(measured >= used, "{measured} ns charged, {used} ns burned");
    assert!(
        measured < used + 1_000_000,
        "{measured} ns charged for {used} ns of work and a 100 ms sleep"
    );
}

#[profiled(agent = "accuracy")]
fn migrates(cpus: [usize; 2]) -> (i32, i32, u64) {
    let start = thread_cpu_ns();
    assert!(pin_to(cpus[0]));
    burn_cpu_ns(20_000_000);
    let first = current_cpu();
    assert!(pin_to(cpus[1]));
    burn_cpu_ns(20_000_000);
    let second = current_cpu();
    (first, second, thread_cpu_ns() - start)
}

#[test]
fn a_thread_that_migrates_mid_invocation_is_charged_correctly() {
    setup();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        cpus >= 2,
        "this test needs two CPUs; the machine has {cpus}"
    );
    let (first, second, truth) = std::thread::spawn(|| migrates([0, 1])).join().unwrap();
    assert_eq!(
        (first, second),
        (0, 1),
        "the thread ran on CPU 0, then on 1"
    );
    let (measured, _) = cpu_of("::migrates");
    let error = (measured as f64 - truth as f64).abs() / truth as f64;
    assert!(
        error < 0.01,
        "migrated invocation {measured} ns vs thread clock {truth} ns"
    );
}

#[test]
fn the_clock_in_use_is_the_one_asked_for() {
    setup();
    // Any instrumented call decides the clock; the report names it.
    burns_then_sleeps_not();
    let clock = agentprof::report().cpu_clock;
    if std::env::var("AGENTPROF_CPU_CLOCK").is_ok_and(|v| v == "syscall") {
        assert_eq!(clock, Some(agentprof::report::CpuClock::Syscall));
    } else if std::env::var_os("AGENTPROF_REQUIRE_PERF_CLOCK").is_some() {
        assert_eq!(clock, Some(agentprof::report::CpuClock::PerfMmap));
    } else {
        assert!(clock.is_some(), "the report names the clock");
    }
}

#[profiled(agent = "accuracy")]
fn burns_then_sleeps_not() -> u64 {
    burn_cpu_ns(10_000)
}
