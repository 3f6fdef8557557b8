//! The edges where a profiler can hurt its host: stopping with signals
//! still pending, a host's own SIGPROF handler and `ITIMER_PROF`. Signal
//! dispositions are process-wide, so these run one at a time.
//!
//! The longest test is `#[ignore]`d for a quick local run; CI runs it with
//! `--include-ignored`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use agentprof::{cpu::CpuProfiler, cpu::TimerMode};

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

/// Runs the test `name` alone in a fresh process of this test binary, for
/// checks of process-wide figures or limits that other tests would
/// disturb. Returns true in that process (run the body), false in the
/// parent (after checking that the body passed there).
fn alone(name: &str) -> bool {
    if std::env::var("AGENTPROF_TORTURE_ALONE").as_deref() == Ok(name) {
        return true;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--include-ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("AGENTPROF_TORTURE_ALONE", name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} alone: {}\n{stdout}\n{stderr}",
        output.status
    );
    eprintln!("{stderr}");
    false
}

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

static HOST_CALLS: AtomicU64 = AtomicU64::new(0);

extern "C" fn host_handler(_: libc::c_int) {
    HOST_CALLS.fetch_add(1, SeqCst);
}

fn set_host_handler() {
    // SAFETY: a plain one-argument handler that only touches an atomic.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = host_handler as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGPROF, &action, std::ptr::null_mut()),
            0
        );
    }
}

fn current_handler() -> usize {
    // SAFETY: a null new action only queries.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        assert_eq!(
            libc::sigaction(libc::SIGPROF, std::ptr::null(), &mut current),
            0
        );
        current.sa_sigaction
    }
}

fn raise_sigprof() {
    // SAFETY: raise has no preconditions; a handler is installed.
    assert_eq!(unsafe { libc::raise(libc::SIGPROF) }, 0);
}

fn set_sigprof_blocked(blocked: bool) {
    // SAFETY: valid signal set on the stack.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPROF);
        let how = if blocked {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        assert_eq!(libc::pthread_sigmask(how, &set, std::ptr::null_mut()), 0);
    }
}

/// Starts and stops the profiler `rounds` times while a busy thread keeps
/// SIGPROF blocked during each session and unblocks it after the stop, so
/// the signals our timers raised for it arrive after sampling ended. With
/// the default disposition back in place, the first would kill the
/// process ("Profiling timer expired").
fn stop_start_with_pending_signals(rounds: u32, process_wide: bool) {
    // The host has the default disposition, whose action is to terminate.
    // SAFETY: SIG_DFL is a valid disposition.
    unsafe { libc::signal(libc::SIGPROF, libc::SIG_DFL) };
    agentprof::__test_hooks::force_process_timer(process_wide);
    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(AtomicU64::new(0));
    let unblocked = Arc::new(AtomicU64::new(0));
    let busy = {
        let (stop, phase, unblocked) = (stop.clone(), phase.clone(), unblocked.clone());
        std::thread::spawn(move || {
            let mut seen = 0;
            set_sigprof_blocked(true);
            while !stop.load(SeqCst) {
                let now = phase.load(SeqCst);
                if now != seen && now % 2 == 0 {
                    // The session ended: let its pending signals in.
                    set_sigprof_blocked(false);
                    set_sigprof_blocked(true);
                    unblocked.fetch_add(1, SeqCst);
                }
                seen = now;
                common::burn_cpu_ns(200_000);
            }
        })
    };
    for round in 0..rounds {
        let mut profiler = CpuProfiler::with_frequency(1000).unwrap();
        profiler.start().unwrap();
        let expected = if process_wide {
            TimerMode::ProcessWide
        } else {
            TimerMode::PerThread
        };
        assert_eq!(profiler.mode(), Some(expected));
        phase.store(2 * round as u64 + 1, SeqCst);
        common::burn_cpu_ns(2_000_000);
        profiler.stop_and_collect().unwrap();
        // A SIGPROF arriving now (of the stopped session, or anyone's) is
        // dropped, never the default action.
        assert_ne!(current_handler(), libc::SIG_DFL);
        raise_sigprof();
        phase.store(2 * round as u64 + 2, SeqCst);
        while unblocked.load(SeqCst) < round as u64 + 1 {
            std::thread::yield_now();
        }
    }
    stop.store(true, SeqCst);
    busy.join().unwrap();
    agentprof::__test_hooks::force_process_timer(false);
    assert_eq!(unblocked.load(SeqCst), rounds as u64);
}

#[test]
fn signals_pending_at_stop_never_kill_the_process() {
    let _serial = serial();
    stop_start_with_pending_signals(30, false);
    stop_start_with_pending_signals(30, true);
}

#[test]
#[ignore = "long (a thousand sessions per timer mode): CI runs it with --include-ignored"]
fn a_thousand_stops_with_pending_signals_in_both_timer_modes() {
    let _serial = serial();
    stop_start_with_pending_signals(1000, false);
    stop_start_with_pending_signals(1000, true);
}

