//! The labels a CPU sample can carry in a pprof profile, and which of
//! them each destination receives.
//!
//! A shared backend splits every pushed profile into one series per
//! distinct label set (Pyroscope does this for every label except
//! `span_id`), so a label with one value per invocation turns each
//! invocation into a series of its own. Such labels stay local (files, the
//! live endpoint) unless the backend treats them specially.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One per-sample label of a CPU profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleLabel {
    /// The agent the running invocation is charged to.
    Agent,
    /// The running invocation's function, as the report names it.
    Function,
    /// The running invocation's id (decimal, as in logs and JSON).
    InvocationId,
    /// The OpenTelemetry span id of the invocation's span (16 hex digits);
    /// absent without OpenTelemetry.
    SpanId,
    /// The OpenTelemetry trace id (32 hex digits); absent without it.
    TraceId,
    /// The sampled thread's name (tokio workers share one).
    Thread,
    /// The sampled thread's numeric id.
    ThreadId,
}

impl SampleLabel {
    /// Every label, in the order profiles list them.
    pub const ALL: [SampleLabel; 7] = [
        SampleLabel::Agent,
        SampleLabel::Function,
        SampleLabel::InvocationId,
        SampleLabel::SpanId,
        SampleLabel::TraceId,
        SampleLabel::Thread,
        SampleLabel::ThreadId,
    ];

    /// What local profiles (files, the live endpoint, `CpuReport::pprof`)
    /// carry by default: everything a drill-down into one invocation needs,
    /// that is every label but `thread_id` (the last of [`Self::ALL`]).
    pub const LOCAL_DEFAULT: &'static [SampleLabel] = Self::ALL.split_at(6).0;

    /// What Pyroscope receives by default: bounded labels, plus `span_id`,
    /// which Pyroscope keeps out of its series (span profiles).
    pub const PYROSCOPE_DEFAULT: &'static [SampleLabel] = &[
        SampleLabel::Agent,
        SampleLabel::Function,
        SampleLabel::Thread,
        SampleLabel::SpanId,
    ];

    /// What Cloud Profiler receives by default: bounded labels only.
    pub const CLOUD_PROFILER_DEFAULT: &'static [SampleLabel] = &[
        SampleLabel::Agent,
        SampleLabel::Function,
        SampleLabel::Thread,
    ];

    /// The label's key in profiles and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SampleLabel::Agent => "agent",
            SampleLabel::Function => "function",
            SampleLabel::InvocationId => "invocation_id",
            SampleLabel::SpanId => "span_id",
            SampleLabel::TraceId => "trace_id",
            SampleLabel::Thread => "thread",
            SampleLabel::ThreadId => "thread_id",
        }
    }

    /// True when the label takes a new value per invocation or per thread,
    /// so that a backend which makes a series per label set would make one
    /// per invocation (or thread).
    pub fn unbounded(self) -> bool {
        matches!(
            self,
            SampleLabel::InvocationId | SampleLabel::TraceId | SampleLabel::ThreadId
        )
    }
}

impl fmt::Display for SampleLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SampleLabel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        SampleLabel::ALL
            .into_iter()
            .find(|l| l.as_str() == s.trim())
            .ok_or_else(|| {
                let allowed: Vec<&str> = SampleLabel::ALL.iter().map(|l| l.as_str()).collect();
                format!(
                    "unknown sample label {s:?}; allowed: {}",
                    allowed.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_backend_defaults_are_bounded() {
        for label in SampleLabel::ALL {
            assert_eq!(label.as_str().parse::<SampleLabel>(), Ok(label));
        }
        assert!("invocation".parse::<SampleLabel>().is_err());
        for defaults in [
            SampleLabel::PYROSCOPE_DEFAULT,
            SampleLabel::CLOUD_PROFILER_DEFAULT,
        ] {
            assert!(defaults.iter().all(|l| !l.unbounded()), "{defaults:?}");
        }
    }
}
