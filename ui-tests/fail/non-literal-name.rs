#[agentprof::profiled(name = concat!("a", "b"))]
fn plan() {}

fn main() {}
