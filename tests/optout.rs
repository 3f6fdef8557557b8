//! The compile-time opt-out: built without the `enabled` feature, an
//! instrumented fn compiles to the fn as written and the binary carries no
//! agentprof runtime. Built with it, both differ (so this test can fail).

use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSection, ObjectSymbol};

fn build_probe(instrumented: bool) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = root
        .join("target")
        .join("optout-probe")
        .join(if instrumented { "on" } else { "off" });
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cargo
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(root.join("tests/optout-probe/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    if instrumented {
        cargo.args(["--features", "instrumented"]);
    }
    let status = cargo.status().expect("run cargo");
    assert!(status.success(), "building the probe failed");
    target_dir.join("release")
}

/// Runs the probe's `api` binary, which uses every public item of the facade.
fn run_api(release_dir: &Path) -> String {
    let output = Command::new(release_dir.join("api"))
        .output()
        .expect("run the api probe");
    assert!(output.status.success(), "the api probe failed: {output:?}");
    String::from_utf8(output.stdout).expect("utf-8 output")
}

struct Probe {
    symbols: Vec<String>,
    annotated: Vec<u8>,
    plain: Vec<u8>,
}

fn inspect(binary: &Path) -> Probe {
    let data = std::fs::read(binary).expect("read probe binary");
    let file = object::File::parse(&*data).expect("parse probe binary");
    let code = |name: &str| -> Vec<u8> {
        let symbol = file
            .symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("symbol {name} in the probe"));
        let section = file
            .section_by_index(symbol.section_index().expect("defined symbol"))
            .unwrap();
        let bytes = section.data().unwrap();
        let start = (symbol.address() - section.address()) as usize;
        bytes[start..start + symbol.size() as usize].to_vec()
    };
    Probe {
        symbols: file
            .symbols()
            .filter_map(|s| s.name().ok().map(str::to_owned))
            .collect(),
        annotated: code("probe_annotated"),
        plain: code("probe_plain"),
    }
}

#[test]
fn opt_out_build_is_the_function_as_written() {
    let off_dir = build_probe(false);
    let off = inspect(&off_dir.join("optout-probe"));
    let leaked: Vec<&String> = off
        .symbols
        .iter()
        .filter(|s| s.contains("agentprof"))
        .collect();
    assert!(
        leaked.is_empty(),
        "agentprof symbols in the opt-out binary: {leaked:?}"
    );
    assert!(!off.annotated.is_empty());
    assert_eq!(
        off.annotated, off.plain,
        "opt-out machine code differs from the un-annotated fn"
    );

    let on_dir = build_probe(true);
    let on = inspect(&on_dir.join("optout-probe"));
    assert!(
        on.symbols.iter().any(|s| s.contains("agentprof_runtime")),
        "the instrumented probe links the runtime"
    );
    assert_ne!(
        on.annotated, on.plain,
        "the instrumented fn carries the instrumentation"
    );

    // The whole public API compiles unchanged in both builds; opt-out it
    // measures nothing and refuses to profile, recording it measures.
    let off_api = run_api(&off_dir);
    for expected in [
        "enabled=false",
        "cpu_refused=true",
        "usage=false",
        "rows=0",
        "sum=45",
        "exemplar=false",
        "not_kept=true",
    ] {
        assert!(off_api.contains(expected), "opt-out api probe: {off_api}");
    }
    let on_api = run_api(&on_dir);
    for expected in [
        "enabled=true",
        "cpu_refused=false",
        "usage=true",
        "outcome=Some(true)",
        "sum=45",
        "exemplar=true",
        "not_kept=true",
    ] {
        assert!(on_api.contains(expected), "recording api probe: {on_api}");
    }
}
