//! Two CPU profiles (pprof, gzipped or not, as agentprof and Go write
//! them) as a differential flamegraph: frame widths from the second,
//! colours by how much each frame grew (red) or shrank (blue).

use std::collections::BTreeMap;

use agentprof_runtime::pprof::Profile;

/// The profile's CPU per stack, root first, in the folded format: the
/// `cpu` sample type when there is one (µs), else the first (counts).
fn folded(profile: &Profile) -> Result<String, String> {
    let index = profile
        .sample_type
        .iter()
        .position(|t| profile.string(t.r#type) == "cpu")
        .unwrap_or(0);
    let nanoseconds = profile
        .sample_type
        .get(index)
        .is_some_and(|t| profile.string(t.unit) == "nanoseconds");
    let mut stacks: BTreeMap<String, i64> = BTreeMap::new();
    for sample in &profile.sample {
        let mut names = profile.stack_names(sample);
        names.reverse();
        if names.is_empty() {
            continue;
        }
        let value = sample.value.get(index).copied().unwrap_or(0);
        let value = if nanoseconds { value / 1000 } else { value };
        *stacks.entry(names.join(";")).or_default() += value;
    }
    if stacks.is_empty() {
        return Err("it holds no samples".to_owned());
    }
    Ok(stacks
        .into_iter()
        .map(|(stack, value)| format!("{stack} {value}\n"))
        .collect())
}

pub fn read(path: &str, bytes: &[u8]) -> Result<String, String> {
    let profile = Profile::decode(bytes).map_err(|e| format!("{path}: {e}"))?;
    folded(&profile).map_err(|e| format!("{path}: {e}"))
}

pub fn differential_svg(before: &str, after: &str) -> Result<Vec<u8>, String> {
    let mut diff = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options::default(),
        before.as_bytes(),
        after.as_bytes(),
        &mut diff,
    )
    .map_err(|e| format!("differential: {e}"))?;
    let mut options = inferno::flamegraph::Options::default();
    options.title = "CPU difference".to_owned();
    options.count_name = "µs".to_owned();
    let mut svg = Vec::new();
    let diff = String::from_utf8_lossy(&diff);
    inferno::flamegraph::from_lines(&mut options, diff.lines(), &mut svg)
        .map_err(|e| format!("flamegraph: {e}"))?;
    Ok(svg)
}
