//! Shared by the benches: reading this run's criterion estimates back, so
//! each bench can end with ratios computed from one run.

/// Mean estimate of `group/name` from this run, in ns (NaN if absent).
pub fn mean_ns(group: &str, name: &str) -> f64 {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = dir
        .join("criterion")
        .join(group)
        .join(name)
        .join("new")
        .join("estimates.json");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|value| value["mean"]["point_estimate"].as_f64())
        .unwrap_or(f64::NAN)
}