/// Burns CPU until this thread has been sampled: a busy machine delivers
/// CPU timer signals late (the kernel checks CPU timers at its tick), but
/// CPU spent always brings one.
fn wait_for_a_sample() {
    let before = agentprof::__test_hooks::this_thread_sampled_cpu_ns();
    while agentprof::__test_hooks::this_thread_sampled_cpu_ns() == before {
        common::burn_cpu_ns(1_000_000);
    }
}

#[test]
fn a_host_handler_installed_before_start_keeps_getting_its_signals() {
    let _serial = serial();
    set_host_handler();
    let before = HOST_CALLS.load(SeqCst);
    let mut profiler = CpuProfiler::with_frequency(500).unwrap();
    profiler.start().unwrap();
    assert_ne!(current_handler(), host_handler as *const () as usize);
    raise_sigprof();
    assert_eq!(
        HOST_CALLS.load(SeqCst),
        before + 1,
        "chained while sampling"
    );
    common::burn_cpu_ns(40_000_000);
    wait_for_a_sample();
    let report = profiler.stop_and_collect().unwrap();
    assert!(report.sample_count() > 0, "our own signals were sampled");
    // Our timers' signals went to us only.
    assert_eq!(HOST_CALLS.load(SeqCst), before + 1);
    raise_sigprof();
    assert_eq!(HOST_CALLS.load(SeqCst), before + 2, "chained after stop");
}

#[test]
fn a_host_handler_installed_while_sampling_survives_stop() {
    let _serial = serial();
    let mut profiler = CpuProfiler::with_frequency(250).unwrap();
    profiler.start().unwrap();
    set_host_handler();
    profiler.stop_and_collect().unwrap();
    assert_eq!(current_handler(), host_handler as *const () as usize);
    let before = HOST_CALLS.load(SeqCst);
    raise_sigprof();
    assert_eq!(HOST_CALLS.load(SeqCst), before + 1);
    // A new session takes over again and passes the host's signals on.
    profiler.start().unwrap();
    raise_sigprof();
    assert_eq!(HOST_CALLS.load(SeqCst), before + 2);
    profiler.stop_and_collect().unwrap();
}

#[test]
fn the_hosts_itimer_prof_is_restored() {
    let _serial = serial();
    // A host timer far enough out that it never fires here.
    let host = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 100,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: 100,
            tv_usec: 0,
        },
    };
    // SAFETY: valid pointers.
    assert_eq!(
        unsafe { libc::setitimer(libc::ITIMER_PROF, &host, std::ptr::null_mut()) },
        0
    );
    agentprof::__test_hooks::force_process_timer(true);
    let mut profiler = CpuProfiler::with_frequency(250).unwrap();
    profiler.start().unwrap();
    agentprof::__test_hooks::force_process_timer(false);
    assert_eq!(profiler.mode(), Some(TimerMode::ProcessWide));
    // Samples arrive as the process spends CPU, however busy the machine:
    // burn until one did (a signal may be delivered late, never lost).
    let mut samples = 0;
    for _ in 0..500 {
        common::burn_cpu_ns(20_000_000);
        samples += profiler.cut_window().unwrap().sample_count();
        if samples > 0 {
            break;
        }
    }
    samples += profiler.stop_and_collect().unwrap().sample_count();
    assert!(samples > 0);
    // SAFETY: valid pointers.
    let mut now: libc::itimerval = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getitimer(libc::ITIMER_PROF, &mut now) }, 0);
    assert_eq!(now.it_interval.tv_sec, 100, "the host's interval is back");
    assert!(now.it_value.tv_sec > 90, "and its timer still runs");
    let off: libc::itimerval = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers.
    unsafe { libc::setitimer(libc::ITIMER_PROF, &off, std::ptr::null_mut()) };
}

mod secrets {
    //! Passwords, tokens, header values and credentials in URLs never show
    //! in `Debug`, serialized configuration, errors or logs.

    const SECRETS: [&str; 4] = ["pw-s3cr3t", "tok-s3cr3t", "hdr-s3cr3t", "url-s3cr3t"];

