//! An instrumented library.

#[agentprof::profiled(agent = "library")]
pub fn chunks(n: i32) -> Vec<Vec<i32>> {
    (0..n).map(|i| vec![i; 2]).collect()
}
