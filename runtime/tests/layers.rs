//! The runtime's top-level modules form layers whose imports point one way,
//! down (ARCHITECTURE.md). This test reads every source file and fails on an
//! import that points up or sideways into a cycle, naming the file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first. A module may import modules of its own layer or below; the
/// whole graph must also be free of cycles.
const LAYERS: &[&[&str]] = &[
    &["error", "model", "config", "fork"],
    &["thread", "profiler_cost"],
    &["aggregate"],
    &["invocation"],
    &["pprof", "unwind"],
    &["memory", "cpu"],
    &["report"],
    &["pipeline"],
    &["noop", "lib"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| {
            panic!("module `{module}` is in no layer: add it to LAYERS and ARCHITECTURE.md")
        })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("file under src");
    let first = relative.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_owned()
}

/// Top-level modules named by `crate::` paths on a line, including
/// `crate::{a, b::c}` groups.
fn crate_references(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = &rest[..at];
        rest = &rest[at + "crate::".len()..];
        // `$crate::` and `agentprof_runtime::crate` do not count.
        if before.ends_with('$') || before.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            found.push(item);
        } else {
            found.push(rest.to_owned());
        }
    }
    found
        .into_iter()
        .filter_map(|path| {
            let head: String = path
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!head.is_empty() && head != "self").then_some(head)
        })
        .collect()
}

#[test]
fn runtime_modules_import_downward_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let top_level: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();

    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    for file in &files {
        let from = module_of(&src, file);
        let text = std::fs::read_to_string(file).expect("read source");
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for to in crate_references(line) {
                // Anything else resolves to lib.rs (its re-exports).
                let to = if top_level.contains(&to) {
                    to
                } else {
                    "lib".to_owned()
                };
                if to != from {
                    let place = format!(
                        "{}:{}",
                        file.strip_prefix(&src).unwrap().display(),
                        number + 1
                    );
                    edges.entry((from.clone(), to)).or_insert(place);
                }
            }
        }
    }

    let mut upward = Vec::new();
    for ((from, to), place) in &edges {
        if layer_of(to) > layer_of(from) {
            upward.push(format!("{from} -> {to} ({place})"));
        }
    }
    assert!(
        upward.is_empty(),
        "imports that point up a layer:\n{}",
        upward.join("\n")
    );

    // No cycles, even among modules of one layer.
    let graph: BTreeMap<&str, Vec<&str>> = edges.keys().fold(BTreeMap::new(), |mut g, (a, b)| {
        g.entry(a.as_str())
            .or_insert_with(Vec::new)
            .push(b.as_str());
        g
    });
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node);
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        let cycle = visit(node, &graph, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap().join(" -> ")
        );
    }
    // The check must see the layers it guards.
    assert!(edges.contains_key(&("invocation".to_owned(), "thread".to_owned())));
    assert!(edges.contains_key(&("report".to_owned(), "aggregate".to_owned())));
}

#[test]
fn references_are_read_from_groups_and_paths() {
    assert_eq!(crate_references("use crate::thread::slot;"), ["thread"]);
    assert_eq!(
        crate_references("use crate::{aggregate::{self, Row}, model::Outcome};"),
        ["aggregate", "model"]
    );
    assert_eq!(
        crate_references("let x = $crate::foo();"),
        Vec::<String>::new()
    );
}
