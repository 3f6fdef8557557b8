//! The names a window's files get, and the manifest (`.agentprof-windows`)
//! that lists them: the exporter deletes only what it listed, so a foreign
//! file, even one named like ours, is never deleted nor counted.
//!
//! One line per file, `{window key}\t{name}\t{bytes}`, oldest window
//! first. The key is `{timestamp} {pid} {sequence}`: processes sharing a
//! directory keep their windows apart in one manifest.

use super::directory::OutputDir;
use super::Window;

/// The kinds of file a window has: name prefix and extension.
pub(super) const KINDS: [(&str, &str); 5] = [
    ("cpu_profile_", "pb.gz"),
    ("mem_profile_", "pb.gz"),
    ("flamegraph_", "svg"),
    ("report_", "json"),
    ("report_", "html"),
];
pub(super) const MANIFEST: &str = ".agentprof-windows";
/// A manifest longer than this is not ours.
const MANIFEST_LIMIT: u64 = 16 << 20;

/// One window's files, as the manifest lists them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct WrittenWindow {
    pub(super) key: String,
    pub(super) files: Vec<(String, u64)>,
}

impl WrittenWindow {
    pub(super) fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }
}

pub(super) fn window_key(window: &Window) -> String {
    format!(
        "{} {} {}",
        super::super::timestamp(window.end),
        std::process::id(),
        window.sequence
    )
}

/// Whether `name` is exactly a name this exporter gives a window's file:
/// `{prefix}{YYYYMMDD_HHMMSS}[_N].{extension}`.
pub(super) fn is_window_file(name: &str) -> bool {
    KINDS.iter().any(|(prefix, extension)| {
        let Some(rest) = name.strip_prefix(prefix) else {
            return false;
        };
        let Some(stem) = rest
            .strip_suffix(extension)
            .and_then(|s| s.strip_suffix('.'))
        else {
            return false;
        };
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        let mut parts = stem.split('_');
        let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
            return false;
        };
        let suffix_ok = match (parts.next(), parts.next()) {
            (None, _) => true,
            (Some(n), None) => !n.is_empty() && n.len() <= 6 && digits(n, n.len()),
            _ => false,
        };
        digits(date, 8) && digits(time, 6) && suffix_ok
    })
}

/// A staging file (`.agentprof-{16 hex}.tmp`) or write probe
/// (`.agentprof-write-check-{16 hex}`): names only agentprof creates.
pub(super) fn is_scratch_file(name: &str) -> bool {
    let hex = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(probe) = name.strip_prefix(".agentprof-write-check-") {
        return hex(probe);
    }
    name.strip_prefix(".agentprof-")
        .and_then(|s| s.strip_suffix(".tmp"))
        .is_some_and(hex)
}

/// The free name for a window's file: `{prefix}{timestamp}.{extension}`,
/// with `_N` added while the name is taken (by anything).
pub(super) fn free_name(dir: &OutputDir, stamp: &str, prefix: &str, extension: &str) -> String {
    let mut name = format!("{prefix}{stamp}.{extension}");
    let mut n = 2;
    while dir.entry(&name).is_some() {
        name = format!("{prefix}{stamp}_{n}.{extension}");
        n += 1;
    }
    name
}

pub(super) fn parse(text: &str) -> Vec<WrittenWindow> {
    let mut windows: Vec<WrittenWindow> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(key), Some(name), Some(size), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Ok(size), true) = (size.parse::<u64>(), is_window_file(name)) else {
            continue;
        };
        let file = (name.to_owned(), size);
        match windows.iter_mut().find(|w| w.key == key) {
            Some(window) => window.files.push(file),
            None => windows.push(WrittenWindow {
                key: key.to_owned(),
                files: vec![file],
            }),
        }
    }
    windows
}

pub(super) fn render(windows: &[WrittenWindow]) -> String {
    let mut text = String::new();
    for window in windows {
        for (name, size) in &window.files {
            text.push_str(&format!("{}\t{name}\t{size}\n", window.key));
        }
    }
    text
}

/// The windows listed in `dir`'s manifest whose files are still there as
/// regular files.
pub(super) fn load(dir: &OutputDir) -> Vec<WrittenWindow> {
    if !dir.is_file(MANIFEST) {
        return Vec::new();
    }
    let Some(text) = dir.read(MANIFEST, MANIFEST_LIMIT) else {
        return Vec::new();
    };
    let mut windows = parse(&text);
    for window in &mut windows {
        window.files.retain(|(name, _)| dir.is_file(name));
    }
    windows.retain(|w| !w.files.is_empty());
    windows
}

/// Replaces the manifest atomically.
pub(super) fn save(dir: &OutputDir, windows: &[WrittenWindow]) -> std::io::Result<()> {
    let temp = format!(".agentprof-{}.tmp", super::random_suffix());
    dir.write_new(&temp, render(windows).as_bytes())?;
    dir.rename_replace(&temp, MANIFEST).inspect_err(|_| {
        let _ = dir.remove(&temp);
    })
}

/// Deletes a window's files: only regular files, never through a symlink
/// someone put in their place since.
pub(super) fn delete(dir: &OutputDir, window: &WrittenWindow) {
    for (name, _) in &window.files {
        if dir.is_file(name) {
            let _ = dir.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_exact_names_are_window_files() {
        for ours in [
            "report_20261201_101500.json",
            "cpu_profile_20261201_101500_2.pb.gz",
            "mem_profile_20261201_101500.pb.gz",
            "flamegraph_20261201_101500_12.svg",
        ] {
            assert!(is_window_file(ours), "{ours}");
        }
        for foreign in [
            "report_2023.pdf",
            "report_20261201_101500.pdf",
            "report_20261201_101500.json.bak",
            "cpu_profile_20261201_101500.svg",
            "flamegraph_2026120_101500.svg",
            "report_20261201_101500_x.json",
            "report_20261201_101500_1_2.json",
            "notes.txt",
        ] {
            assert!(!is_window_file(foreign), "{foreign}");
        }
    }

    #[test]
    fn scratch_names_are_exactly_ours() {
        assert!(is_scratch_file(".agentprof-0123456789abcdef.tmp"));
        assert!(is_scratch_file(".agentprof-write-check-0123456789abcdef"));
        for foreign in [
            ".agentprof-windows",
            ".agentprof-0123.tmp",
            ".agentprof-0123456789abcdeg.tmp",
            "agentprof-0123456789abcdef.tmp",
            ".agentprof-write-check-x",
        ] {
            assert!(!is_scratch_file(foreign), "{foreign}");
        }
    }

    #[test]
    fn the_manifest_round_trips_and_skips_lines_not_ours() {
        let windows = vec![
            WrittenWindow {
                key: "20261201_101500 7 1".to_owned(),
                files: vec![
                    ("report_20261201_101500.json".to_owned(), 10),
                    ("report_20261201_101500.html".to_owned(), 20),
                ],
            },
            WrittenWindow {
                key: "20261201_101500 8 1".to_owned(),
                files: vec![("report_20261201_101500_2.json".to_owned(), 30)],
            },
        ];
        let mut text = render(&windows);
        text.push_str("k\t../../etc/passwd\t1\nk\treport_20261201_101500.json\tx\ngarbage\n");
        assert_eq!(parse(&text), windows);
        assert_eq!(windows[0].bytes(), 30);
    }
}
