#[agentprof::profiled]
extern "C" fn plan() {}

fn main() {}
