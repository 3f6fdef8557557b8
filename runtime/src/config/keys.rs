//! The table of configuration keys: for each, its path, the environment
//! variable that overrides it, its type, default and range, and one line
//! saying what it does. The overrides, the range checks, the key names in
//! errors and `docs/configuration.md` all come from here, so a key is
//! declared once beside its struct field.

use std::time::Duration;

use super::{Config, Secret};

/// What a key holds, with what the table can check about it.
// Defaults and choices are read by the reference's generator, a test.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Kind {
    Bool {
        default: bool,
    },
    /// `default: None` when the default is not one number (`default_note`
    /// says what it is) or the key is unset by default.
    Integer {
        default: Option<u64>,
        min: u64,
        max: u64,
        unit: &'static str,
    },
    Text,
    /// The first choice is the default.
    Choice(&'static [&'static str]),
    Secret,
    /// A list of sample labels.
    Labels,
    /// A table of names to values.
    Map,
}

/// Which exporter a key of `[telemetry.profiling.exporter]` belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Any,
    File,
    Pyroscope,
    Gcp,
    /// Push requests, Pyroscope's and Cloud Profiler's.
    Requests,
}

pub(crate) type Read = fn(&Config) -> Option<u64>;
pub(crate) type Write = fn(&mut Config, &str) -> Result<(), String>;
pub(crate) type Given = fn(&Config) -> bool;

/// One configuration key.
// `scope`, `default_note` and `doc` are read by the reference's generator,
// a test.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Key {
    pub(crate) path: &'static str,
    pub(crate) env: Option<&'static str>,
    pub(crate) kind: Kind,
    pub(crate) scope: Scope,
    /// What the default is when it is not a literal of `kind`.
    pub(crate) default_note: Option<&'static str>,
    pub(crate) doc: &'static str,
    /// An integer key's current value, `None` when unset (or, for a key
    /// whose 0 means "off", when 0).
    pub(crate) read: Option<Read>,
    /// Sets the key from an environment variable's text.
    pub(crate) write: Option<Write>,
    /// Whether an exporter-specific key without a default was given: one
    /// given under another exporter is refused rather than ignored.
    pub(crate) given: Option<Given>,
}

impl Key {
    /// An integer key's default; the table is checked by a test to hold
    /// one for every key whose field default reads it.
    pub(crate) const fn integer_default(&self) -> u64 {
        match self.kind {
            Kind::Integer {
                default: Some(value),
                ..
            } => value,
            _ => panic!("not an integer key with a default"),
        }
    }

    /// An integer key's largest value.
    pub(crate) const fn integer_max(&self) -> u64 {
        match self.kind {
            Kind::Integer { max, .. } => max,
            _ => panic!("not an integer key"),
        }
    }

    /// The name a user writes in the table of the file: `frequency`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn name(&self) -> &'static str {
        self.path.rsplit('.').next().unwrap_or(self.path)
    }
}

pub(crate) fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{v:?} is not a boolean; allowed: true, false, 1, 0"
        )),
    }
}

fn parse_num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a non-negative integer"))
}

fn text(v: &str) -> Option<String> {
    Some(v.trim().to_owned())
}

pub(crate) const TELEMETRY_ENABLED: &Key = &Key {
    path: "telemetry.enabled",
    env: Some("AGENTPROF_TELEMETRY_ENABLED"),
    kind: Kind::Bool { default: true },
    scope: Scope::Any,
    default_note: None,
    doc: "The application's switch for all telemetry; `false` turns profiling off too.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.enabled = parse_bool(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const PROFILING_ENABLED: &Key = &Key {
    path: "telemetry.profiling.enabled",
    env: Some("AGENTPROF_PROFILING_ENABLED"),
    kind: Kind::Bool { default: false },
    scope: Scope::Any,
    default_note: None,
    doc: "Record invocations. `false` in the environment always wins: an instrumented call then costs one atomic load.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.enabled = parse_bool(v)?;
        Ok(())
    }),
    given: None,
};

