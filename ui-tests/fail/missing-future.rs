fn main() {
    let _ = agentprof::profile!(agent = "x");
}
