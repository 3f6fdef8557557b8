//! The one error type of agentprof.

use std::path::PathBuf;

/// What went wrong, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration key has a value outside what it allows.
    #[error("invalid value for `{key}`: {message}")]
    InvalidConfig {
        /// Dotted key, e.g. `telemetry.profiling.cpu.frequency`.
        key: String,
        /// What was wrong and what is allowed.
        message: String,
    },
    /// The configuration text is not valid TOML or has unknown keys.
    #[error("cannot parse configuration{}: {message}", source_name(.path))]
    ConfigSyntax {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A configuration file could not be read.
    #[error("cannot read configuration file {}: {source}", .path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration asks for a capability this build does not have.
    #[error("`{key}` asks for {what}, which this build of agentprof does not provide{}", hint_suffix(.hint))]
    Unsupported {
        /// Dotted key that asked for it.
        key: String,
        /// The capability.
        what: String,
        /// How to get it, when there is a way.
        hint: Option<String>,
    },
    /// An exporter could not deliver a window.
    #[error("{exporter} exporter: {message}")]
    Export {
        /// Which exporter.
        exporter: String,
        /// What failed, naming the path or endpoint.
        message: String,
    },
    /// Bytes that are not a pprof profile.
    #[error("not a pprof profile: {message}")]
    ProfileDecode {
        /// What the decoder said.
        message: String,
    },
    /// Something the profiler needs at run time could not be had: a thread,
    /// a timer, a signal handler, a file descriptor.
    #[error("agentprof could not get {what}: {source}")]
    Resource {
        /// What was asked for.
        what: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A profiler was asked for results it does not have: it is not
    /// running.
    #[error("{what} is not running ({hint})")]
    NotRunning {
        /// Which profiler.
        what: String,
        /// What to do instead.
        hint: String,
    },
    /// A flamegraph could not be rendered.
    #[error("cannot render {what}: {message}")]
    Render {
        /// What was being rendered.
        what: String,
        /// What the renderer said.
        message: String,
    },
    /// Shutdown stopped waiting for an exporter still busy with a window
    /// (a hanging export); it is left to finish on its own.
    #[error(
        "the exporters were still busy {timeout_ms} ms into shutdown; the last windows may be \
         missing ({windows} windows cut, {exported} exported, {dropped} dropped, {errors} export errors)"
    )]
    ExportTimedOut {
        /// `exporter.shutdown_timeout_ms`.
        timeout_ms: u64,
        /// Windows cut.
        windows: u64,
        /// Windows every exporter accepted.
        exported: u64,
        /// Windows dropped (a full queue, or abandoned at shutdown).
        dropped: u64,
        /// Export calls that failed.
        errors: u64,
    },
    /// One of a kind already runs in this process (a second CPU
    /// profiler): stop it first.
    #[error("{what} is already running in this process ({hint})")]
    AlreadyRunning {
        /// What runs.
        what: String,
        /// What to do instead.
        hint: String,
    },
    /// Busy for now: the same request may succeed later.
    #[error("agentprof is busy: {what} ({hint})")]
    Busy {
        /// What could not be had now.
        what: String,
        /// When to try again.
        hint: String,
    },
    /// The platform cannot do it, or answered something agentprof cannot
    /// read.
    #[error("{what}: {message}")]
    Platform {
        /// What was attempted.
        what: String,
        /// What the platform lacks or said.
        message: String,
    },
    /// An invocation asked for by id is not kept (never was, or was
    /// evicted): the message says which, and why.
    #[error("invocation {id} {why}")]
    InvocationNotKept {
        /// The id asked for.
        id: u64,
        /// What became of it.
        why: String,
    },
    /// Serializing a report failed.
    #[error("cannot serialize report: {message}")]
    Serialize {
        /// What the serializer said.
        message: String,
    },
}

fn source_name(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" in {}", p.display()),
        None => String::new(),
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    match hint {
        Some(h) => format!(" ({h})"),
        None => String::new(),
    }
}

/// `Result` with agentprof's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