    fn assert_clean(what: &str, text: &str) {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{what} shows {secret}: {text}");
        }
    }

    fn config_with_secrets() -> agentprof::Config {
        let mut config = agentprof::Config::default();
        let e = &mut config.telemetry.profiling.exporter;
        e.pyroscope_endpoint = Some("https://agent:url-s3cr3t@pyro.example:4040".to_owned());
        e.basic_auth_user = Some("agent".to_owned());
        e.basic_auth_password = Some("pw-s3cr3t".into());
        e.bearer_token = Some("tok-s3cr3t".into());
        e.headers
            .insert("X-Api-Key".to_owned(), "hdr-s3cr3t".into());
        config
    }

    #[test]
    fn debug_and_serialized_configuration_show_no_secret() {
        let config = config_with_secrets();
        assert_clean("Config Debug", &format!("{config:?}"));
        assert_clean("Config Debug (pretty)", &format!("{config:#?}"));
        assert_clean(
            "ProfileExporterConfig Debug",
            &format!("{:?}", config.telemetry.profiling.exporter),
        );
        assert_clean("Config JSON", &serde_json::to_string(&config).unwrap());
        let debug = format!("{:?}", config.telemetry.profiling.exporter);
        assert!(debug.contains("pyro.example:4040"), "{debug}");
        // The values are still there for the one place that sends them.
        let e = &config.telemetry.profiling.exporter;
        assert_eq!(e.bearer_token.as_ref().unwrap().expose(), "tok-s3cr3t");
    }

    #[test]
    fn configuration_errors_show_no_credentials() {
        let text = r#"
[telemetry.profiling]
enabled = true
[telemetry.profiling.exporter]
type = "pyroscope"
pyroscope_endpoint = "ftp://agent:url-s3cr3t@pyro.example"
"#;
        let error = agentprof::Config::from_toml_str(text)
            .and_then(|c| agentprof::Profiler::from_config(&c).map(|_| c))
            .unwrap_err()
            .to_string();
        assert!(error.contains("pyroscope_endpoint"), "{error}");
        assert_clean("config error", &error);
    }

    #[cfg(feature = "pyroscope")]
    #[test]
    fn failing_pushes_log_no_credentials() {
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        use agentprof::export::{PyroscopeAuth, PyroscopeConfig, PyroscopeExporter};
        use tracing_subscriber::layer::SubscriberExt;

        /// Keeps every event's fields as text.
        struct Capture(Arc<Mutex<String>>);
        struct Fields<'a>(&'a mut String);
        impl tracing::field::Visit for Fields<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
            fn on_event(
                &self,
                event: &tracing::Event<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                let mut text = self.0.lock().unwrap();
                event.record(&mut Fields(&mut text));
                text.push('\n');
            }
        }

        let _serial = super::serial();
        // Nothing listens on this port: every push fails.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = PyroscopeConfig::new(
            format!("http://agent:url-s3cr3t@127.0.0.1:{port}/?key=url-s3cr3t"),
            "torture",
        );
        config.auth = PyroscopeAuth::Bearer("tok-s3cr3t".into());
        config.headers = vec![("X-Api-Key".to_owned(), "hdr-s3cr3t".into())];
        config.max_retries = 1;
        config.backoff = Duration::from_millis(5);
        assert_clean("PyroscopeConfig Debug", &format!("{config:?}"));
        let exporter = PyroscopeExporter::new(config).unwrap();
        assert_clean("PyroscopeExporter Debug", &format!("{exporter:?}"));

        let logs = Arc::new(Mutex::new(String::new()));
        // Global: the export thread logs.
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(Capture(logs.clone())),
        )
        .expect("the only global subscriber of this test binary");
        let profiler = agentprof::Profiler::builder()
            .window(Duration::from_millis(100))
            .exporter(exporter)
            .build()
            .unwrap()
            .start()
            .unwrap();
        std::thread::sleep(Duration::from_millis(350));
        let summary = profiler.shutdown().unwrap();
        assert!(summary.stats.errors > 0, "{summary:?}");
        let logs = logs.lock().unwrap();
        assert!(
            logs.contains("could not export"),
            "the failure was logged: {logs}"
        );
        assert!(logs.contains("127.0.0.1"), "{logs}");
        assert_clean("logs", &logs);
    }
}

mod configuration {
    //! Every numeric key at 0, at its maximum, negative and absurd, from the
    //! file and from the environment: an error naming the key, never a panic
    //! or a hang.

    use std::collections::HashMap;

