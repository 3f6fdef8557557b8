#[agentprof::profiled(span = "no")]
fn plan() {}

fn main() {}
