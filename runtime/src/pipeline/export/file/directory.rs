//! The output directory, held open: every name is resolved relative to the
//! directory's descriptor, so a directory renamed, removed or swapped for
//! another at the same path is noticed instead of written into.
//!
//! The checks that decide whether a directory may be used (created 0700
//! when missing; refused when group or others may write to it, or when
//! another user owns it) run at start and again whenever the path no longer
//! leads to the directory held.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, RenameFlags, Stat, CWD};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// How long a window waits for another process's commit in the same
/// directory before it fails.
const LOCK_PATIENCE: Duration = Duration::from_secs(5);

pub(super) fn export_error(message: String) -> Error {
    Error::Export {
        exporter: "file".to_owned(),
        message,
    }
}

/// An open output directory.
#[derive(Debug)]
pub(super) struct OutputDir {
    path: PathBuf,
    fd: OwnedFd,
    /// (device, inode) of the directory held.
    identity: (u64, u64),
}

/// What [`OutputDir::recheck`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Recheck {
    Unchanged,
    /// The directory held was removed, or the path now leads elsewhere; a
    /// directory that passes the checks was opened (or created) in its
    /// place.
    Reopened,
}

/// Held while a process changes the windows and the manifest; released
/// on drop (or when the process dies: `flock` locks die with their
/// descriptor).
pub(super) struct DirLock<'a>(&'a OutputDir);

impl Drop for DirLock<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.0.fd, FlockOperation::Unlock);
    }
}

fn identity(stat: &Stat) -> (u64, u64) {
    (stat.st_dev, stat.st_ino)
}

