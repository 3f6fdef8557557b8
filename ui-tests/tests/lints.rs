//! The compile-pass corpus under clippy with `-D warnings`: what
//! `#[profiled]` generates must not make lints fire in user code. (rustc's
//! own lints are denied inside each case by `#![deny(warnings)]`.)

use std::path::Path;
use std::process::Command;

#[cfg_attr(miri, ignore)]
#[test]
fn pass_corpus_is_clippy_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(&cargo)
        .args(["clippy", "--quiet", "--bins", "--manifest-path"])
        .arg(root.join("lint-probe/Cargo.toml"))
        .arg("--target-dir")
        .arg(root.join("../target/lint-probe"))
        .args(["--", "-D", "warnings"])
        .output()
        .expect("run cargo clippy");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "clippy on the pass corpus:\n{stderr}"
    );
}
