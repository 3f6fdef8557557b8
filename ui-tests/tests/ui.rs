//! Compile-pass and compile-fail cases of `#[profiled]` and `profile!`.
//!
//! The `.stderr` snapshots are compiler output, so they are checked on one
//! pinned compiler only.

#[rustversion::attr(
    not(stable(1.95)),
    ignore = "stderr snapshots are pinned to rustc 1.95"
)]
#[cfg_attr(miri, ignore)]
#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("pass/*.rs");
    cases.compile_fail("fail/*.rs");
}
