#[agentprof::profiled]
struct Planner;

fn main() {}
