//! Profiles as files: `cpu_profile_{timestamp}.pb.gz`,
//! `mem_profile_{timestamp}.pb.gz`, `flamegraph_{timestamp}.svg`,
//! `report_{timestamp}.json` and `report_{timestamp}.html` per window.
//!
//! What a window leaves on disk is all of it or nothing: its payloads are
//! staged as hidden files (`O_EXCL`, mode 0600, never through a symlink)
//! and [`ProfileExporter::finish_window`] gives them their names and lists
//! them in the manifest under the directory's lock; a failure on the way
//! removes what the window had staged or named.
//!
//! The directory may be shared with other files, other programs and other
//! agentprof processes (a rolling deploy onto one volume):
//! - retention deletes only files listed in the manifest
//!   (`.agentprof-windows`), so a foreign file, even one named like ours, is
//!   never deleted nor counted toward `max_bytes`;
//! - processes coordinate through the directory's advisory lock (`flock`):
//!   each commit re-reads the manifest, so retention applies to the
//!   windows of all of them and none is orphaned by another's rewrite;
//! - a name that is taken, by anything, is skipped for the next free one;
//! - a directory owned by another user, or that its group or others may
//!   write to, is refused; it is held open and re-checked at each window, and
//!   recreated (with the same checks) when removed or replaced.
//!
//! Before each file is staged, the exporter deletes its own oldest windows
//! until the filesystem keeps `min_free_bytes` free beyond it, as journald
//! does: a full disk costs old windows, not every new one.

mod directory;
mod manifest;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use self::directory::{export_error, io_error, OutputDir, Recheck};
use self::manifest::WrittenWindow;
use super::{timestamp, ProfileExporter, Window};
use crate::error::Result;
use crate::model::Report;

/// A staging file older than this was left by a process that died while
/// writing; younger ones may belong to a live process sharing the
/// directory.
const STALE_SCRATCH_AGE: Duration = Duration::from_secs(600);
/// Room kept for the manifest's rewrite beyond a window's files.
const MANIFEST_ROOM: u64 = 16 << 10;
/// The automatic free-space reserve: this share of the filesystem...
const AUTO_RESERVE_PERCENT: u64 = 5;
/// ...at most this many bytes.
const AUTO_RESERVE_CAP: u64 = 256 << 20;

/// How much the file exporter keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRetention {
    /// Windows kept (each up to five files), across every process writing
    /// to the directory.
    pub max_windows: usize,
    /// Bytes kept across all files.
    pub max_bytes: u64,
    /// Bytes the filesystem keeps free: before writing, the exporter deletes
    /// its own oldest windows to keep them, and a window that cannot fit
    /// fails whole. `None`: 5% of the filesystem, at most 256 MiB.
    pub min_free_bytes: Option<u64>,
}

impl Default for FileRetention {
    fn default() -> Self {
        Self {
            max_windows: 48,
            max_bytes: 256 << 20,
            min_free_bytes: None,
        }
    }
}

impl FileRetention {
    fn reserve(&self, filesystem_bytes: u64) -> u64 {
        self.min_free_bytes
            .unwrap_or((filesystem_bytes / 100 * AUTO_RESERVE_PERCENT).min(AUTO_RESERVE_CAP))
    }

    /// Removes the oldest windows (never the newest) beyond the count and
    /// byte budgets, returning them.
    fn prune(&self, windows: &mut Vec<WrittenWindow>) -> Vec<WrittenWindow> {
        let mut total: u64 = windows.iter().map(WrittenWindow::bytes).sum();
        let mut evicted = Vec::new();
        while windows.len() > 1
            && (windows.len() > self.max_windows.max(1) || total > self.max_bytes)
        {
            let oldest = windows.remove(0);
            total -= oldest.bytes();
            evicted.push(oldest);
        }
        evicted
    }
}

/// A file of the window being staged.
#[derive(Debug)]
struct StagedFile {
    temp: String,
    prefix: &'static str,
    extension: &'static str,
    bytes: u64,
}

/// The window whose payloads are arriving.
#[derive(Debug)]
struct StagedWindow {
    window: Window,
    files: Vec<StagedFile>,
    /// A payload could not be staged: the window is dropped whole.
    failed: bool,
}

/// Writes each window's profiles into a directory.
#[derive(Debug)]
pub struct FileExporter {
    path: PathBuf,
    retention: FileRetention,
    dir: Option<OutputDir>,
    staged: Option<StagedWindow>,
}