    /// (table, key, environment variable, a value inside the range, the
    /// largest value allowed).
    const NUMERIC_KEYS: [(&str, &str, &str, u64, u64); 15] = [
        ("cpu", "frequency", "AGENTPROF_CPU_FREQUENCY", 100, 10_000),
        (
            "cpu",
            "duration_seconds",
            "AGENTPROF_CPU_DURATION_SECONDS",
            30,
            86_400,
        ),
        (
            "memory",
            "sampling_rate",
            "AGENTPROF_MEMORY_SAMPLING_RATE",
            100,
            100_000,
        ),
        (
            "memory",
            "sample_interval_bytes",
            "AGENTPROF_MEMORY_SAMPLE_INTERVAL_BYTES",
            4096,
            1 << 30,
        ),
        (
            "memory",
            "timeline_interval_ms",
            "AGENTPROF_MEMORY_TIMELINE_INTERVAL_MS",
            1000,
            3_600_000,
        ),
        (
            "memory",
            "timeline_capacity",
            "AGENTPROF_MEMORY_TIMELINE_CAPACITY",
            3600,
            1_000_000,
        ),
        (
            "exporter",
            "timeout_ms",
            "AGENTPROF_EXPORTER_TIMEOUT_MS",
            1000,
            600_000,
        ),
        (
            "exporter",
            "max_retries",
            "AGENTPROF_EXPORTER_MAX_RETRIES",
            2,
            10,
        ),
        (
            "exporter",
            "max_windows",
            "AGENTPROF_EXPORTER_MAX_WINDOWS",
            48,
            100_000,
        ),
        (
            "exporter",
            "max_bytes",
            "AGENTPROF_EXPORTER_MAX_BYTES",
            1 << 20,
            1 << 40,
        ),
        (
            "exporter",
            "queue_size",
            "AGENTPROF_EXPORTER_QUEUE_SIZE",
            4,
            1024,
        ),
        (
            "exporter",
            "shutdown_timeout_ms",
            "AGENTPROF_EXPORTER_SHUTDOWN_TIMEOUT_MS",
            5000,
            600_000,
        ),
        (
            "attribution",
            "recent_invocations",
            "AGENTPROF_RECENT_INVOCATIONS",
            1024,
            1_000_000,
        ),
        (
            "attribution",
            "label_value_max_len",
            "AGENTPROF_LABEL_VALUE_MAX_LEN",
            128,
            4096,
        ),
        (
            "attribution",
            "label_values_per_key",
            "AGENTPROF_LABEL_VALUES_PER_KEY",
            1000,
            100_000,
        ),
    ];

    fn from_file(table: &str, key: &str, value: &str) -> agentprof::Result<agentprof::Config> {
        agentprof::Config::from_toml_str(&format!(
            "[telemetry.profiling.{table}]\n{key} = {value}\n"
        ))
    }

    fn from_env(variable: &str, value: &str) -> agentprof::Result<agentprof::Config> {
        let env: HashMap<&str, &str> = [(variable, value)].into();
        let mut config = agentprof::Config::default();
        config
            .apply_env(|name| env.get(name).map(|v| v.to_string()))
            .map(|()| config)
    }

    fn accepted(result: &agentprof::Result<agentprof::Config>, what: &str) -> bool {
        match result {
            Ok(_) => true,
            Err(e) => {
                let text = e.to_string();
                assert!(
                    text.contains(what),
                    "the error for {what} does not name it: {text}"
                );
                false
            }
        }
    }

    #[test]
    fn numeric_keys_out_of_range_are_refused_by_name() {
        for (table, key, variable, good, max) in NUMERIC_KEYS {
            let path = format!("telemetry.profiling.{table}.{key}");
            for valid in [good, max] {
                let text = valid.to_string();
                assert!(
                    accepted(&from_file(table, key, &text), &path),
                    "{path} = {valid}"
                );
                assert!(
                    accepted(&from_env(variable, &text), &path),
                    "${variable}={valid}"
                );
            }
            let above = (max + 1).to_string();
            for absurd in ["-1", "18446744073709551615", "9223372036854775807", &above] {
                let file = from_file(table, key, absurd);
                assert!(!accepted(&file, key), "{path} = {absurd} was accepted");
                let env = from_env(variable, absurd);
                assert!(!accepted(&env, &path), "${variable}={absurd} was accepted");
            }
            assert!(!accepted(&from_env(variable, "lots"), variable));
            assert!(!accepted(&from_env(variable, "lots"), &path));
        }
        // Zero, where zero means nothing sensible.
        for (table, key, variable, _, _) in NUMERIC_KEYS {
            let zero_ok = matches!(
                key,
                "timeline_interval_ms"
                    | "max_retries"
                    | "shutdown_timeout_ms"
                    | "recent_invocations"
            );
            let path = format!("telemetry.profiling.{table}.{key}");
            assert_eq!(
                accepted(&from_file(table, key, "0"), &path),
                zero_ok,
                "{path} = 0"
            );
            assert_eq!(
                accepted(&from_env(variable, "0"), &path),
                zero_ok,
                "${variable}=0"
            );
        }
    }