pub(crate) const CPU_FREQUENCY: &Key = &Key {
    path: "telemetry.profiling.cpu.frequency",
    env: Some("AGENTPROF_CPU_FREQUENCY"),
    kind: Kind::Integer {
        default: Some(100),
        min: 1,
        max: 10_000,
        unit: "Hz",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "CPU samples per second of each thread's CPU time (the kernel tick may deliver fewer; each sample is weighed by the CPU it stands for).",
    read: Some(|c| Some(c.telemetry.profiling.cpu.frequency.into())),
    write: Some(|c, v| {
        c.telemetry.profiling.cpu.frequency = parse_num(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const CPU_DURATION: &Key = &Key {
    path: "telemetry.profiling.cpu.duration_seconds",
    env: Some("AGENTPROF_CPU_DURATION_SECONDS"),
    kind: Kind::Integer {
        default: Some(30),
        min: 1,
        max: 86_400,
        unit: "seconds",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "Length of a continuous-profiling window.",
    // Checked apart: the builder also allows sub-second windows.
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.cpu.duration = Duration::from_secs(parse_num(v)?);
        Ok(())
    }),
    given: None,
};
pub(crate) const CPU_CONTINUOUS: &Key = &Key {
    path: "telemetry.profiling.cpu.continuous",
    env: Some("AGENTPROF_CPU_CONTINUOUS"),
    kind: Kind::Bool { default: false },
    scope: Scope::Any,
    default_note: None,
    doc: "Cut a window every `duration_seconds` (CPU and heap profiles, flamegraph, report) and hand it to the exporter.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.cpu.continuous = parse_bool(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const CPU_CLOCK: &Key = &Key {
    path: "telemetry.profiling.cpu.clock",
    env: Some("AGENTPROF_CPU_CLOCK"),
    kind: Kind::Choice(&["auto", "syscall"]),
    scope: Scope::Any,
    default_note: None,
    doc: "How invocations read the thread CPU clock: in user space where the kernel allows it (`auto`), or always with the system call.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.cpu.clock = v.parse()?;
        Ok(())
    }),
    given: None,
};
pub(crate) const CPU_LABELS: &Key = &Key {
    path: "telemetry.profiling.cpu.labels",
    env: None,
    kind: Kind::Labels,
    scope: Scope::Any,
    default_note: Some(
        "`[\"agent\", \"function\", \"invocation_id\", \"span_id\", \"trace_id\", \"thread\"]`",
    ),
    doc: "Labels the samples of local profiles carry (files, the live endpoint); `thread_id` adds the numeric thread id.",
    read: None,
    write: None,
    given: None,
};
pub(crate) const CPU_SYMBOLIZE: &Key = &Key {
    path: "telemetry.profiling.cpu.symbolize",
    env: Some("AGENTPROF_CPU_SYMBOLIZE"),
    kind: Kind::Choice(&["symbols", "debuginfo"]),
    scope: Scope::Any,
    default_note: None,
    doc: "Where profiles' function names come from: the symbol tables (about 1 MiB), or DWARF for inlined frames, files and lines (tens of MiB on a large binary).",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.cpu.symbolize = v.parse()?;
        Ok(())
    }),
    given: None,
};

