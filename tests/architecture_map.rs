//! ARCHITECTURE.md is the map of the code: every file and folder it names
//! must exist, or the map has drifted from the territory.

use std::path::{Path, PathBuf};

fn walk(dir: &Path, root: &Path, into: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "target" || name.starts_with('.') {
            continue;
        }
        let relative = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if path.is_dir() {
            into.push(format!("{relative}/"));
            walk(&path, root, into);
        } else {
            into.push(relative);
        }
    }
}

/// The `code spans` of the text that name a file (`*.rs`, `*.md`,
/// `*.toml`) or a folder (`name/`).
fn named_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (i, span) in text.split('`').enumerate() {
        // Odd pieces are inside backticks.
        if i % 2 == 0 || span.contains(char::is_whitespace) || span.contains("::") {
            continue;
        }
        let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
        if !span.chars().all(is_path_char) {
            continue;
        }
        let file = [".rs", ".md", ".toml"].iter().any(|e| span.ends_with(e));
        let folder = span.ends_with('/') && span.len() > 1;
        if file || folder {
            paths.push(span.to_owned());
        }
    }
    paths
}

#[test]
fn every_path_the_architecture_map_names_exists() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    let named = named_paths(&map);
    assert!(named.len() > 40, "the map names files: {named:?}");
    let missing: Vec<&String> = named
        .iter()
        .filter(|path| {
            !files
                .iter()
                .any(|f| f == *path || f.ends_with(&format!("/{path}")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}

#[test]
fn named_paths_are_code_spans_that_look_like_paths() {
    let text = "see `cpu/signal.rs`, `export/gcp/`, `Owner::key`, `a b.rs`, `x`, `README.md`";
    assert_eq!(
        named_paths(text),
        ["cpu/signal.rs", "export/gcp/", "README.md"]
    );
}
