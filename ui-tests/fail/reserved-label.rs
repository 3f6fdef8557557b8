#[agentprof::profiled(labels(agent = 1))]
fn plan() {}

fn main() {}