/// A name nobody can guess in advance.
fn random_suffix() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

impl FileExporter {
    /// An exporter into `dir` (created at start if missing). Files appear
    /// when a window is finished ([`ProfileExporter::finish_window`]);
    /// what a window not finished staged is removed.
    pub fn new(dir: impl Into<PathBuf>, retention: FileRetention) -> Self {
        Self {
            path: dir.into(),
            retention,
            dir: None,
            staged: None,
        }
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    fn open_dir(&mut self) -> Result<&mut OutputDir> {
        match &mut self.dir {
            Some(dir) => Ok(dir),
            None => Err(export_error(format!(
                "not started: call start() before exporting into {}",
                self.path.display()
            ))),
        }
    }

    /// Removes what `staged` holds (a window abandoned or failed).
    fn discard(&mut self) {
        let Some(staged) = self.staged.take() else {
            return;
        };
        if let Some(dir) = &self.dir {
            for file in &staged.files {
                let _ = dir.remove(&file.temp);
            }
        }
    }

    fn stage(
        &mut self,
        window: &Window,
        prefix: &'static str,
        extension: &'static str,
        bytes: &[u8],
    ) -> Result<()> {
        if self.staged.as_ref().map(|s| s.window) != Some(*window) {
            self.discard();
            self.staged = Some(StagedWindow {
                window: *window,
                files: Vec::new(),
                failed: false,
            });
            // Once per window: is the directory still the one we checked?
            let dir = self.open_dir()?;
            match dir.recheck() {
                Ok(Recheck::Unchanged) => {}
                #[cfg(feature = "enabled")]
                Ok(Recheck::Reopened) => tracing::warn!(
                    directory = %dir.path().display(),
                    "agentprof's output directory was removed or replaced; \
                     recreated or reopened it after the same checks"
                ),
                #[cfg(not(feature = "enabled"))]
                Ok(Recheck::Reopened) => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
        if self.staged.as_ref().is_some_and(|s| s.failed) {
            // The window's first failure was reported; the rest of it is
            // not attempted.
            return Ok(());
        }
        let retention = self.retention;
        let dir = self.open_dir()?;
        let temp = format!(".agentprof-{}.tmp", random_suffix());
        let written = make_room(dir, &retention, bytes.len() as u64).and_then(|()| {
            dir.write_new(&temp, bytes)
                .map_err(|e| io_error(dir.path(), "cannot write a window's file into", e))
        });
        match written {
            Ok(()) => {
                if let Some(staged) = &mut self.staged {
                    staged.files.push(StagedFile {
                        temp,
                        prefix,
                        extension,
                        bytes: bytes.len() as u64,
                    });
                }
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Marks the window staged as failed, removing its files.
    fn fail(&mut self, e: crate::error::Error) -> crate::error::Error {
        if let (Some(dir), Some(staged)) = (&self.dir, &mut self.staged) {
            for file in staged.files.drain(..) {
                let _ = dir.remove(&file.temp);
            }
            staged.failed = true;
        }
        e
    }
}

/// Deletes the oldest windows in the directory (of every process writing
/// there) until `incoming` bytes fit above the reserve.
fn make_room(dir: &OutputDir, retention: &FileRetention, incoming: u64) -> Result<()> {
    let needed = |size: u64| retention.reserve(size) + incoming + MANIFEST_ROOM;
    let (free, size) = dir.space()?;
    if free >= needed(size) {
        return Ok(());
    }
    let _lock = dir.lock()?;
    let mut windows = manifest::load(dir);
    let no_room = |free: u64, size: u64, why: &str| {
        export_error(format!(
            "{} has {free} bytes free and keeps {} free ({}): a file of {incoming} bytes \
             does not fit, {why}; this window is skipped",
            dir.path().display(),
            retention.reserve(size),
            crate::config::keys::MIN_FREE_BYTES.path
        ))
    };
    let ours: u64 = windows.iter().map(WrittenWindow::bytes).sum();
    if free.saturating_add(ours) < needed(size) {
        // Deleting every window of ours would not make room: keep them.
        return Err(no_room(free, size, "even without the windows we keep"));
    }
    let mut deleted = false;
    let result = loop {
        let (free, size) = dir.space()?;
        if free >= needed(size) {
            break Ok(());
        }
        if windows.is_empty() {
            break Err(no_room(free, size, "with no window of ours left to delete"));
        }
        manifest::delete(dir, &windows.remove(0));
        deleted = true;
    };
    if deleted {
        // Best effort: entries of deleted files are dropped at the next
        // load anyway.
        let _ = manifest::save(dir, &windows);
    }
    result
}

/// Names the staged files, lists them, applies retention: under the lock,
/// so processes sharing the directory see each other's windows.
fn commit(dir: &OutputDir, retention: &FileRetention, staged: &StagedWindow) -> Result<()> {
    let _lock = dir.lock()?;
    let stamp = timestamp(staged.window.end);
    let mut windows = manifest::load(dir);
    let mut named: Vec<(String, u64)> = Vec::with_capacity(staged.files.len());
    let rollback = |named: &[(String, u64)]| {
        for (name, _) in named {
            let _ = dir.remove(name);
        }
    };
    for file in &staged.files {
        loop {
            let name = manifest::free_name(dir, &stamp, file.prefix, file.extension);
            match dir.rename_no_replace(&file.temp, &name) {
                Ok(()) => {
                    named.push((name, file.bytes));
                    break;
                }
                // Taken since we looked: the next free name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    rollback(&named);
                    return Err(io_error(dir.path(), "cannot name a window's file in", e));
                }
            }
        }
    }
    windows.push(WrittenWindow {
        key: manifest::window_key(&staged.window),
        files: named.clone(),
    });
    let evicted = retention.prune(&mut windows);
    if let Err(e) = manifest::save(dir, &windows) {
        // Unlisted files would be foreign to the next start: none stays.
        rollback(&named);
        return Err(io_error(dir.path(), "cannot update the manifest in", e));
    }
    for window in &evicted {
        manifest::delete(dir, window);
    }
    dir.sync();
    Ok(())
}

/// Removes scratch files a process that died mid-window left behind.
fn sweep_stale_scratch(dir: &OutputDir) {
    let now = SystemTime::now();
    for name in dir.names() {
        if !manifest::is_scratch_file(&name) || !dir.is_file(&name) {
            continue;
        }
        let Some(stat) = dir.entry(&name) else {
            continue;
        };
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(stat.st_mtime.max(0) as u64);
        if now
            .duration_since(modified)
            .is_ok_and(|age| age > STALE_SCRATCH_AGE)
        {
            let _ = dir.remove(&name);
        }
    }
}

impl Drop for FileExporter {
    fn drop(&mut self) {
        self.discard();
    }
}

impl ProfileExporter for FileExporter {
    fn start(&mut self) -> Result<()> {
        let dir = OutputDir::open(&self.path)?;
        {
            let _lock = dir.lock()?;
            sweep_stale_scratch(&dir);
            // Compact: entries whose files are gone.
            let windows = manifest::load(&dir);
            if dir.is_file(manifest::MANIFEST) {
                let _ = manifest::save(&dir, &windows);
            }
        }
        self.dir = Some(dir);
        Ok(())
    }

    fn export_cpu_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        self.stage(window, "cpu_profile_", "pb.gz", profile)
    }

    fn export_memory_profile(&mut self, window: &Window, profile: &[u8]) -> Result<()> {
        self.stage(window, "mem_profile_", "pb.gz", profile)
    }

    fn export_flamegraph(&mut self, window: &Window, svg: &[u8]) -> Result<()> {
        self.stage(window, "flamegraph_", "svg", svg)
    }

    fn export_report(&mut self, window: &Window, report: &Report) -> Result<()> {
        let json = report.to_json_pretty()?;
        self.stage(window, "report_", "json", json.as_bytes())
    }

    fn export_html_report(&mut self, window: &Window, html: &str) -> Result<()> {
        self.stage(window, "report_", "html", html.as_bytes())
    }

    fn finish_window(&mut self, window: &Window) -> Result<()> {
        let Some(staged) = self.staged.take_if(|s| s.window == *window) else {
            return Ok(());
        };
        if staged.failed || staged.files.is_empty() {
            return Ok(());
        }
        let retention = self.retention;
        let dir = self.open_dir()?;
        let result = commit(dir, &retention, &staged);
        if result.is_err() {
            for file in &staged.files {
                let _ = dir.remove(&file.temp);
            }
        }
        result
    }
}
