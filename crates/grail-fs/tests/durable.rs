//! Durable writes against real files.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use grail_fs::{replace_dir, sync_dir, write_atomic, StagedDir};

/// Names in `dir`.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn write_creates_parents_and_overwrite_keeps_new_content() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("a/b/state.json");
    write_atomic(&path, b"first, longer content").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"first, longer content");
    write_atomic(&path, "second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    assert_eq!(names(&root.path().join("a/b")), set(&["state.json"]));
}

#[test]
fn path_without_file_name_is_invalid_input() {
    let err = write_atomic("..", b"x").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn failure_when_parent_is_a_file_leaves_nothing_behind() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("plain");
    std::fs::write(&file, b"keep").unwrap();
    assert!(write_atomic(file.join("child.json"), b"x").is_err());
    assert_eq!(names(root.path()), set(&["plain"]));
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
}

#[test]
fn failed_rename_removes_the_temporary_file() {
    let root = tempfile::tempdir().unwrap();
    // The target is a non-empty directory: the temporary file is written, the rename
    // fails, and the temporary file must go.
    let target = root.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("inside"), b"x").unwrap();
    assert!(write_atomic(&target, b"new").is_err());
    assert_eq!(names(root.path()), set(&["target"]));
    assert_eq!(names(&target), set(&["inside"]));
}

#[test]
fn concurrent_writers_leave_one_complete_content() {
    let root = tempfile::tempdir().unwrap();
    let path = Arc::new(root.path().join("shared.bin"));
    const WRITERS: u8 = 8;
    const SIZE: usize = 256 * 1024;
    let threads: Vec<_> = (0..WRITERS)
        .map(|i| {
            let path = Arc::clone(&path);
            std::thread::spawn(move || {
                let bytes = vec![i; SIZE];
                for _ in 0..10 {
                    write_atomic(path.as_path(), &bytes).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let content = std::fs::read(path.as_path()).unwrap();
    assert_eq!(content.len(), SIZE);
    assert!(content.iter().all(|&b| b == content[0]));
    assert!(content[0] < WRITERS);
    assert_eq!(names(root.path()), set(&["shared.bin"]));
}

#[test]
fn replace_dir_without_existing_dest() {
    let root = tempfile::tempdir().unwrap();
    let staged = root.path().join("staged");
    std::fs::create_dir_all(staged.join("sub")).unwrap();
    std::fs::write(staged.join("a.txt"), b"a").unwrap();
    std::fs::write(staged.join("sub/b.txt"), b"b").unwrap();
    let dest = root.path().join("model");
    replace_dir(&staged, &dest).unwrap();
    assert_eq!(names(root.path()), set(&["model"]));
    assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"a");
    assert_eq!(std::fs::read(dest.join("sub/b.txt")).unwrap(), b"b");
}

#[test]
fn replace_dir_over_existing_dest_drops_the_old_content() {
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("model");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("old-only.txt"), b"old").unwrap();
    std::fs::write(dest.join("a.txt"), b"old a").unwrap();
    let staged = root.path().join("staged");
    std::fs::create_dir(&staged).unwrap();
    std::fs::write(staged.join("a.txt"), b"new a").unwrap();
    replace_dir(&staged, &dest).unwrap();
    assert_eq!(names(root.path()), set(&["model"]));
    assert_eq!(names(&dest), set(&["a.txt"]));
    assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"new a");
}

#[test]
fn replace_dir_failure_keeps_the_old_dest() {
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("model");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("a.txt"), b"old").unwrap();
    // No staged directory: nothing can be swapped in, and `dest` must stay.
    assert!(replace_dir(root.path().join("missing"), &dest).is_err());
    assert_eq!(names(root.path()), set(&["model"]));
    assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"old");
}

#[test]
fn staged_dir_commits_and_cleans_up() {
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("nested/ckpt");
    let staged = StagedDir::new(&dest).unwrap();
    assert_eq!(staged.dest(), dest.as_path());
    assert!(staged.path().is_dir());
    std::fs::write(staged.path().join("weights"), b"w1").unwrap();
    staged.commit().unwrap();
    assert_eq!(names(&root.path().join("nested")), set(&["ckpt"]));
    assert_eq!(std::fs::read(dest.join("weights")).unwrap(), b"w1");

    // Replaced by a second commit.
    let staged = StagedDir::new(&dest).unwrap();
    std::fs::write(staged.path().join("weights"), b"w2").unwrap();
    staged.commit().unwrap();
    assert_eq!(names(&root.path().join("nested")), set(&["ckpt"]));
    assert_eq!(std::fs::read(dest.join("weights")).unwrap(), b"w2");

    // Dropped without a commit: removed, `dest` untouched.
    let staged = StagedDir::new(&dest).unwrap();
    std::fs::write(staged.path().join("weights"), b"half").unwrap();
    drop(staged);
    assert_eq!(names(&root.path().join("nested")), set(&["ckpt"]));
    assert_eq!(std::fs::read(dest.join("weights")).unwrap(), b"w2");
}

#[test]
fn sync_dir_reports_a_missing_directory() {
    let root = tempfile::tempdir().unwrap();
    sync_dir(root.path()).unwrap();
    assert!(sync_dir(root.path().join("missing")).is_err());
}

#[cfg(unix)]
#[test]
fn write_atomic_mode_sets_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("hotkey");
    grail_fs::write_atomic_mode(&path, b"secret", 0o600).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read(&path).unwrap(), b"secret");
}