pub(crate) const MEMORY_TRACK_ALLOCATIONS: &Key = &Key {
    path: "telemetry.profiling.memory.track_allocations",
    env: Some("AGENTPROF_MEMORY_TRACK_ALLOCATIONS"),
    kind: Kind::Bool { default: false },
    scope: Scope::Any,
    default_note: None,
    doc: "Record the stack of every allocation: exact, and expensive.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.memory.track_allocations = parse_bool(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const MEMORY_SAMPLING_RATE: &Key = &Key {
    path: "telemetry.profiling.memory.sampling_rate",
    env: Some("AGENTPROF_MEMORY_SAMPLING_RATE"),
    kind: Kind::Integer {
        default: Some(100),
        min: 1,
        max: 100_000,
        unit: "(1 samples every 5 KiB, 100 every 512 KiB)",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "Heap sampling density: a mean interval of `sampling_rate x 512 KiB / 100` bytes.",
    read: Some(|c| Some(c.telemetry.profiling.memory.sampling_rate)),
    write: Some(|c, v| {
        c.telemetry.profiling.memory.sampling_rate = parse_num(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const MEMORY_HEAP_PROFILING: &Key = &Key {
    path: "telemetry.profiling.memory.heap_profiling",
    env: Some("AGENTPROF_MEMORY_HEAP_PROFILING"),
    kind: Kind::Bool { default: false },
    scope: Scope::Any,
    default_note: None,
    doc: "Run the sampled heap profiler (needs `agentprof::Allocator`).",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.memory.heap_profiling = parse_bool(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const MEMORY_SAMPLE_INTERVAL: &Key = &Key {
    path: "telemetry.profiling.memory.sample_interval_bytes",
    env: Some("AGENTPROF_MEMORY_SAMPLE_INTERVAL_BYTES"),
    kind: Kind::Integer {
        default: None,
        min: 1,
        max: 1 << 30,
        unit: "bytes (1 records every allocation)",
    },
    scope: Scope::Any,
    default_note: Some("unset: from `sampling_rate`"),
    doc: "Mean bytes between heap samples, used instead of `sampling_rate`.",
    read: Some(|c| c.telemetry.profiling.memory.sample_interval_bytes),
    write: Some(|c, v| {
        c.telemetry.profiling.memory.sample_interval_bytes = Some(parse_num(v)?);
        Ok(())
    }),
    given: None,
};
pub(crate) const MEMORY_TIMELINE_INTERVAL: &Key = &Key {
    path: "telemetry.profiling.memory.timeline_interval_ms",
    env: Some("AGENTPROF_MEMORY_TIMELINE_INTERVAL_MS"),
    kind: Kind::Integer {
        default: Some(1000),
        min: 10,
        max: 3_600_000,
        unit: "ms, or 0 for no timeline",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "Period of the memory timeline's readings (resident set, heap in use).",
    read: Some(|c| {
        let ms = c.telemetry.profiling.memory.timeline_interval_ms;
        (ms != 0).then_some(ms)
    }),
    write: Some(|c, v| {
        c.telemetry.profiling.memory.timeline_interval_ms = parse_num(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const MEMORY_TIMELINE_CAPACITY: &Key = &Key {
    path: "telemetry.profiling.memory.timeline_capacity",
    env: Some("AGENTPROF_MEMORY_TIMELINE_CAPACITY"),
    kind: Kind::Integer {
        default: Some(3600),
        min: 1,
        max: 1_000_000,
        unit: "readings",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "Readings the memory timeline keeps; older ones are dropped.",
    read: Some(|c| Some(c.telemetry.profiling.memory.timeline_capacity as u64)),
    write: Some(|c, v| {
        c.telemetry.profiling.memory.timeline_capacity = parse_num(v)?;
        Ok(())
    }),
    given: None,
};

pub(crate) const EXPORTER_TYPE: &Key = &Key {
    path: "telemetry.profiling.exporter.type",
    env: Some("AGENTPROF_EXPORTER_TYPE"),
    kind: Kind::Choice(&["file", "pyroscope", "gcp"]),
    scope: Scope::Any,
    default_note: None,
    doc: "Where continuous windows go. Another exporter's keys under this one are refused, naming the key.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.type_ = v.trim().parse()?;
        Ok(())
    }),
    given: None,
};
pub(crate) const APPLICATION_NAME: &Key = &Key {
    path: "telemetry.profiling.exporter.application_name",
    env: None,
    kind: Kind::Text,
    scope: Scope::Any,
    default_note: Some("the executable's name"),
    doc: "The service's name: Pyroscope's `service_name`, Cloud Profiler's target when `gcp_service` is unset.",
    read: None,
    write: None,
    given: None,
};
pub(crate) const TAGS: &Key = &Key {
    path: "telemetry.profiling.exporter.tags",
    env: None,
    kind: Kind::Map,
    scope: Scope::Any,
    default_note: Some("none"),
    doc: "Static labels: Pyroscope's series labels, Cloud Profiler's deployment labels.",
    read: None,
    write: None,
    given: None,
};
pub(crate) const EXPORTER_LABELS: &Key = &Key {
    path: "telemetry.profiling.exporter.labels",
    env: None,
    kind: Kind::Labels,
    scope: Scope::Any,
    default_note: Some(
        "Pyroscope `[\"agent\", \"function\", \"thread\", \"span_id\"]`, Cloud Profiler `[\"agent\", \"function\", \"thread\"]`",
    ),
    doc: "Per-sample labels of the profiles a backend receives; `invocation_id`, `trace_id` and `thread_id` are refused (a series per value).",
    read: None,
    write: None,
    given: None,
};
pub(crate) const QUEUE_SIZE: &Key = &Key {
    path: "telemetry.profiling.exporter.queue_size",
    env: Some("AGENTPROF_EXPORTER_QUEUE_SIZE"),
    kind: Kind::Integer {
        default: Some(4),
        min: 1,
        max: 1024,
        unit: "windows",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "Windows waiting for the exporter; past it the oldest is dropped and counted.",
    read: Some(|c| Some(c.telemetry.profiling.exporter.queue_size as u64)),
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.queue_size = parse_num(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const SHUTDOWN_TIMEOUT_MS: &Key = &Key {
    path: "telemetry.profiling.exporter.shutdown_timeout_ms",
    env: Some("AGENTPROF_EXPORTER_SHUTDOWN_TIMEOUT_MS"),
    kind: Kind::Integer {
        default: Some(5000),
        min: 0,
        max: 600_000,
        unit: "ms",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "How long `shutdown` waits for the exporter to take the last window.",
    read: Some(|c| Some(c.telemetry.profiling.exporter.shutdown_timeout_ms)),
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.shutdown_timeout_ms = parse_num(v)?;
        Ok(())
    }),
    given: None,
};

pub(crate) const FILE_OUTPUT_DIR: &Key = &Key {
    path: "telemetry.profiling.exporter.file_output_dir",
    env: Some("AGENTPROF_EXPORTER_FILE_OUTPUT_DIR"),
    kind: Kind::Text,
    scope: Scope::File,
    default_note: Some("`./profiles`"),
    doc: "The file exporter's directory, created owner-only; one others can write to is refused.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.file_output_dir = Some(v.to_owned());
        Ok(())
    }),
    given: None,
};
pub(crate) const MAX_WINDOWS: &Key = &Key {
    path: "telemetry.profiling.exporter.max_windows",
    env: Some("AGENTPROF_EXPORTER_MAX_WINDOWS"),
    kind: Kind::Integer {
        default: Some(48),
        min: 1,
        max: 100_000,
        unit: "windows",
    },
    scope: Scope::File,
    default_note: None,
    doc: "Windows the file exporter keeps; it deletes its own oldest.",
    read: Some(|c| Some(c.telemetry.profiling.exporter.max_windows as u64)),
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.max_windows = parse_num(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const MAX_BYTES: &Key = &Key {
    path: "telemetry.profiling.exporter.max_bytes",
    env: Some("AGENTPROF_EXPORTER_MAX_BYTES"),
    kind: Kind::Integer {
        default: Some(256 << 20),
        min: 1,
        max: 1 << 40,
        unit: "bytes",
    },
    scope: Scope::File,
    default_note: None,
    doc: "Bytes the file exporter keeps; it deletes its own oldest windows.",
    read: Some(|c| Some(c.telemetry.profiling.exporter.max_bytes)),
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.max_bytes = parse_num(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const MIN_FREE_BYTES: &Key = &Key {
    path: "telemetry.profiling.exporter.min_free_bytes",
    env: Some("AGENTPROF_EXPORTER_MIN_FREE_BYTES"),
    kind: Kind::Integer {
        default: None,
        min: 0,
        max: 1 << 50,
        unit: "bytes",
    },
    scope: Scope::File,
    default_note: Some("5% of the filesystem, at most 256 MiB"),
    doc: "Free space the file exporter keeps on its filesystem by deleting its own oldest windows; 0 turns it off.",
    read: Some(|c| c.telemetry.profiling.exporter.min_free_bytes),
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.min_free_bytes = Some(parse_num(v)?);
        Ok(())
    }),
    given: None,
};

pub(crate) const PYROSCOPE_ENDPOINT: &Key = &Key {
    path: "telemetry.profiling.exporter.pyroscope_endpoint",
    env: Some("AGENTPROF_EXPORTER_PYROSCOPE_ENDPOINT"),
    kind: Kind::Text,
    scope: Scope::Pyroscope,
    default_note: Some("required"),
    doc: "The Pyroscope server's base URL (`http://` or `https://`); user-info and query never appear in logs.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.pyroscope_endpoint = Some(v.to_owned());
        Ok(())
    }),
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.pyroscope_endpoint.is_some()
    }),
};
pub(crate) const BASIC_AUTH_USER: &Key = &Key {
    path: "telemetry.profiling.exporter.basic_auth_user",
    env: None,
    kind: Kind::Text,
    scope: Scope::Pyroscope,
    default_note: Some("none"),
    doc: "HTTP basic auth user, with `basic_auth_password`.",
    read: None,
    write: None,
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.basic_auth_user.is_some()
    }),
};
pub(crate) const BASIC_AUTH_PASSWORD: &Key = &Key {
    path: "telemetry.profiling.exporter.basic_auth_password",
    env: None,
    kind: Kind::Secret,
    scope: Scope::Pyroscope,
    default_note: Some("none"),
    doc: "HTTP basic auth password.",
    read: None,
    write: None,
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.basic_auth_password.is_some()
    }),
};
pub(crate) const TENANT_ID: &Key = &Key {
    path: "telemetry.profiling.exporter.tenant_id",
    env: None,
    kind: Kind::Text,
    scope: Scope::Pyroscope,
    default_note: Some("none"),
    doc: "The `X-Scope-OrgID` header of a multi-tenant server.",
    read: None,
    write: None,
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.tenant_id.is_some()
    }),
};
pub(crate) const HEADERS: &Key = &Key {
    path: "telemetry.profiling.exporter.headers",
    env: None,
    kind: Kind::Map,
    scope: Scope::Pyroscope,
    default_note: Some("none"),
    doc: "More request headers; their values are secrets.",
    read: None,
    write: None,
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        !e.headers.is_empty()
    }),
};
pub(crate) const BEARER_TOKEN: &Key = &Key {
    path: "telemetry.profiling.exporter.bearer_token",
    env: None,
    kind: Kind::Secret,
    scope: Scope::Requests,
    default_note: Some("none"),
    doc: "A fixed bearer token (Cloud Profiler: instead of Google credentials, for proxies).",
    read: None,
    write: None,
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.bearer_token.is_some()
    }),
};
pub(crate) const TIMEOUT_MS: &Key = &Key {
    path: "telemetry.profiling.exporter.timeout_ms",
    env: Some("AGENTPROF_EXPORTER_TIMEOUT_MS"),
    kind: Kind::Integer {
        default: Some(10_000),
        min: 1,
        max: 600_000,
        unit: "ms",
    },
    scope: Scope::Requests,
    default_note: None,
    doc: "Timeout of one request.",
    read: Some(|c| Some(c.telemetry.profiling.exporter.timeout_ms)),
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.timeout_ms = parse_num(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const MAX_RETRIES: &Key = &Key {
    path: "telemetry.profiling.exporter.max_retries",
    env: Some("AGENTPROF_EXPORTER_MAX_RETRIES"),
    kind: Kind::Integer {
        default: Some(2),
        min: 0,
        max: 10,
        unit: "(each waits twice the previous, at most 10 s)",
    },
    scope: Scope::Pyroscope,
    default_note: None,
    doc: "Retries of a push on 5xx and timeouts (never on 4xx).",
    read: Some(|c| Some(c.telemetry.profiling.exporter.max_retries.into())),
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.max_retries = parse_num(v)?;
        Ok(())
    }),
    given: None,
};

