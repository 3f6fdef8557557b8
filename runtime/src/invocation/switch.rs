//! The global runtime switch.
//!
//! Recording starts on unless the environment turns it off
//! (`AGENTPROF_PROFILING_ENABLED=false` or `AGENTPROF_TELEMETRY_ENABLED=false`),
//! read at the first instrumented call, so the kill switch holds even in a
//! program that never loads a configuration. Nothing turns recording on
//! against it.

use std::sync::atomic::{AtomicU8, Ordering};

const OFF: u8 = 0;
const ON: u8 = 1;
/// Not decided yet: the environment is read at the first call.
const UNRESOLVED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNRESOLVED);

/// Turns recording on or off for invocations that start from now on.
/// Invocations already running finish their accounting. While the
/// environment's kill switch is set, recording stays off.
pub fn set_enabled(enabled: bool) {
    let on = enabled && !crate::config::env_turns_recording_off();
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
}

/// Whether new invocations are recorded.
#[inline]
pub fn is_enabled() -> bool {
    if !crate::built_in::RECORDING {
        return false;
    }
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => resolve(),
    }
}

#[cold]
fn resolve() -> bool {
    let on = !crate::config::env_turns_recording_off();
    let state = if on { ON } else { OFF };
    match STATE.compare_exchange(UNRESOLVED, state, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => on,
        // `set_enabled` decided meanwhile.
        Err(decided) => decided == ON,
    }
}
