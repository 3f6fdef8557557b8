trait Tool {
    #[agentprof::profiled]
    fn call(&self);
}

fn main() {}
