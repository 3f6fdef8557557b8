//! The global runtime switch. In its own test binary: flipping it affects
//! every invocation in the process.

mod common;

use agentprof::profiled;

#[test]
fn recording_off_costs_no_invocation() {
    common::setup();
    #[profiled(agent = "switched")]
    fn switched() -> bool {
        agentprof::propagation::current_context().is_empty()
    }
    // Other tests run concurrently; only this thread's view is asserted on.
    agentprof::set_enabled(false);
    let outside = switched();
    agentprof::set_enabled(true);
    assert!(outside, "no invocation is started while recording is off");
    assert!(!switched());
}
