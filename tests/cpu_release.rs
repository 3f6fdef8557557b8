//! Unwinding on a default release build (no frame pointers, no debug info
//! settings changed): a known chain of `#[inline(never)]` functions must
//! appear, in order, in the flamegraph and in `go tool pprof -top`.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn a_known_call_chain_in_a_release_binary_is_unwound_and_named() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Its own target directory: this runs while `cargo test` owns ours.
    let target = root.join("target").join("release-probe");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args([
            "build",
            "--release",
            "--quiet",
            "--example",
            "cpu_chain",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the release probe failed");
    let out = target.join("chain-output");
    let run = Command::new(target.join("release/examples/cpu_chain"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let folded = std::fs::read_to_string(out.join("folded.txt")).unwrap();
    let chain = folded
        .lines()
        .find(|l| l.contains("chain_inner"))
        .unwrap_or_else(|| panic!("no chain_inner stack in:\n{folded}"));
    let outer = chain.find("cpu_chain::chain_outer").expect("outer frame");
    let middle = chain.find("cpu_chain::chain_middle").expect("middle frame");
    let inner = chain.find("cpu_chain::chain_inner").expect("inner frame");
    assert!(
        outer < middle && middle < inner,
        "root-first order: {chain}"
    );
    assert!(chain.contains("cpu_chain::main"), "{chain}");

    let svg = std::fs::read_to_string(out.join("flamegraph.svg")).unwrap();
    assert!(svg.contains("cpu_chain::chain_inner") && svg.contains("cpu_chain::chain_outer"));

    if let Some(top) = common::go_pprof(&["-top"], out.join("cpu.pb.gz")) {
        let line = top
            .lines()
            .find(|l| l.contains("chain_inner"))
            .unwrap_or_else(|| panic!("{top}"));
        let flat: f64 = line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap();
        assert!(flat > 80.0, "chain_inner should hold the CPU:\n{top}");
        assert!(
            top.contains("chain_middle") && top.contains("chain_outer"),
            "{top}"
        );
    }
}
