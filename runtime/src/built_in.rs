//! Whether this build records, for the entry points that start recording.
//!
//! Built without the `enabled` feature every public type and function still
//! exists (one definition, for both builds), and the entry points refuse or
//! pass through. They check [`RECORDING`], a constant, so what lies behind
//! them is dead code the compiler removes; the profilers also hold a
//! [`Recording`] token that cannot exist in such a build, so a handle that
//! could reach the sampler or the heap tables is uninhabited and code using
//! it is removed too.

use crate::error::Error;

/// `cfg!(feature = "enabled")`.
pub(crate) const RECORDING: bool = cfg!(feature = "enabled");

/// Held by handles that exist only in a build that records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Recording(Token);

#[cfg(feature = "enabled")]
type Token = ();

/// No value: a build without the `enabled` feature has no recording handles.
#[cfg(not(feature = "enabled"))]
#[derive(Clone, Copy, Debug)]
enum Token {}

impl Recording {
    /// The token, or the error naming `what` a build without recording
    /// cannot start.
    #[inline]
    pub(crate) fn get(what: &str) -> Result<Recording, Error> {
        #[cfg(feature = "enabled")]
        {
            let _ = what;
            Ok(Recording(()))
        }
        #[cfg(not(feature = "enabled"))]
        Err(compiled_out(what))
    }
}

/// What a recording entry point answers in a build without the `enabled`
/// feature.
pub(crate) fn compiled_out(what: &str) -> Error {
    Error::Unsupported {
        key: "agentprof".to_owned(),
        what: format!("{what} (agentprof was built without its `enabled` feature)"),
        hint: Some("enable the `enabled` feature of agentprof".to_owned()),
    }
}
