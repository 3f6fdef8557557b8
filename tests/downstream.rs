//! A crate that uses a library instrumented with `#[profiled]` compiles
//! with inference that foreign impls on primitives would break
//! (`assert!(v != Vec::new())`, `assert_eq!(4, xs.iter().sum())`), and runs.

use std::path::Path;
use std::process::Command;

#[test]
fn users_of_an_instrumented_library_keep_their_type_inference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let target = root.join("target").join("downstream-probe");
    let output = Command::new(cargo)
        .args(["run", "--quiet", "--manifest-path"])
        .arg(root.join("tests/downstream-probe/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .output()
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the downstream probe:\n{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("calls=1 json=true"),
        "the downstream probe printed: {stdout}"
    );
}
