//! The file exporter's directory as a host really has it: shared with other
//! files, programs and agentprof processes, on a filesystem that fills up,
//! removed or swapped while the service runs. Nothing foreign is touched,
//! nothing planted is followed, no window is left half written, no file
//! of ours is orphaned.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use agentprof::export::{FileExporter, FileRetention, ProfileExporter, Window};

use common::TempDir;

const MANIFEST: &str = ".agentprof-windows";

fn window(sequence: u64) -> Window {
    let end = UNIX_EPOCH + Duration::from_secs(1_800_000_000 + 10 * sequence);
    Window {
        sequence,
        start: end - Duration::from_secs(10),
        end,
    }
}

fn private_dir(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The manifest's (window key, file name) pairs.
fn manifest(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join(MANIFEST)).unwrap_or_default();
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 3, "manifest line {line:?}");
            (fields[0].to_owned(), fields[1].to_owned())
        })
        .collect()
}

/// Asserts the directory holds exactly the files the manifest lists (plus
/// `foreign`), nothing staged, and each listed window has `files_per_window`
/// files. Returns how many windows it lists.
fn assert_consistent(dir: &Path, foreign: &[&str], files_per_window: usize) -> usize {
    let listed = manifest(dir);
    let mut listed_names: Vec<String> = listed.iter().map(|(_, n)| n.clone()).collect();
    listed_names.sort();
    let on_disk: Vec<String> = names(dir)
        .into_iter()
        .filter(|n| n != MANIFEST && !foreign.contains(&n.as_str()))
        .collect();
    assert_eq!(
        on_disk, listed_names,
        "files on disk and in the manifest differ (an orphan or a staged leftover)"
    );
    let mut keys: Vec<&String> = listed.iter().map(|(k, _)| k).collect();
    keys.dedup();
    for key in &keys {
        let files = listed.iter().filter(|(k, _)| k == *key).count();
        assert_eq!(
            files, files_per_window,
            "window {key} is partial: {listed:?}"
        );
    }
    keys.len()
}

/// Stages a window of a CPU profile and an HTML page and commits it.
fn export_window(
    exporter: &mut FileExporter,
    sequence: u64,
    bytes: usize,
) -> agentprof::Result<()> {
    let w = window(sequence);
    exporter.export_cpu_profile(&w, &vec![7u8; bytes])?;
    exporter.export_html_report(&w, &"h".repeat(bytes))?;
    exporter.finish_window(&w)
}

#[test]
fn retention_deletes_and_counts_only_what_the_exporter_wrote() {
    let dir = private_dir("shared-retention");
    let foreign = [
        ("report_2023.pdf", vec![1u8; 2 << 20]),
        ("report_20200101_000000.json", b"{\"mine\":true}".to_vec()),
        ("cpu_profile_20200101_000000.pb.gz", vec![2u8; 100]),
        ("notes.txt", b"keep me".to_vec()),
    ];
    for (name, bytes) in &foreign {
        std::fs::write(dir.0.join(name), bytes).unwrap();
    }
    let retention = FileRetention {
        max_windows: 2,
        max_bytes: 1 << 20,
        ..FileRetention::default()
    };
    let mut exporter = FileExporter::new(&dir.0, retention);
    exporter.start().unwrap();
    let report = agentprof::report::Report::default();
    for sequence in 1..=5 {
        exporter.export_report(&window(sequence), &report).unwrap();
        exporter
            .export_cpu_profile(&window(sequence), &[7u8; 1000])
            .unwrap();
        exporter.finish_window(&window(sequence)).unwrap();
    }
    for (name, bytes) in &foreign {
        assert_eq!(
            &std::fs::read(dir.0.join(name)).unwrap(),
            bytes,
            "{name} was touched"
        );
    }
    let ours: Vec<String> = names(&dir.0)
        .into_iter()
        .filter(|n| !foreign.iter().any(|(f, _)| f == n) && !n.starts_with('.'))
        .collect();
    // The two newest windows, two files each; the 2 MiB foreign file did
    // not count toward the byte budget.
    assert_eq!(ours.len(), 4, "{ours:?}");
    for name in &ours {
        let mode = std::fs::metadata(dir.0.join(name)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} is owner-only");
    }
    // A second exporter (a restart) picks up what the first wrote and
    // still leaves foreign files alone.
    let mut again = FileExporter::new(&dir.0, retention);
    again.start().unwrap();
    again.export_report(&window(6), &report).unwrap();
    again.finish_window(&window(6)).unwrap();
    for (name, _) in &foreign {
        assert!(dir.0.join(name).exists(), "{name} deleted after restart");
    }
    let after: Vec<String> = names(&dir.0)
        .into_iter()
        .filter(|n| n.starts_with("report_2027") || n.starts_with("cpu_profile_2027"))
        .collect();
    assert_eq!(after.len(), 3, "windows 5 and 6 remain: {after:?}");
}