pub(crate) const GCP_PROJECT_ID: &Key = &Key {
    path: "telemetry.profiling.exporter.gcp_project_id",
    env: Some("AGENTPROF_EXPORTER_GCP_PROJECT_ID"),
    kind: Kind::Text,
    scope: Scope::Gcp,
    default_note: Some("the credentials' project"),
    doc: "The Google Cloud project.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.gcp_project_id = text(v);
        Ok(())
    }),
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.gcp_project_id.is_some()
    }),
};
pub(crate) const GCP_SERVICE: &Key = &Key {
    path: "telemetry.profiling.exporter.gcp_service",
    env: Some("AGENTPROF_EXPORTER_GCP_SERVICE"),
    kind: Kind::Text,
    scope: Scope::Gcp,
    default_note: Some("`application_name`, else the executable's name"),
    doc: "The service name in the Profiler UI (the deployment's target).",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.gcp_service = text(v);
        Ok(())
    }),
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.gcp_service.is_some()
    }),
};
pub(crate) const GCP_SERVICE_VERSION: &Key = &Key {
    path: "telemetry.profiling.exporter.gcp_service_version",
    env: Some("AGENTPROF_EXPORTER_GCP_SERVICE_VERSION"),
    kind: Kind::Text,
    scope: Scope::Gcp,
    default_note: Some("none"),
    doc: "The `version` deployment label.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.gcp_service_version = text(v);
        Ok(())
    }),
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.gcp_service_version.is_some()
    }),
};
pub(crate) const GCP_ZONE: &Key = &Key {
    path: "telemetry.profiling.exporter.gcp_zone",
    env: Some("AGENTPROF_EXPORTER_GCP_ZONE"),
    kind: Kind::Text,
    scope: Scope::Gcp,
    default_note: Some("the metadata server's, on Google Cloud"),
    doc: "The `zone` deployment label.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.gcp_zone = text(v);
        Ok(())
    }),
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.gcp_zone.is_some()
    }),
};
pub(crate) const GCP_ENDPOINT: &Key = &Key {
    path: "telemetry.profiling.exporter.gcp_endpoint",
    env: Some("AGENTPROF_EXPORTER_GCP_ENDPOINT"),
    kind: Kind::Text,
    scope: Scope::Gcp,
    default_note: Some("`https://cloudprofiler.googleapis.com`"),
    doc: "The Profiler API's base URL, for a proxy or a test server.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.gcp_endpoint = text(v);
        Ok(())
    }),
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.gcp_endpoint.is_some()
    }),
};
pub(crate) const GCP_CREDENTIALS_FILE: &Key = &Key {
    path: "telemetry.profiling.exporter.gcp_credentials_file",
    env: Some("AGENTPROF_EXPORTER_GCP_CREDENTIALS_FILE"),
    kind: Kind::Text,
    scope: Scope::Gcp,
    default_note: Some("Application Default Credentials"),
    doc: "A service-account key file with the `roles/cloudprofiler.agent` role.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.exporter.gcp_credentials_file = Some(v.to_owned());
        Ok(())
    }),
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.gcp_credentials_file.is_some()
    }),
};
pub(crate) const GCP_BACKOFF_INITIAL_MS: &Key = &Key {
    path: "telemetry.profiling.exporter.gcp_backoff_initial_ms",
    env: None,
    kind: Kind::Integer {
        default: Some(60_000),
        min: 1,
        max: 86_400_000,
        unit: "ms",
    },
    scope: Scope::Gcp,
    default_note: None,
    doc: "First wait after a failed request; it grows 1.3 times per failure, jittered.",
    read: Some(|c| c.telemetry.profiling.exporter.gcp_backoff_initial_ms),
    write: None,
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.gcp_backoff_initial_ms.is_some()
    }),
};
pub(crate) const GCP_BACKOFF_MAX_MS: &Key = &Key {
    path: "telemetry.profiling.exporter.gcp_backoff_max_ms",
    env: None,
    kind: Kind::Integer {
        default: Some(3_600_000),
        min: 1,
        max: 86_400_000,
        unit: "ms",
    },
    scope: Scope::Gcp,
    default_note: None,
    doc: "Longest wait after failures; at least `gcp_backoff_initial_ms`.",
    read: Some(|c| c.telemetry.profiling.exporter.gcp_backoff_max_ms),
    write: None,
    given: Some(|c| {
        let e = &c.telemetry.profiling.exporter;
        e.gcp_backoff_max_ms.is_some()
    }),
};