    #[test]
    fn a_misspelt_profiling_table_is_refused_and_the_applications_tables_are_not() {
        let error = agentprof::Config::from_toml_str("[telemetry.proflling]\nenabled = true\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("telemetry.proflling") && error.contains("telemetry.profiling"),
            "{error}"
        );
        let error = agentprof::Config::from_toml_str("[telemetry]\nenabeld = false\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("telemetry.enabeld"), "{error}");
        // The application's own telemetry tables stay its own.
        let config = agentprof::Config::from_toml_str(
            "[telemetry]\nenabled = true\n[telemetry.tracing]\nlevel = \"info\"\n[server]\nport = 8080\n",
        )
        .unwrap();
        assert!(config.telemetry.enabled);
    }

    #[test]
    fn the_largest_accepted_values_start_and_stop_cleanly() {
        let _serial = super::serial();
        let text = "[telemetry.profiling]\nenabled = true\n\
            [telemetry.profiling.cpu]\nduration_seconds = 86400\ncontinuous = true\n\
            [telemetry.profiling.memory]\ntimeline_capacity = 1000000\n\
            [telemetry.profiling.exporter]\nqueue_size = 1024\nmax_retries = 10\n\
            timeout_ms = 600000\nshutdown_timeout_ms = 600000\n";
        let config = agentprof::Config::from_toml_str(text).unwrap();
        let dir = super::common::TempDir::new("torture-config");
        let mut config = config;
        config.telemetry.profiling.exporter.file_output_dir =
            Some(dir.0.to_string_lossy().into_owned());
        let running = agentprof::Profiler::from_config(&config)
            .unwrap()
            .start()
            .unwrap();
        let summary = running.shutdown().unwrap();
        assert!(!summary.export_timed_out, "{summary:?}");
        assert_eq!(summary.stats.windows, summary.stats.exported, "{summary:?}");
    }
}

mod libraries {
    //! A library loaded before sampling starts, closed while it runs, and
    //! another loaded in its place: the unwinder keeps the first one's
    //! tables valid (it holds it open until sampling stops), so samples in
    //! the second can never read unmapped memory.

    use std::ffi::{c_void, CString};
    use std::path::{Path, PathBuf};

    use agentprof::cpu::CpuProfiler;

    use super::common::TempDir;

    type Burn = extern "C" fn(u64) -> u64;

    fn build(dir: &Path, name: &str) -> PathBuf {
        let source = dir.join(format!("{name}.c"));
        std::fs::write(
            &source,
            format!(
                "unsigned long burn_{name}(unsigned long n) {{\n\
                 volatile unsigned long x = 0;\n\
                 for (unsigned long i = 0; i < n; i++) x += i * i;\n\
                 return x;\n}}\n"
            ),
        )
        .unwrap();
        let library = dir.join(format!("lib{name}.so"));
        let status = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&library)
            .arg(&source)
            .status()
            .expect("a C compiler (cc), which Rust's linker needs anyway");
        assert!(status.success());
        library
    }

    struct Library {
        handle: *mut c_void,
        burn: Burn,
        base: usize,
    }

    fn open(path: &Path, name: &str) -> Library {
        let path = CString::new(path.to_str().unwrap()).unwrap();
        let symbol = CString::new(format!("burn_{name}")).unwrap();
        // SAFETY: a valid path; the library only defines one function.
        unsafe {
            let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            assert!(!handle.is_null(), "dlopen {path:?}");
            let address = libc::dlsym(handle, symbol.as_ptr());
            assert!(!address.is_null());
            let mut info: libc::Dl_info = std::mem::zeroed();
            assert_ne!(libc::dladdr(address, &mut info), 0);
            Library {
                handle,
                burn: std::mem::transmute::<*mut c_void, Burn>(address),
                base: info.dli_fbase as usize,
            }
        }
    }

    fn close(library: Library) {
        // SAFETY: a handle from dlopen, closed once; its function is not
        // called afterwards.
        assert_eq!(unsafe { libc::dlclose(library.handle) }, 0);
    }

    fn mapped(path: &Path) -> bool {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .contains(path.to_str().unwrap())
    }

    fn burn_for(burn: Burn, ns: u64) {
        let start = super::common::thread_cpu_ns();
        while super::common::thread_cpu_ns() - start < ns {
            std::hint::black_box(burn(200_000));
        }
    }

    #[test]
    fn closing_a_library_while_sampling_never_lets_another_take_its_place() {
        let _serial = super::serial();
        let dir = TempDir::new("torture-libraries");
        let (a_path, b_path) = (build(&dir.0, "a"), build(&dir.0, "b"));
        for round in 0..5 {
            let a = open(&a_path, "a");
            burn_for(a.burn, 1_000_000);
            let a_base = a.base;
            let mut profiler = CpuProfiler::with_frequency(1000).unwrap();
            profiler.start().unwrap();
            burn_for(a.burn, 20_000_000);
            close(a);
            assert!(mapped(&a_path), "round {round}: held open while sampling");
            let b = open(&b_path, "b");
            assert_ne!(b.base, a_base, "round {round}: b landed on a's tables");
            burn_for(b.burn, 20_000_000);
            super::wait_for_a_sample();
            let report = profiler.stop_and_collect().unwrap();
            assert!(report.sample_count() > 0);
            assert!(!mapped(&a_path), "round {round}: released at stop");
            close(b);
        }
    }
}

mod fork {
    //! `fork` while sampling: the child starts clean and may profile on its
    //! own; dropping what it inherited neither hangs nor panics; the parent
    //! is unaffected. `fork` + `exec` runs the new program normally.

