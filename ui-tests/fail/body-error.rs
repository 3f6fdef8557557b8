#[agentprof::profiled]
fn plan() -> u32 {
    let steps: u32 = "three";
    steps
}

#[agentprof::profiled]
async fn write() -> Result<u32, String> {
    Ok(undefined_helper())
}

fn main() {}
