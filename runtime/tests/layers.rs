//! The runtime's top-level modules form layers whose imports point one way,
//! down (ARCHITECTURE.md). This test reads every source file and fails on an
//! import that points up or sideways into a cycle, naming the file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first. A module may import modules of its own layer or below; the
/// whole graph must also be free of cycles.
const LAYERS: &[&[&str]] = &[
    &["error", "built_in", "model", "config", "fork"],
    &["thread", "profiler_cost"],
    &["aggregate"],
    &["invocation"],
    &["pprof", "unwind"],
    &["memory", "cpu"],
    &["report"],
    &["pipeline"],
    &["api", "lib"],
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

/// Every file with code the SIGPROF handler or the allocator hook reaches.
/// That code sits between `// safe zone:` and `// end of safe zone`
/// markers; the handler may interrupt `malloc` or a lock holder, and the
/// hook runs inside `malloc`, so there it may neither lock nor allocate.
const SAFE_ZONE_FILES: &[&str] = &[
    "cpu/signal.rs",
    "cpu/buffer.rs",
    "cpu/timer.rs",
    "unwind.rs",
    "thread/slot.rs",
    "thread/clock/mod.rs",
    "thread/memory.rs",
    "memory/allocator.rs",
    "memory/heap/mod.rs",
    "memory/heap/table.rs",
];

/// What locks or allocates.
const REFUSED_IN_SAFE_ZONE: &[&str] = &[
    "Mutex",
    "RwLock",
    "Box::new",
    "Vec",
    "vec!",
    "format!",
    "String",
    "println!",
    "eprintln!",
    "to_owned()",
    "to_string()",
    "collect",
];

/// The code lines inside safe zones, as (line number, text without its
/// comment).
fn safe_zone_lines(text: &str) -> Result<Vec<(usize, String)>, String> {
    let mut inside = None;
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("// safe zone:") {
            if inside.is_some() {
                return Err(format!(
                    "line {}: a safe zone opens inside another",
                    number + 1
                ));
            }
            inside = Some(number + 1);
            continue;
        }
        if trimmed == "// end of safe zone" {
            if inside.take().is_none() {
                return Err(format!(
                    "line {}: a safe zone ends that never opened",
                    number + 1
                ));
            }
            continue;
        }
        if inside.is_some() {
            let code = line.split("//").next().unwrap_or("").to_owned();
            lines.push((number + 1, code));
        }
    }
    match inside {
        Some(opened) => Err(format!("the safe zone opened at line {opened} never ends")),
        None => Ok(lines),
    }
}

fn refused_token(code: &str) -> Option<&'static str> {
    REFUSED_IN_SAFE_ZONE.iter().copied().find(|token| {
        code.match_indices(token).any(|(at, _)| {
            let word = |c: char| c.is_alphanumeric() || c == '_';
            let before = code[..at].chars().next_back().is_some_and(word);
            let after = code[at + token.len()..].chars().next().is_some_and(word);
            !before && (!after || token.ends_with(['!', ')', ':']))
        })
    })
}

#[test]
fn the_signal_and_allocator_safe_zone_neither_locks_nor_allocates() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    let mut zone_lines = 0;
    for file in &files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        let listed = SAFE_ZONE_FILES.contains(&relative.as_str());
        let lines = match safe_zone_lines(&text) {
            Ok(lines) => lines,
            Err(e) => {
                problems.push(format!("{relative}: {e}"));
                continue;
            }
        };
        if lines.is_empty() {
            if listed {
                problems.push(format!(
                    "{relative}: listed in SAFE_ZONE_FILES but has no safe zone"
                ));
            }
            continue;
        }
        if !listed {
            problems.push(format!(
                "{relative}: has a safe zone; add it to SAFE_ZONE_FILES"
            ));
        }
        zone_lines += lines.len();
        for (number, code) in lines {
            if let Some(token) = refused_token(&code) {
                problems.push(format!(
                    "{relative}:{number}: `{token}` in the safe zone: {}",
                    code.trim()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        zone_lines > 300,
        "the safe zone covers the handler and the hook: {zone_lines} lines"
    );
}

#[test]
fn the_handler_and_the_hook_are_in_the_safe_zone() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let entries = [
        ("cpu/signal.rs", "extern \"C\" fn on_sigprof("),
        ("cpu/signal.rs", "fn sample(session: &Session"),
        ("memory/allocator.rs", "GlobalAlloc for Allocator<A>"),
        ("memory/allocator.rs", "fn allocation_countdown_expired("),
        ("memory/heap/mod.rs", "pub(crate) fn record("),
        ("memory/heap/mod.rs", "pub(crate) fn on_free("),
        ("unwind.rs", "fn unwind_with<R>"),
        ("cpu/buffer.rs", "pub(crate) fn push("),
    ];
    for (file, entry) in entries {
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        let lines = safe_zone_lines(&text).unwrap();
        assert!(
            lines.iter().any(|(_, code)| code.contains(entry)),
            "{file}: `{entry}` is not inside a safe zone"
        );
    }
}

#[test]
fn refused_tokens_are_whole_words() {
    assert_eq!(refused_token("let v: Vec<u8> = x;"), Some("Vec"));
    assert_eq!(
        refused_token("static M: Mutex<()> = Mutex::new(());"),
        Some("Mutex")
    );
    assert_eq!(refused_token("let b = Box::new(1);"), Some("Box::new"));
    assert_eq!(
        refused_token("let s = name.to_owned();"),
        Some("to_owned()")
    );
    assert_eq!(
        refused_token("fn vectored(iov: &mut [libc::iovec]) {}"),
        None
    );
    assert_eq!(refused_token("let n = MAX_VECS;"), None);
    assert_eq!(refused_token("StringTable::new()"), None);
}
