const AGENT: &str = "planner";

#[agentprof::profiled(agent = AGENT)]
fn plan() {}

fn main() {}