impl OutputDir {
    /// Opens `path`, creating it (and its parents) owner-only when missing,
    /// and checks it may be used.
    pub(super) fn open(path: &Path) -> Result<OutputDir> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(path)
            .map_err(|e| io_error(path, "cannot create directory", e))?;
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_error(path, "cannot open directory", e.into()))?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| io_error(path, "cannot read", e.into()))?;
        let dir = OutputDir {
            path: path.to_owned(),
            fd,
            identity: identity(&stat),
        };
        dir.check_mode(&stat)?;
        dir.check_owner_and_writable(&stat)?;
        Ok(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn refuse(&self, why: String) -> Error {
        export_error(format!("refusing directory {}: {why}", self.path.display()))
    }

    /// Refuses a directory others may write to: files there could be
    /// replaced or planted by someone else (OpenSSH's StrictModes rule).
    fn check_mode(&self, stat: &Stat) -> Result<()> {
        let mode = stat.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            let who = if mode & 0o002 != 0 {
                "others"
            } else {
                "its group"
            };
            return Err(self.refuse(format!(
                "{who} may write to it (mode {mode:o}); use a directory of your own \
                 (agentprof creates a missing one with mode 700), or chmod go-w it"
            )));
        }
        Ok(())
    }

    /// Refuses a directory another user owns. A probe file created there
    /// belongs to the user this process writes as, and proves it can write.
    fn check_owner_and_writable(&self, dir: &Stat) -> Result<()> {
        let probe = format!(".agentprof-write-check-{}", super::random_suffix());
        let file = self
            .create_new(&probe)
            .map_err(|e| io_error(&self.path, "cannot write into", e))?;
        let ours = rustix::fs::fstat(&file);
        drop(file);
        let _ = self.remove(&probe);
        let ours = ours.map_err(|e| io_error(&self.path, "cannot read", e.into()))?;
        if dir.st_uid != ours.st_uid {
            return Err(self.refuse(format!(
                "it belongs to user {}, and this process writes as user {}",
                dir.st_uid, ours.st_uid
            )));
        }
        Ok(())
    }

    /// Whether the path still leads to the directory held; when it does
    /// not (removed, renamed, replaced), opens what is there now with the
    /// same checks, creating it if missing.
    pub(super) fn recheck(&mut self) -> Result<Recheck> {
        let held = rustix::fs::fstat(&self.fd)
            .map_err(|e| io_error(&self.path, "cannot read", e.into()))?;
        let at_path = rustix::fs::statat(CWD, &self.path, AtFlags::empty()).ok();
        let same = held.st_nlink > 0 && at_path.as_ref().map(identity) == Some(self.identity);
        if same {
            // The mode may have been loosened since start.
            self.check_mode(&held)?;
            return Ok(Recheck::Unchanged);
        }
        *self = OutputDir::open(&self.path)?;
        Ok(Recheck::Reopened)
    }

    /// Takes the directory's advisory lock, waiting up to
    /// [`LOCK_PATIENCE`] for another process to finish its commit.
    pub(super) fn lock(&self) -> Result<DirLock<'_>> {
        let deadline = Instant::now() + LOCK_PATIENCE;
        loop {
            match rustix::fs::flock(&self.fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(DirLock(self)),
                Err(Errno::WOULDBLOCK | Errno::INTR) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(Errno::WOULDBLOCK) => {
                    return Err(export_error(format!(
                        "another process held the lock of {} for over {} s; \
                         this window is skipped",
                        self.path.display(),
                        LOCK_PATIENCE.as_secs()
                    )))
                }
                Err(e) => return Err(io_error(&self.path, "cannot lock", e.into())),
            }
        }
    }

    /// Bytes an unprivileged writer may still use, and the filesystem's
    /// size.
    pub(super) fn space(&self) -> Result<(u64, u64)> {
        let vfs = rustix::fs::fstatvfs(&self.fd)
            .map_err(|e| io_error(&self.path, "cannot read the free space of", e.into()))?;
        Ok((
            vfs.f_bavail.saturating_mul(vfs.f_frsize),
            vfs.f_blocks.saturating_mul(vfs.f_frsize),
        ))
    }

    /// Creates `name` exclusively and owner-only: `O_EXCL` fails on any
    /// existing entry, a symlink (dangling or not) included, so nothing
    /// planted at the name is followed or truncated.
    pub(super) fn create_new(&self, name: &str) -> std::io::Result<std::fs::File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        Ok(std::fs::File::from(fd))
    }

    /// Writes `bytes` to a new file `name`, durably; nothing is left at the
    /// name when it fails.
    pub(super) fn write_new(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let result = self.create_new(name).and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        });
        if result.is_err() {
            let _ = self.remove(name);
        }
        result
    }

    /// The entry at `name`, not following a symlink.
    pub(super) fn entry(&self, name: &str) -> Option<Stat> {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).ok()
    }

    /// Whether `name` is a regular file (not a symlink to one).
    pub(super) fn is_file(&self, name: &str) -> bool {
        self.entry(name)
            .is_some_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::RegularFile)
    }

    /// Reads a regular file of at most `limit` bytes.
    pub(super) fn read(&self, name: &str, limit: u64) -> Option<String> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let mut text = String::new();
        std::fs::File::from(fd)
            .take(limit)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    }

    pub(super) fn remove(&self, name: &str) -> std::io::Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(Into::into)
    }

    /// Gives `from` the name `to`, failing with `AlreadyExists` when `to`
    /// is taken (by anything): never replaces a file.
    pub(super) fn rename_no_replace(&self, from: &str, to: &str) -> std::io::Result<()> {
        match rustix::fs::renameat_with(&self.fd, from, &self.fd, to, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(()),
            // Filesystems without renameat2 (NFS, older kernels): a hard
            // link fails on a taken name the same way.
            Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {
                rustix::fs::linkat(&self.fd, from, &self.fd, to, AtFlags::empty())?;
                let _ = self.remove(from);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Gives `from` the name `to`, replacing what is there (a symlink
    /// itself, never its target).
    pub(super) fn rename_replace(&self, from: &str, to: &str) -> std::io::Result<()> {
        rustix::fs::renameat(&self.fd, from, &self.fd, to).map_err(Into::into)
    }

    /// Makes the directory's entries durable.
    pub(super) fn sync(&self) {
        let _ = rustix::fs::fsync(self.fd.as_fd());
    }

    /// The names in the directory.
    pub(super) fn names(&self) -> Vec<String> {
        let Ok(dir) = rustix::fs::Dir::read_from(&self.fd) else {
            return Vec::new();
        };
        dir.filter_map(|entry| entry.ok())
            .filter_map(|entry| entry.file_name().to_str().ok().map(str::to_owned))
            .filter(|name| name != "." && name != "..")
            .collect()
    }
}

pub(super) fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    export_error(format!("{what} {}: {e}", path.display()))
}
