#[agentprof::profiled(agent = "planner", agent = "writer")]
fn plan() {}

fn main() {}