    use std::time::{Duration, Instant};

    use agentprof::{cpu::CpuProfiler, profiled, Profiler};

    #[profiled(agent = "forked")]
    fn child_work() -> u64 {
        super::common::burn_cpu_ns(30_000_000)
    }

    /// Waits for `pid` (killing it after 60 s): its exit code.
    fn wait_for(pid: libc::pid_t) -> i32 {
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            let mut status = 0;
            // SAFETY: valid out pointer; `pid` is our child.
            let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if done == pid {
                assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
                return libc::WEXITSTATUS(status);
            }
            if Instant::now() > give_up {
                // SAFETY: our child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("the child hung");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The child's checks; any failure is its exit code.
    fn in_child(
        inherited_cpu: CpuProfiler,
        inherited_collector: agentprof::RunningProfiler,
    ) -> i32 {
        // What it inherited stops without joining threads that are not here.
        drop(inherited_collector);
        let mut inherited_cpu = inherited_cpu;
        if inherited_cpu.stop_and_collect().is_ok() {
            return 2;
        }
        let mut own = CpuProfiler::with_frequency(500).unwrap();
        if own.start().is_err() {
            return 3;
        }
        child_work();
        super::wait_for_a_sample();
        match own.stop_and_collect() {
            Ok(report) if report.sample_count() > 0 => {}
            _ => return 4,
        }
        // The agent's figures (another test may have filled the row cap,
        // so the call can be in the agent's overflow row).
        let report = agentprof::report();
        match report.agent(Some("forked")) {
            Some(agent) if agent.calls == 1 && agent.cpu_ns.unwrap_or(0) >= 30_000_000 => 0,
            _ => 5,
        }
    }

    #[test]
    fn a_child_forked_while_sampling_starts_clean_and_the_parent_goes_on() {
        let _serial = super::serial();
        super::common::setup();
        let dir = super::common::TempDir::new("torture-fork");
        let collector = Profiler::builder()
            .window(Duration::from_millis(100))
            .cpu_frequency(250)
            .file_exporter(dir.0.to_string_lossy())
            .build()
            .unwrap()
            .start()
            .unwrap();
        // The collector owns the CPU sampler; a second profiler object
        // stands for one the application holds (started, then refused).
        let mut held = CpuProfiler::with_frequency(100).unwrap();
        assert!(held.start().is_err(), "one sampler per process");
        super::common::burn_cpu_ns(20_000_000);
        // SAFETY: the child only runs the checks above and leaves with
        // _exit, never returning into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                in_child(held, collector)
            }))
            .unwrap_or(6);
            // SAFETY: ends the child without running the parent's atexit
            // handlers or the harness.
            unsafe { libc::_exit(code) };
        }
        assert_eq!(wait_for(pid), 0, "the child's checks");
        // The parent goes on sampling and exporting.
        super::common::burn_cpu_ns(30_000_000);
        let summary = collector.shutdown().unwrap();
        assert!(summary.stats.windows >= 1);
        assert_eq!(summary.stats.errors, 0);
        drop(held);
    }

    #[test]
    fn fork_and_exec_while_sampling_runs_the_new_program() {
        let _serial = super::serial();
        let mut profiler = CpuProfiler::with_frequency(1000).unwrap();
        profiler.start().unwrap();
        let busy = std::thread::spawn(|| {
            super::common::burn_cpu_ns(100_000_000);
            super::wait_for_a_sample();
        });
        for _ in 0..5 {
            let status = std::process::Command::new("true").status().unwrap();
            assert!(status.success());
        }
        busy.join().unwrap();
        assert!(profiler.stop_and_collect().unwrap().sample_count() > 0);
    }
}

mod bounded_growth {
    //! 1024 run-time agents × 50 nested functions on 8 threads: the rows
    //! stop at their cap (the rest go to each agent's overflow row) and
    //! memory stays under the documented bound.

    use std::sync::Arc;

    use agentprof::{attribution::ResourceAttribution, attribution::ResourceContext, profiled};

    macro_rules! chain {
        ($($name:ident => $next:ident),*) => {
            $(
                #[profiled]
                fn $name(depth: u32) -> u64 {
                    if depth == 0 { 1 } else { 1 + $next(depth - 1) }
                }
            )*
        };
    }

    fn bottom(_: u32) -> u64 {
        0
    }

