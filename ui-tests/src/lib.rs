//! Compile-pass and compile-fail cases of `#[profiled]`; see tests/ui.rs.