#[test]
fn a_window_appears_whole_at_its_finish_or_not_at_all() {
    let dir = private_dir("shared-whole");
    let mut exporter = FileExporter::new(&dir.0, FileRetention::default());
    exporter.start().unwrap();
    let w = window(1);
    exporter.export_cpu_profile(&w, b"cpu").unwrap();
    exporter.export_html_report(&w, "<html>").unwrap();
    let staged: Vec<String> = names(&dir.0);
    assert!(
        staged.iter().all(|n| n.starts_with(".agentprof-")),
        "before its finish, nothing of the window has a window's name: {staged:?}"
    );
    exporter.finish_window(&w).unwrap();
    assert_eq!(assert_consistent(&dir.0, &[], 2), 1);

    // A window never finished (the caller moved on) leaves nothing.
    exporter.export_cpu_profile(&window(2), b"cpu").unwrap();
    exporter.export_cpu_profile(&window(3), b"cpu").unwrap();
    exporter.export_html_report(&window(3), "<html>").unwrap();
    exporter.finish_window(&window(3)).unwrap();
    assert_eq!(assert_consistent(&dir.0, &[], 2), 2);
    exporter.export_cpu_profile(&window(4), b"cpu").unwrap();
    drop(exporter);
    assert_eq!(assert_consistent(&dir.0, &[], 2), 2);
}