    chain!(
        level_00 => level_01,
        level_01 => level_02,
        level_02 => level_03,
        level_03 => level_04,
        level_04 => level_05,
        level_05 => level_06,
        level_06 => level_07,
        level_07 => level_08,
        level_08 => level_09,
        level_09 => level_10,
        level_10 => level_11,
        level_11 => level_12,
        level_12 => level_13,
        level_13 => level_14,
        level_14 => level_15,
        level_15 => level_16,
        level_16 => level_17,
        level_17 => level_18,
        level_18 => level_19,
        level_19 => level_20,
        level_20 => level_21,
        level_21 => level_22,
        level_22 => level_23,
        level_23 => level_24,
        level_24 => level_25,
        level_25 => level_26,
        level_26 => level_27,
        level_27 => level_28,
        level_28 => level_29,
        level_29 => level_30,
        level_30 => level_31,
        level_31 => level_32,
        level_32 => level_33,
        level_33 => level_34,
        level_34 => level_35,
        level_35 => level_36,
        level_36 => level_37,
        level_37 => level_38,
        level_38 => level_39,
        level_39 => level_40,
        level_40 => level_41,
        level_41 => level_42,
        level_42 => level_43,
        level_43 => level_44,
        level_44 => level_45,
        level_45 => level_46,
        level_46 => level_47,
        level_47 => level_48,
        level_48 => level_49,
        level_49 => bottom
    );

    fn rss_bytes() -> u64 {
        agentprof::memory::system_memory().unwrap().rss_bytes
    }

    const AGENTS: usize = 1024;
    /// The aggregates' documented bound: at most 2048 rows plus one
    /// overflow row per agent, their first shards at most 156 KiB each, and
    /// 64 MiB for other shards.
    const BOUND_BYTES: u64 = (2048 + AGENTS as u64 + 1) * 156 * 1024 + (64 << 20);

