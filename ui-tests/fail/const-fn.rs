#[agentprof::profiled]
const fn plan() -> u32 {
    1
}

fn main() {}