#[test]
fn symlinks_planted_at_our_names_are_never_followed() {
    let dir = private_dir("shared-symlinks");
    let victim_dir = TempDir::new("shared-symlinks-victim");
    let victim = victim_dir.0.join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let w = window(1);
    let planted = [
        "report_20270115_080010.json".to_owned(),
        MANIFEST.to_owned(),
    ];
    for name in &planted {
        std::os::unix::fs::symlink(&victim, dir.0.join(name)).unwrap();
    }
    let mut exporter = FileExporter::new(&dir.0, FileRetention::default());
    exporter.start().unwrap();
    exporter
        .export_report(&w, &agentprof::report::Report::default())
        .unwrap();
    exporter.finish_window(&w).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    // Our report went to the next free name.
    assert!(
        dir.0.join("report_20270115_080010_2.json").is_file(),
        "{:?}",
        names(&dir.0)
    );
    assert!(std::fs::symlink_metadata(dir.0.join(&planted[0]))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_directory_its_group_or_others_can_write_or_another_user_owns_is_refused() {
    for (mode, who) in [(0o777, "others may write"), (0o770, "its group may write")] {
        let dir = TempDir::new("shared-open");
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut exporter = FileExporter::new(&dir.0, FileRetention::default());
        let error = exporter.start().unwrap_err().to_string();
        assert!(
            error.contains(&dir.0.display().to_string()) && error.contains(who),
            "{mode:o}: {error}"
        );
        assert!(names(&dir.0).is_empty(), "nothing written there");
    }

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot make a directory another user owns; skipped");
        return;
    }
    let theirs = TempDir::new("shared-theirs");
    std::fs::set_permissions(&theirs.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&theirs.0, Some(65534), Some(65534)).unwrap();
    let mut exporter = FileExporter::new(&theirs.0, FileRetention::default());
    let error = exporter.start().unwrap_err().to_string();
    assert!(
        error.contains(&theirs.0.display().to_string()) && error.contains("belongs to user 65534"),
        "{error}"
    );
    assert!(names(&theirs.0).is_empty(), "nothing left behind");
}

#[test]
fn scratch_files_a_dead_process_left_are_swept_at_start() {
    let dir = private_dir("shared-scratch");
    let stale = ".agentprof-0123456789abcdef.tmp";
    let fresh = ".agentprof-fedcba9876543210.tmp";
    let foreign = ".agentprof-notes.tmp";
    for name in [stale, fresh, foreign] {
        std::fs::write(dir.0.join(name), b"x").unwrap();
    }
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for name in [stale, foreign] {
        std::fs::File::options()
            .write(true)
            .open(dir.0.join(name))
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }
    FileExporter::new(&dir.0, FileRetention::default())
        .start()
        .unwrap();
    assert_eq!(names(&dir.0), vec![fresh.to_owned(), foreign.to_owned()]);
}

#[test]
fn a_directory_removed_mid_run_is_recreated_and_one_replaced_is_checked_again() {
    let parent = private_dir("shared-replaced");
    let dir = parent.0.join("profiles");
    let mut exporter = FileExporter::new(&dir, FileRetention::default());
    exporter.start().unwrap();
    export_window(&mut exporter, 1, 100).unwrap();
    assert_eq!(assert_consistent(&dir, &[], 2), 1);

    // Removed: recreated owner-only, the window written there.
    std::fs::remove_dir_all(&dir).unwrap();
    export_window(&mut exporter, 2, 100).unwrap();
    assert_eq!(
        std::fs::metadata(&dir).unwrap().mode() & 0o777,
        0o700,
        "recreated owner-only"
    );
    assert_eq!(assert_consistent(&dir, &[], 2), 1);

    // Swapped for a directory anyone may write to: refused, nothing
    // written into it, nothing into the old one either.
    let moved = parent.0.join("moved");
    std::fs::rename(&dir, &moved).unwrap();
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = export_window(&mut exporter, 3, 100)
        .unwrap_err()
        .to_string();
    assert!(error.contains("others may write"), "{error}");
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    assert_eq!(assert_consistent(&moved, &[], 2), 1);

    // Made private: written there from the next window on.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    export_window(&mut exporter, 4, 100).unwrap();
    assert_eq!(assert_consistent(&dir, &[], 2), 1);

    // Loosened in place: refused too.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    let error = export_window(&mut exporter, 5, 100)
        .unwrap_err()
        .to_string();
    assert!(error.contains("its group may write"), "{error}");
    assert_eq!(assert_consistent(&dir, &[], 2), 1);
}

/// A filesystem of `bytes`, mounted for the test and unmounted when
/// dropped.
struct SmallFilesystem(PathBuf);

impl SmallFilesystem {
    fn mount(name: &str, bytes: u64) -> Option<SmallFilesystem> {
        let path = std::env::temp_dir().join(format!("agentprof-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700")])
            .arg("tmpfs")
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let _ = std::fs::remove_dir(&path);
            return None;
        }
        Some(SmallFilesystem(path))
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The free bytes of the filesystem holding `path`.
fn free_bytes(path: &Path) -> u64 {
    // SAFETY: a zeroed statvfs is a valid out-parameter; the path is a
    // NUL-terminated copy.
    unsafe {
        let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let mut vfs: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(path.as_ptr(), &mut vfs), 0);
        vfs.f_bavail as u64 * vfs.f_frsize as u64
    }
}