pub(crate) const RECENT_INVOCATIONS: &Key = &Key {
    path: "telemetry.profiling.attribution.recent_invocations",
    env: Some("AGENTPROF_RECENT_INVOCATIONS"),
    kind: Kind::Integer {
        default: Some(1024),
        min: 0,
        max: 1_000_000,
        unit: "invocations",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "Finished invocations kept for lookup by id; 0 keeps none.",
    read: Some(|c| Some(c.telemetry.profiling.attribution.recent_invocations as u64)),
    write: Some(|c, v| {
        c.telemetry.profiling.attribution.recent_invocations = parse_num(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const EXEMPLARS_PER_FUNCTION: &Key = &Key {
    path: "telemetry.profiling.attribution.exemplars_per_function",
    env: Some("AGENTPROF_EXEMPLARS_PER_FUNCTION"),
    kind: Kind::Integer {
        default: Some(4),
        min: 0,
        max: 64,
        unit: "invocations",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "Slowest invocations kept per function, window and ranking (CPU, wall), with their callee tree and CPU samples; 0 keeps none.",
    read: Some(|c| Some(c.telemetry.profiling.attribution.exemplars_per_function as u64)),
    write: Some(|c, v| {
        c.telemetry.profiling.attribution.exemplars_per_function = parse_num(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const EXEMPLAR_WINDOWS: &Key = &Key {
    path: "telemetry.profiling.attribution.exemplar_windows",
    env: Some("AGENTPROF_EXEMPLAR_WINDOWS"),
    kind: Kind::Integer {
        default: Some(3),
        min: 1,
        max: 60,
        unit: "windows",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "Continuous windows whose exemplars are kept, the current one included.",
    read: Some(|c| Some(c.telemetry.profiling.attribution.exemplar_windows as u64)),
    write: Some(|c, v| {
        c.telemetry.profiling.attribution.exemplar_windows = parse_num(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const LABEL_VALUE_MAX_LEN: &Key = &Key {
    path: "telemetry.profiling.attribution.label_value_max_len",
    env: Some("AGENTPROF_LABEL_VALUE_MAX_LEN"),
    kind: Kind::Integer {
        default: Some(128),
        min: 1,
        max: 4096,
        unit: "bytes",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "Longest label value; longer ones are cut.",
    read: Some(|c| Some(c.telemetry.profiling.attribution.label_value_max_len as u64)),
    write: Some(|c, v| {
        c.telemetry.profiling.attribution.label_value_max_len = parse_num(v)?;
        Ok(())
    }),
    given: None,
};
pub(crate) const LABEL_VALUES_PER_KEY: &Key = &Key {
    path: "telemetry.profiling.attribution.label_values_per_key",
    env: Some("AGENTPROF_LABEL_VALUES_PER_KEY"),
    kind: Kind::Integer {
        default: Some(1000),
        min: 1,
        max: 100_000,
        unit: "values",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "Distinct values kept per label key; later ones become `__overflow__`.",
    read: Some(|c| Some(c.telemetry.profiling.attribution.label_values_per_key as u64)),
    write: Some(|c, v| {
        c.telemetry.profiling.attribution.label_values_per_key = parse_num(v)?;
        Ok(())
    }),
    given: None,
};

pub(crate) const HTTP_LISTEN: &Key = &Key {
    path: "telemetry.profiling.http.listen",
    env: Some("AGENTPROF_HTTP_LISTEN"),
    kind: Kind::Text,
    scope: Scope::Any,
    default_note: Some("unset: no endpoint"),
    doc: "Address of the live endpoint, `host:port` (port 0 picks a free one); feature `http`.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.http.listen = text(v);
        Ok(())
    }),
    given: None,
};
pub(crate) const HTTP_TOKEN: &Key = &Key {
    path: "telemetry.profiling.http.token",
    env: Some("AGENTPROF_HTTP_TOKEN"),
    kind: Kind::Secret,
    scope: Scope::Any,
    default_note: Some("none"),
    doc: "Bearer token every request must carry (or basic auth's password); at least 16 printable characters; required beyond loopback.",
    read: None,
    write: Some(|c, v| {
        c.telemetry.profiling.http.token = Some(Secret::new(v));
        Ok(())
    }),
    given: None,
};
pub(crate) const HTTP_MAX_SECONDS: &Key = &Key {
    path: "telemetry.profiling.http.max_seconds",
    env: Some("AGENTPROF_HTTP_MAX_SECONDS"),
    kind: Kind::Integer {
        default: Some(60),
        min: 1,
        max: 3600,
        unit: "seconds",
    },
    scope: Scope::Any,
    default_note: None,
    doc: "Longest CPU profile one request may ask for; longer ones are cut to it.",
    read: Some(|c| Some(c.telemetry.profiling.http.max_seconds)),
    write: Some(|c, v| {
        c.telemetry.profiling.http.max_seconds = parse_num(v)?;
        Ok(())
    }),
    given: None,
};

/// Every key, in the order of the reference.
pub(crate) const ALL: &[&Key] = &[
    TELEMETRY_ENABLED,
    PROFILING_ENABLED,
    CPU_FREQUENCY,
    CPU_DURATION,
    CPU_CONTINUOUS,
    CPU_CLOCK,
    CPU_LABELS,
    CPU_SYMBOLIZE,
    MEMORY_TRACK_ALLOCATIONS,
    MEMORY_SAMPLING_RATE,
    MEMORY_HEAP_PROFILING,
    MEMORY_SAMPLE_INTERVAL,
    MEMORY_TIMELINE_INTERVAL,
    MEMORY_TIMELINE_CAPACITY,
    EXPORTER_TYPE,
    APPLICATION_NAME,
    TAGS,
    EXPORTER_LABELS,
    QUEUE_SIZE,
    SHUTDOWN_TIMEOUT_MS,
    FILE_OUTPUT_DIR,
    MAX_WINDOWS,
    MAX_BYTES,
    MIN_FREE_BYTES,
    PYROSCOPE_ENDPOINT,
    BASIC_AUTH_USER,
    BASIC_AUTH_PASSWORD,
    TENANT_ID,
    HEADERS,
    BEARER_TOKEN,
    TIMEOUT_MS,
    MAX_RETRIES,
    GCP_PROJECT_ID,
    GCP_SERVICE,
    GCP_SERVICE_VERSION,
    GCP_ZONE,
    GCP_ENDPOINT,
    GCP_CREDENTIALS_FILE,
    GCP_BACKOFF_INITIAL_MS,
    GCP_BACKOFF_MAX_MS,
    RECENT_INVOCATIONS,
    EXEMPLARS_PER_FUNCTION,
    EXEMPLAR_WINDOWS,
    LABEL_VALUE_MAX_LEN,
    LABEL_VALUES_PER_KEY,
    HTTP_LISTEN,
    HTTP_TOKEN,
    HTTP_MAX_SECONDS,
];
