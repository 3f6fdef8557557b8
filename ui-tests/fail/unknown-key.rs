#[agentprof::profiled(agnet = "planner")]
fn plan() {}

fn main() {}
