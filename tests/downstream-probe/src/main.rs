//! Code that merely uses the instrumented library; its inference must not
//! depend on what agentprof links.

fn main() {
    let chunks = downstream_probe::chunks(3);
    let v = chunks[2].clone();
    assert!(v != Vec::new());
    assert_eq!(4, chunks[2].iter().sum());
    let report = agentprof::report();
    println!(
        "calls={} json={}",
        report.functions_named("::chunks").map(|r| r.calls).sum::<u64>(),
        report.to_json().map(|j| j.len()).unwrap_or(0) > 0
    );
}
