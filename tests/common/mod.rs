//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Once;

/// Thread CPU time of the calling thread, ns: the reference the profiler's
/// figures are checked against.
pub fn thread_cpu_ns() -> u64 {
    agentprof::__test_hooks::read_thread_cpu_clock().expect("thread CPU clock")
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
pub fn finished(id: u64) -> agentprof::report::InvocationRecord {
    agentprof::report::invocation(id).unwrap_or_else(|| panic!("invocation {id} not in the ring"))
}

/// Id of the invocation running now.
pub fn current_id() -> u64 {
    agentprof::propagation::current_context()
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
pub fn go_pprof(args: &[&str], source: impl AsRef<std::ffi::OsStr>) -> Option<String> {
    let required = std::env::var("AGENTPROF_REQUIRE_GO_PPROF").is_ok_and(|v| v == "1");
    // Where pprof keeps a copy of what it fetched over HTTP.
    let fetched = TempDir::new(&format!(
        "pprof-fetched-{}",
        FETCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let output = std::process::Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(source)
        .env("HOME", std::env::temp_dir())
        .env("PPROF_TMPDIR", &fetched.0)
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

static FETCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Headless Chromium, or `None` when it is absent and not required
/// (`AGENTPROF_REQUIRE_CHROMIUM=1`, as CI sets it, makes its absence a
/// failure).
pub fn chromium() -> Option<std::path::PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let path = std::process::Command::new("which")
                .arg(name)
                .output()
                .ok()?;
            path.status
                .success()
                .then(|| std::path::PathBuf::from(String::from_utf8_lossy(&path.stdout).trim()))
        });
    if found.is_none() {
        assert!(
            std::env::var("AGENTPROF_REQUIRE_CHROMIUM").is_err(),
            "Chromium is required (AGENTPROF_REQUIRE_CHROMIUM) but not installed"
        );
        eprintln!("chromium not installed: browser checks skipped");
    }
    found
}

/// Runs headless Chromium on `url` with `args`, with `profile` as its
/// user data directory and every host but loopback unresolvable (so that
/// a page fetching anything from the network logs an error): (stdout,
/// stderr).
pub fn run_chromium(
    browser: &std::path::Path,
    profile: &std::path::Path,
    url: &str,
    args: &[&str],
) -> (String, String) {
    let output = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
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

/// One HTTP/1.1 request as a test server reads it.
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Names in lowercase.
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Reads one request (its body by `Content-Length`) from a test server's
/// connection; `None` on anything malformed or cut short.
pub fn read_http_request(stream: &std::net::TcpStream) -> Option<HttpRequest> {
    use std::io::{BufRead, Read};
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = std::collections::BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(Some(0), |l| l.parse().ok())?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(HttpRequest {
        method,
        path,
        headers,
        body,
    })
}
