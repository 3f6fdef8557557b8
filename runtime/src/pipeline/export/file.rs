//! Profiles as files: `cpu_profile_{timestamp}.pb.gz`,
//! `mem_profile_{timestamp}.pb.gz`, `flamegraph_{timestamp}.svg`,
//! `report_{timestamp}.json` and `report_{timestamp}.html` per window.
//!
//! The directory may be shared with other files and other programs, so the
//! exporter only ever touches what it wrote:
//! - writes are atomic: a temporary file with a random name, created
//!   exclusively (`O_EXCL`: never through a symlink, mode 0600), renamed
//!   into place;
//!   a name that is taken, by anything (a symlink included), is skipped;
//! - retention deletes only files listed in the exporter's manifest
//!   (`.agentprof-windows`), which it writes; a foreign file, even one named
//!   like ours, is never deleted nor counted toward `max_bytes`;
//! - a directory owned by another user or writable by others is refused.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{timestamp, ProfileExporter, Window};
use crate::error::{Error, Result};
use crate::model::Report;

/// The kinds of file a window has: name prefix and extension.
const KINDS: [(&str, &str); 5] = [
    ("cpu_profile_", "pb.gz"),
    ("mem_profile_", "pb.gz"),
    ("flamegraph_", "svg"),
    ("report_", "json"),
    ("report_", "html"),
];
const MANIFEST: &str = ".agentprof-windows";

/// How much the file exporter keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRetention {
    /// Windows kept (each up to five files).
    pub max_windows: usize,
    /// Bytes kept across all files.
    pub max_bytes: u64,
}

impl Default for FileRetention {
    fn default() -> Self {
        Self {
            max_windows: 48,
            max_bytes: 256 << 20,
        }
    }
}

/// One window's files, as the manifest lists them.
#[derive(Debug, Default)]
struct WrittenWindow {
    key: String,
    files: Vec<(String, u64)>,
}

/// Writes each window's profiles into a directory.
#[derive(Debug)]
pub struct FileExporter {
    dir: PathBuf,
    retention: FileRetention,
    /// Oldest first.
    written: VecDeque<WrittenWindow>,
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Export {
        exporter: "file".to_owned(),
        message: format!("{what} {}: {e}", path.display()),
    }
}

