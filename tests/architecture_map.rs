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
    let text = "see `cpu/signal.rs`, `pipeline/gcp/`, `Owner::key`, `a b.rs`, `x`, `README.md`";
    assert_eq!(
        named_paths(text),
        ["cpu/signal.rs", "pipeline/gcp/", "README.md"]
    );
}

/// The relative link targets of a markdown text: `[text](target)`, without
/// web addresses.
fn relative_links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|target| !target.contains("://") && !target.starts_with("mailto:"))
        .map(str::to_owned)
        .collect()
}

/// GitHub's anchor for a heading: lowercase, spaces to `-`, punctuation
/// other than `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| anchor(line.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_link_in_the_readme_and_docs_leads_somewhere() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "md") {
            pages.push(entry.path());
        }
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in relative_links(&text) {
            checked += 1;
            let (file, fragment) = match link.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (link.as_str(), None),
            };
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !target.exists() {
                broken.push(format!("{}: {link}", page.display()));
                continue;
            }
            if let Some(fragment) = fragment {
                let target_text = std::fs::read_to_string(&target).unwrap();
                if !anchors(&target_text).iter().any(|a| a == fragment) {
                    broken.push(format!("{}: {link} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "the pages link to each other: {checked} links"
    );
    assert!(broken.is_empty(), "links that lead nowhere: {broken:#?}");
}

#[test]
fn anchors_follow_github() {
    assert_eq!(
        anchor(" What the memory figures mean"),
        "what-the-memory-figures-mean"
    );
    assert_eq!(
        anchor("Compare two runs: a gate"),
        "compare-two-runs-a-gate"
    );
    assert_eq!(
        relative_links("[a](docs/x.md#y) [b](https://e.com) [c](#z)"),
        ["docs/x.md#y", "#z"]
    );
}
