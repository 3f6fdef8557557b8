//! Profiles as files: `cpu_profile_{timestamp}.pb.gz`,
//! `mem_profile_{timestamp}.pb.gz`, `flamegraph_{timestamp}.svg` and
//! `report_{timestamp}.json` per window.
//!
//! Writes are atomic (a temporary file renamed into place), the directory
//! is created owner-only (profiles reveal code structure and label values),
//! and retention keeps the newest windows within a count and a byte budget.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{timestamp, ProfileExporter, Window};
use crate::error::{Error, Result};
use crate::model::Report;

const PREFIXES: [&str; 4] = ["cpu_profile_", "mem_profile_", "flamegraph_", "report_"];

/// How much the file exporter keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRetention {
    /// Windows kept (each up to four files).
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

/// Writes each window's profiles into a directory.
#[derive(Debug)]
pub struct FileExporter {
    dir: PathBuf,
    retention: FileRetention,
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Export {
        exporter: "file".to_owned(),
        message: format!("{what} {}: {e}", path.display()),
    }
}

impl FileExporter {
    /// An exporter into `dir` (created at start if missing).
    pub fn new(dir: impl Into<PathBuf>, retention: FileRetention) -> Self {
        Self {
            dir: dir.into(),
            retention,
        }
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file name of a window's payload, `{prefix}_{YYYYMMDD_HHMMSS}`,
    /// with `_N` added when two windows end in the same second.
    fn file_name(&self, prefix: &str, window: &Window, extension: &str) -> PathBuf {
        let stamp = timestamp(window.end);
        let mut path = self.dir.join(format!("{prefix}{stamp}.{extension}"));
        let mut n = 2;
        while path.exists() {
            path = self.dir.join(format!("{prefix}{stamp}_{n}.{extension}"));
            n += 1;
        }
        path
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = self.dir.join(format!(".{name}.tmp"));
        let result = (|| {
            let mut file = fs::File::create(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temp, path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&temp);
            return Err(io_error(path, "cannot write", e));
        }
        self.enforce_retention();
        Ok(())
    }

    /// Deletes the oldest windows beyond the count and byte budgets.
    fn enforce_retention(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        // Group files by window timestamp (the part after the prefix);
        // names sort chronologically.
        let mut windows: BTreeMap<String, Vec<(PathBuf, u64)>> = BTreeMap::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(prefix) = PREFIXES.iter().find(|p| name.starts_with(**p)) else {
                continue;
            };
            let stamp = name[prefix.len()..]
                .split('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            let size = entry.metadata().map_or(0, |m| m.len());
            windows.entry(stamp).or_default().push((entry.path(), size));
        }
        let mut total: u64 = windows.values().flatten().map(|(_, size)| size).sum();
        let mut count = windows.len();
        for files in windows.values() {
            if count <= self.retention.max_windows && total <= self.retention.max_bytes {
                break;
            }
            for (path, size) in files {
                if fs::remove_file(path).is_ok() {
                    total -= size;
                }
            }
            count -= 1;
        }
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
        // Fail now, not at the first window, if we cannot write there.
        let probe = self.dir.join(".agentprof-write-check");
        fs::write(&probe, b"").map_err(|e| io_error(&self.dir, "cannot write into", e))?;
        let _ = fs::remove_file(&probe);
        Ok(())
    }

    fn export_cpu_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        self.write(&self.file_name("cpu_profile_", window, "pb.gz"), profile)
    }

    fn export_memory_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        self.write(&self.file_name("mem_profile_", window, "pb.gz"), profile)
    }

    fn export_flamegraph(&mut self, window: &Window, svg: &[u8]) -> Result<()> {
        self.write(&self.file_name("flamegraph_", window, "svg"), svg)
    }

    fn export_report(&mut self, window: &Window, report: &Report) -> Result<()> {
        let json = report.to_json_pretty()?;
        self.write(&self.file_name("report_", window, "json"), json.as_bytes())
    }
}