#[test]
fn a_full_disk_costs_the_oldest_windows_never_a_partial_one() {
    // A 256 KiB filesystem when the test may mount one; else a budget on
    // the temp dir's: the reserve is set to leave 256 KiB usable.
    let small = SmallFilesystem::mount("small-fs", 256 << 10);
    let fallback;
    let (root, reserve) = match &small {
        Some(fs) => (fs.0.clone(), 16 << 10),
        None => {
            eprintln!("cannot mount a tmpfs here: a reserve stands in for a small disk");
            fallback = private_dir("small-fs-budget");
            let reserve = free_bytes(&fallback.0).saturating_sub(256 << 10);
            (fallback.0.clone(), reserve)
        }
    };
    let dir = root.join("profiles");
    let retention = FileRetention {
        max_windows: 1000,
        max_bytes: 1 << 30,
        min_free_bytes: Some(reserve),
    };
    let mut exporter = FileExporter::new(&dir, retention);
    exporter.start().unwrap();
    // 80 KiB windows: two or three fit.
    for sequence in 1..=30 {
        export_window(&mut exporter, sequence, 40 << 10)
            .unwrap_or_else(|e| panic!("window {sequence} on a full disk: {e}"));
        let kept = assert_consistent(&dir, &[], 2);
        assert!((1..=3).contains(&kept), "window {sequence}: {kept} kept");
    }
    let kept = manifest(&dir);
    assert!(
        kept.iter().any(|(k, _)| k.ends_with(" 30")),
        "the newest window is kept: {kept:?}"
    );

    // A window larger than the disk: refused whole, naming the key, and
    // no window of ours deleted for it.
    let before = manifest(&dir);
    let error = export_window(&mut exporter, 31, 300 << 10)
        .unwrap_err()
        .to_string();
    assert!(error.contains("min_free_bytes"), "{error}");
    assert_eq!(manifest(&dir), before);
    assert_consistent(&dir, &[], 2);
    if small.is_none() {
        // Filling a real disk is not for a test.
        return;
    }

    // Someone else's file takes the disk: ours give way, theirs is kept.
    let fill = |name: &str| {
        let free = free_bytes(&dir);
        std::fs::write(
            dir.join(name),
            vec![1u8; free.saturating_sub(8 << 10) as usize],
        )
        .unwrap();
    };
    fill("their-data.bin");
    export_window(&mut exporter, 32, 40 << 10).unwrap();
    assert_eq!(assert_consistent(&dir, &["their-data.bin"], 2), 1);

    // Taken again, with nothing of ours left to give: the window fails
    // whole and says why.
    fill("more-of-their-data.bin");
    let theirs = ["their-data.bin", "more-of-their-data.bin"];
    let error = export_window(&mut exporter, 33, 40 << 10)
        .unwrap_err()
        .to_string();
    assert!(error.contains("min_free_bytes"), "{error}");
    assert!(assert_consistent(&dir, &theirs, 2) <= 1);
    for name in theirs {
        assert!(dir.join(name).is_file());
        std::fs::remove_file(dir.join(name)).unwrap();
    }

    // Room again: windows resume.
    export_window(&mut exporter, 34, 40 << 10).unwrap();
    assert!(assert_consistent(&dir, &[], 2) >= 1);
    drop(exporter);
    drop(small);
}

/// The environment variable that makes a run of this binary the second
/// process of `two_processes_share_one_directory_without_orphans`.
const SECOND_PROCESS_DIR: &str = "AGENTPROF_TEST_SECOND_PROCESS_DIR";

fn share_a_directory(dir: &Path, first_sequence: u64) {
    let retention = FileRetention {
        max_windows: 2,
        ..FileRetention::default()
    };
    let mut exporter = FileExporter::new(dir, retention);
    exporter.start().unwrap();
    for sequence in first_sequence..first_sequence + 12 {
        export_window(&mut exporter, sequence, 2000).unwrap();
    }
}

/// The second process: runs only when the parent test starts it.
#[test]
#[ignore = "the second process of two_processes_share_one_directory_without_orphans"]
fn second_process_sharing_a_directory() {
    if let Some(dir) = std::env::var_os(SECOND_PROCESS_DIR) {
        share_a_directory(Path::new(&dir), 1);
    }
}

#[test]
fn two_processes_share_one_directory_without_orphans() {
    let dir = private_dir("shared-two-processes");
    // Four overlapping pairs of runs, as restarts of a rolling deploy.
    for round in 0..4 {
        let second = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "second_process_sharing_a_directory",
                "--exact",
                "--include-ignored",
                "--test-threads=1",
            ])
            .env(SECOND_PROCESS_DIR, &dir.0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        share_a_directory(&dir.0, 100 * (round + 1));
        let output = second.wait_with_output().unwrap();
        assert!(
            output.status.success() && String::from_utf8_lossy(&output.stdout).contains("1 passed"),
            "round {round}: the second process failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let kept = assert_consistent(&dir.0, &[], 2);
        assert_eq!(kept, 2, "round {round}: max_windows = 2 across both");
    }
}