    #[test]
    fn rows_stop_at_their_cap_and_memory_at_its_bound() {
        // Alone: a fork elsewhere must not meet these threads mid-call.
        let _serial = super::serial();
        super::common::setup();
        let before = rss_bytes();
        let attribution = Arc::new(ResourceAttribution::new());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let attribution = attribution.clone();
                std::thread::spawn(move || {
                    for _ in 0..2 {
                        for agent in (t..AGENTS).step_by(8) {
                            let ctx = ResourceContext {
                                agent_name: format!("agent-{agent:04}"),
                                session_id: None,
                            };
                            let (depth, _) = attribution.run(&ctx, || level_00(49));
                            assert_eq!(depth, 50);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let report = agentprof::report();
        let grown = rss_bytes().saturating_sub(before);
        let overflow_rows = report
            .functions
            .iter()
            .filter(|r| r.function == "__overflow__")
            .count();
        let real_rows = report.functions.len() - overflow_rows;
        assert!(real_rows <= 2048, "{real_rows} rows");
        assert!(overflow_rows <= AGENTS + 1, "{overflow_rows} overflow rows");
        assert!(report.dropped.rows_overflowed > 0, "the cap was reached");
        // Every call is still counted, in its row or its agent's overflow.
        let calls: u64 = report
            .functions
            .iter()
            .filter(|r| r.agent.as_deref().is_some_and(|a| a.starts_with("agent-")))
            .map(|r| r.calls)
            .sum();
        assert_eq!(calls, (AGENTS * 2 * 51) as u64);
        assert!(
            grown < BOUND_BYTES,
            "RSS grew {} MiB, bound {} MiB",
            grown >> 20,
            BOUND_BYTES >> 20
        );
        eprintln!(
            "1024 agents x 50 nested functions: {real_rows} rows, {overflow_rows} overflow rows, RSS +{} MiB",
            grown >> 20
        );
    }
}

mod threads {
    //! Ten thousand short-lived threads that allocate and free across
    //! threads while both samplers run: the process totals stay exact and
    //! the heap profiler's live table keeps nothing of them.

    use std::sync::mpsc;

    use agentprof::{cpu::CpuProfiler, heap::HeapProfiler, heap::HeapProfilerConfig, profiled};

    /// Estimated bytes in use that the churn allocated.
    fn churn_inuse(profile: &agentprof::heap::HeapProfile) -> i64 {
        profile
            .stacks
            .iter()
            .filter(|s| s.agent == Some("churn"))
            .map(|s| s.inuse_estimate().1)
            .sum()
    }

    #[profiled(agent = "churn")]
    fn churn(keep: &mpsc::Sender<Vec<u8>>, seed: usize) -> u64 {
        let mut total = 0;
        for i in 0..40 {
            let block = vec![(seed + i) as u8; 64 + (seed * 31 + i * 97) % 4000];
            total += block.len() as u64;
            if i % 2 == 0 {
                // Freed by another thread.
                keep.send(block).unwrap();
            }
        }
        total
    }

    #[test]
    fn ten_thousand_short_threads_leave_exact_totals_and_no_live_samples() {
        let name = "threads::ten_thousand_short_threads_leave_exact_totals_and_no_live_samples";
        if !super::alone(name) {
            return;
        }
        let heap = HeapProfiler::start(HeapProfilerConfig {
            sample_interval: 16 * 1024,
            ..HeapProfilerConfig::default()
        })
        .unwrap();
        let inuse_before = churn_inuse(&heap.snapshot());
        let before = agentprof::memory::memory_stats().unwrap();
        let mut cpu = CpuProfiler::with_frequency(1000).unwrap();
        cpu.start().unwrap();
        let (sender, receiver) = mpsc::channel::<Vec<u8>>();
        let freer = std::thread::spawn(move || receiver.into_iter().count());
        let mut allocated = 0u64;
        for wave in 0..200 {
            let threads: Vec<_> = (0..50)
                .map(|t| {
                    let sender = sender.clone();
                    std::thread::spawn(move || churn(&sender, wave * 50 + t))
                })
                .collect();
            for t in threads {
                allocated += t.join().unwrap();
            }
        }
        drop(sender);
        let freed_elsewhere = freer.join().unwrap();
        assert_eq!(freed_elsewhere, 10_000 * 20);
        // The CPU profile of 10,000 threads is live data of its own; drop it
        // before comparing.
        let samples = cpu.stop_and_collect().unwrap().sample_count();
        assert!(samples > 0);
        let after = agentprof::memory::memory_stats().unwrap();
        let grown = after.current_usage as i64 - before.current_usage as i64;
        // Every thread's counts reached the totals when it exited: what is
        // left over is a few of the process's own structures, not the
        // threads' unfolded counts (up to 256 KiB each).
        assert!(grown.abs() < 1 << 20, "in use changed by {grown} bytes");
        assert!(after.total_allocated - before.total_allocated >= allocated);
        let profile = heap.snapshot();
        assert!(
            profile.stacks.iter().any(|s| s.agent == Some("churn")),
            "the churn was sampled"
        );
        let inuse_after = churn_inuse(&profile);
        assert_eq!(
            (inuse_before, inuse_after),
            (0, 0),
            "every sampled churn block was freed, so none is in use"
        );
        heap.stop();
        let churn = agentprof::report();
        let row = churn.agent(Some("churn")).unwrap();
        assert_eq!(row.calls, 10_000);
    }
}

mod limits {
    //! Starting with no file descriptor to spare: a clear error or a
    //! degraded mode that the report names, never a silent failure.

    use agentprof::{cpu::CpuProfiler, profiled, Profiler};

    #[profiled(agent = "limited")]
    fn limited_work() -> u64 {
        super::common::burn_cpu_ns(5_000_000)
    }

    fn highest_descriptor() -> u64 {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap()
    }

    #[test]
    fn no_descriptors_left_means_a_clear_error_or_a_reported_fallback() {
        let name = "limits::no_descriptors_left_means_a_clear_error_or_a_reported_fallback";
        if !super::alone(name) {
            return;
        }
        super::common::setup();
        let dir = super::common::TempDir::new("torture-limits");
        // SAFETY: valid pointers to locals.
        let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        let saved = limit;
        // The limit bounds descriptor numbers: set it just past the highest
        // open one, then take every free number below it.
        limit.rlim_cur = highest_descriptor() + 1;
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        let mut filler = Vec::new();
        while let Ok(file) = std::fs::File::open("/dev/null") {
            filler.push(file);
        }
        assert!(
            std::fs::File::open("/dev/null").is_err(),
            "no descriptor left"
        );

        // The file exporter needs descriptors: a clear error naming the
        // directory, at start.
        let exporter = Profiler::builder()
            .window(std::time::Duration::from_millis(100))
            .file_exporter(dir.0.to_string_lossy())
            .build()
            .and_then(|p| p.start());
        if let Err(e) = &exporter {
            let text = e.to_string();
            assert!(text.contains(&*dir.0.to_string_lossy()), "{text}");
        }
        drop(exporter);

        // CPU sampling: started in per-thread or process-wide mode, or a
        // clear error; and instrumented code on a new thread (which cannot
        // open its perf clock) falls back to the system call, counted.
        let mut cpu = CpuProfiler::with_frequency(250).unwrap();
        match cpu.start() {
            // Per-thread timers need no descriptor once armed; where
            // /proc/self/task cannot be listed, the process-wide timer, and
            // `mode()` says which.
            Ok(()) => assert!(cpu.mode().is_some()),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        let worker = std::thread::spawn(limited_work);
        assert!(worker.join().unwrap() >= 5_000_000);
        let report = agentprof::report();
        let row = report.agent(Some("limited")).unwrap();
        assert!(row.cpu_ns.unwrap() >= 5_000_000, "CPU still measured");
        if report.cpu_clock == Some(agentprof::report::CpuClock::PerfMmap) {
            assert!(
                report.dropped.cpu_clock_fallback_threads > 0,
                "the fallback is reported"
            );
        }
        if cpu.is_running() {
            cpu.stop_and_collect().unwrap();
        }
        drop(filler);
        // SAFETY: valid pointer.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &saved) }, 0);
    }
}