/// Whether `name` is exactly a name this exporter gives a window's file:
/// `{prefix}{YYYYMMDD_HHMMSS}[_N].{extension}`.
fn is_window_file(name: &str) -> bool {
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

/// A name nobody can guess in advance.
fn random_suffix() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// Creates `path` exclusively and owner-only. `O_CREAT | O_EXCL` fails on
/// any existing entry, a symlink (dangling or not) included, so nothing
/// planted at the name is followed or truncated.
fn create_new_private(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

impl FileExporter {
    /// An exporter into `dir` (created at start if missing).
    pub fn new(dir: impl Into<PathBuf>, retention: FileRetention) -> Self {
        Self {
            dir: dir.into(),
            retention,
            written: VecDeque::new(),
        }
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file name of a window's payload, `{prefix}{YYYYMMDD_HHMMSS}`,
    /// with `_N` added while the name is taken (by anything).
    fn file_name(&self, prefix: &str, window: &Window, extension: &str) -> (PathBuf, String) {
        let stamp = timestamp(window.end);
        let mut name = format!("{prefix}{stamp}.{extension}");
        let mut n = 2;
        while fs::symlink_metadata(self.dir.join(&name)).is_ok() {
            name = format!("{prefix}{stamp}_{n}.{extension}");
            n += 1;
        }
        (self.dir.join(&name), name)
    }

    fn write(
        &mut self,
        window: &Window,
        prefix: &str,
        extension: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let (path, name) = self.file_name(prefix, window, extension);
        let temp = self.dir.join(format!(".agentprof-{}.tmp", random_suffix()));
        let result = (|| {
            let mut file = create_new_private(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temp, &path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&temp);
            return Err(io_error(&path, "cannot write", e));
        }
        let key = format!(
            "{} {} {}",
            timestamp(window.end),
            std::process::id(),
            window.sequence
        );
        match self.written.back_mut() {
            Some(last) if last.key == key => last.files.push((name, bytes.len() as u64)),
            _ => self.written.push_back(WrittenWindow {
                key,
                files: vec![(name, bytes.len() as u64)],
            }),
        }
        self.enforce_retention();
        self.save_manifest()
    }

    /// Deletes our oldest windows beyond the count and byte budgets.
    fn enforce_retention(&mut self) {
        let mut total: u64 = self
            .written
            .iter()
            .flat_map(|w| &w.files)
            .map(|f| f.1)
            .sum();
        while self.written.len() > 1
            && (self.written.len() > self.retention.max_windows.max(1)
                || total > self.retention.max_bytes)
        {
            let Some(oldest) = self.written.pop_front() else {
                break;
            };
            for (name, size) in oldest.files {
                let path = self.dir.join(&name);
                // Only a regular file we listed: never through a symlink
                // someone put in its place since.
                if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                    let _ = fs::remove_file(&path);
                }
                total -= size;
            }
        }
    }

    fn save_manifest(&self) -> Result<()> {
        let mut text = String::new();
        for window in &self.written {
            for (name, size) in &window.files {
                text.push_str(&format!("{}\t{name}\t{size}\n", window.key));
            }
        }
        let path = self.dir.join(MANIFEST);
        let temp = self.dir.join(format!(".agentprof-{}.tmp", random_suffix()));
        let result = (|| {
            let mut file = create_new_private(&temp)?;
            file.write_all(text.as_bytes())?;
            fs::rename(&temp, &path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&temp);
            return Err(io_error(&path, "cannot write", e));
        }
        Ok(())
    }

    /// Windows an earlier run of the exporter listed, that are still there
    /// as regular files with the names we give.
    fn load_manifest(&mut self) {
        let path = self.dir.join(MANIFEST);
        if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return;
        }
        let Ok(text) = fs::read_to_string(&path) else {
            return;
        };
        for line in text.lines() {
            let mut fields = line.split('\t');
            let (Some(key), Some(name), Some(size)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Ok(size), true) = (size.parse::<u64>(), is_window_file(name)) else {
                continue;
            };
            if !fs::symlink_metadata(self.dir.join(name)).is_ok_and(|m| m.is_file()) {
                continue;
            }
            match self.written.back_mut() {
                Some(last) if last.key == key => last.files.push((name.to_owned(), size)),
                _ => self.written.push_back(WrittenWindow {
                    key: key.to_owned(),
                    files: vec![(name.to_owned(), size)],
                }),
            }
        }
    }

    fn refuse(&self, why: String) -> Error {
        Error::Export {
            exporter: "file".to_owned(),
            message: format!("refusing directory {}: {why}", self.dir.display()),
        }
    }

    /// Refuses a directory others may write to: files there could be
    /// replaced or planted by someone else.
    #[cfg(unix)]
    fn check_mode(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let dir = fs::metadata(&self.dir).map_err(|e| io_error(&self.dir, "cannot read", e))?;
        if dir.mode() & 0o002 != 0 {
            return Err(self.refuse(format!(
                "others may write to it (mode {:o}); use a directory of your own",
                dir.mode() & 0o7777
            )));
        }
        Ok(())
    }

    /// Refuses a directory another user owns; `probe` is a file we just
    /// created, so it is owned by the user we write as.
    #[cfg(unix)]
    fn check_owner(&self, probe: &Path) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let dir = fs::metadata(&self.dir).map_err(|e| io_error(&self.dir, "cannot read", e))?;
        let ours = fs::metadata(probe).map_err(|e| io_error(probe, "cannot read", e))?;
        if dir.uid() != ours.uid() {
            return Err(self.refuse(format!(
                "it belongs to user {}, and this process writes as user {}",
                dir.uid(),
                ours.uid()
            )));
        }
        Ok(())
    }
}

impl ProfileExporter for FileExporter {
    fn start(&mut self) -> Result<()> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.dir)
            .map_err(|e| io_error(&self.dir, "cannot create directory", e))?;
        #[cfg(unix)]
        self.check_mode()?;
        // Fail now, not at the first window, if we cannot write there.
        let probe = self
            .dir
            .join(format!(".agentprof-write-check-{}", random_suffix()));
        create_new_private(&probe).map_err(|e| io_error(&self.dir, "cannot write into", e))?;
        #[cfg(unix)]
        let checked = self.check_owner(&probe);
        #[cfg(not(unix))]
        let checked = Ok(());
        let _ = fs::remove_file(&probe);
        checked?;
        self.load_manifest();
        Ok(())
    }

    fn export_cpu_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        self.write(window, "cpu_profile_", "pb.gz", profile)
    }

    fn export_memory_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        self.write(window, "mem_profile_", "pb.gz", profile)
    }

    fn export_flamegraph(&mut self, window: &Window, svg: &[u8]) -> Result<()> {
        self.write(window, "flamegraph_", "svg", svg)
    }

    fn export_report(&mut self, window: &Window, report: &Report) -> Result<()> {
        let json = report.to_json_pretty()?;
        self.write(window, "report_", "json", json.as_bytes())
    }

    fn export_html_report(&mut self, window: &Window, html: &str) -> Result<()> {
        self.write(window, "report_", "html", html.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::is_window_file;

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
}
