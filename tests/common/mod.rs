//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Once;

/// Thread CPU time of the calling thread, ns: the reference the profiler's
/// figures are checked against.
pub fn thread_cpu_ns() -> u64 {
    agentprof::__private::read_thread_cpu_clock().expect("thread CPU clock")
}

/// Burns about `ns` of this thread's CPU time; returns what it used.
#[inline(never)]
pub fn burn_cpu_ns(ns: u64) -> u64 {
    let start = thread_cpu_ns();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    loop {
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        std::hint::black_box(x);
        let used = thread_cpu_ns() - start;
        if used >= ns {
            return used;
        }
    }
}

/// Keeps every finished invocation of a test run findable by id.
pub fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mut config = agentprof::Config::default();
        config.telemetry.profiling.enabled = true;
        config.telemetry.profiling.attribution.recent_invocations = 1_000_000;
        agentprof::init(&config).expect("valid test configuration");
    });
}

/// The finished invocation `id`.
pub fn finished(id: u64) -> agentprof::InvocationRecord {
    agentprof::invocation(id).unwrap_or_else(|| panic!("invocation {id} not in the ring"))
}

/// Id of the invocation running now.
pub fn current_id() -> u64 {
    agentprof::current_context()
        .invocation_id()
        .expect("inside an invocation")
}

/// `|a - b| / b`.
pub fn rel_diff(a: u64, b: u64) -> f64 {
    (a as f64 - b as f64).abs() / b as f64
}

/// `go tool pprof <args> <file>`'s output, or `None` when Go is absent and
/// not required. With `AGENTPROF_REQUIRE_GO_PPROF=1` (as CI sets it) a
/// missing Go is a failure, not a skip.
pub fn go_pprof(args: &[&str], file: &std::path::Path) -> Option<String> {
    let required = std::env::var("AGENTPROF_REQUIRE_GO_PPROF").is_ok_and(|v| v == "1");
    let output = std::process::Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("HOME", std::env::temp_dir())
        .output();
    match output {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success(),
                "go tool pprof {args:?} failed:\n{text}"
            );
            Some(text)
        }
        Err(e) if !required => {
            eprintln!(
                "skipping go tool pprof ({e}); set AGENTPROF_REQUIRE_GO_PPROF=1 to require it"
            );
            None
        }
        Err(e) => {
            panic!("go tool pprof is required (AGENTPROF_REQUIRE_GO_PPROF=1) but cannot run: {e}")
        }
    }
}

/// A directory of this test process under the temp dir, removed when
/// dropped (also when an assertion fails).
#[allow(dead_code)]
pub struct TempDir(pub std::path::PathBuf);

#[allow(dead_code)]
impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("agentprof-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes a path (file or directory tree) when dropped.
#[allow(dead_code)]
pub struct RemoveOnDrop(pub std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Polls `condition` every 5 ms until it holds; fails after 60 s naming
/// `what`.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition() {
        assert!(
            std::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
