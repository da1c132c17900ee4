//! grail-fs: durable file writes.
//!
//! One job: put bytes or a whole directory at a path so that a reader (or the same
//! program after a crash or power loss) sees either the old content or the new content,
//! never a mix or a truncated file.
//!
//! - [`write_atomic`] writes a file through a unique temporary sibling, fsyncs it, renames
//!   it over the target and fsyncs the parent directory.
//! - [`replace_dir`] swaps a fully written staged directory into place; [`StagedDir`]
//!   creates such a staging directory next to its destination and removes it again if it
//!   is never committed.
//! - [`sync_dir`] fsyncs a directory, making renames and new entries in it durable.
//!
//! Temporary names are hidden siblings of the target, `.{name}.tmp-{pid}-{n}` (and
//! `.{name}.old-{pid}-{n}` for a directory being replaced), where `n` comes from a
//! process-wide counter, so concurrent writers in one process or in several processes
//! never share a temporary file. Everything uses `std` only.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes the temporary names of concurrent writers within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The directory `path` lives in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A hidden sibling of `path` that no other writer uses: `.{name}.{tag}-{pid}-{n}`.
fn unique_sibling(path: &Path, tag: &str) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not end in a file name", path.display()),
        )
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(parent_of(path).join(format!(
        ".{}.{tag}-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Writes `bytes` to `path` atomically and durably.
///
/// The parent directories are created; the bytes go to a unique temporary file in the
/// same directory, which is fsynced and renamed over `path`; then the directory is
/// fsynced so the rename itself survives a crash. Readers see the old content or the new
/// content, never a partial file. On failure the temporary file is removed and `path` is
/// left as it was (unless only the final directory fsync failed: then `path` already
/// holds the new content, but its durability is not confirmed).
///
/// New files get the default permissions (`0o666` less the umask on Unix); use
/// [`write_atomic_mode`] for secrets.
///
/// # Errors
/// Any I/O error creating the parent directories, creating, writing or syncing the
/// temporary file, renaming it over `path` (for instance when `path` is a non-empty
/// directory), or syncing the parent directory. An [`io::ErrorKind::InvalidInput`] error
/// when `path` does not end in a file name (such as `..`).
pub fn write_atomic(path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    write_atomic_impl(path.as_ref(), bytes.as_ref(), OpenOptions::new())
}

/// [`write_atomic`] creating the file with Unix permission bits `mode` (such as `0o600`
/// for a key file; the umask still applies). The temporary file has these permissions
/// from the moment it is created, so the content is never readable with wider ones.
///
/// # Errors
/// As [`write_atomic`].
#[cfg(unix)]
pub fn write_atomic_mode(
    path: impl AsRef<Path>,
    bytes: impl AsRef<[u8]>,
    mode: u32,
) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.mode(mode);
    write_atomic_impl(path.as_ref(), bytes.as_ref(), options)
}

fn write_atomic_impl(path: &Path, bytes: &[u8], mut options: OpenOptions) -> io::Result<()> {
    let parent = parent_of(path);
    std::fs::create_dir_all(parent)?;
    let tmp = unique_sibling(path, "tmp")?;
    // `create_new`: never write through a file (or link) someone else put there.
    let mut file = options.write(true).create_new(true).open(&tmp)?;
    let written = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // The write already failed; a failure to clean up cannot be reported better.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(parent)
}

/// Fsyncs the directory `path`, so that entries created, renamed or removed in it
/// survive a crash. A no-op on platforms other than Unix (where directories cannot be
/// opened for syncing); there it only checks that `path` exists.
///
/// # Errors
/// Opening or syncing the directory failed (for instance it does not exist).
pub fn sync_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    #[cfg(unix)]
    {
        File::open(path)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).map(|_| ())
    }
}

/// Fsyncs every regular file under `dir` (recursively) and every directory, deepest
/// first. Symbolic links are not followed.
fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

/// Atomically replaces the directory `dest` with the fully written directory `staged`.
///
/// `staged` should be a sibling of `dest` (at least on the same file system), such as a
/// [`StagedDir`]. Steps: every file in `staged` and the directory itself are fsynced; an
/// existing `dest` is renamed aside to a unique hidden sibling; `staged` is renamed to
/// `dest`; the parent directory is fsynced; the old copy is removed. If renaming
/// `staged` fails, the old copy is moved back to `dest`.
///
/// Readers never see a partially written `dest`. A crash between the two renames leaves
/// no `dest` but the complete previous copy at `.{name}.old-{pid}-{n}` next to it (POSIX
/// has no portable atomic exchange of two directories).
///
/// # Errors
/// Any I/O error syncing `staged`, moving the old `dest` aside, renaming `staged` into
/// place or syncing the parent directory; `staged` is then left where it was, for the
/// caller to remove. If only removing the previous copy fails, `dest` already holds the
/// new content and the error names the leftover copy. An [`io::ErrorKind::InvalidInput`]
/// error when `dest` does not end in a file name.
pub fn replace_dir(staged: impl AsRef<Path>, dest: impl AsRef<Path>) -> io::Result<()> {
    let (staged, dest) = (staged.as_ref(), dest.as_ref());
    sync_tree(staged)?;
    let parent = parent_of(dest);
    let old = match std::fs::symlink_metadata(dest) {
        Ok(_) => {
            let old = unique_sibling(dest, "old")?;
            std::fs::rename(dest, &old)?;
            Some(old)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Err(e) = std::fs::rename(staged, dest) {
        if let Some(old) = &old {
            // Put the previous copy back; if even that fails it stays complete at `old`.
            let _ = std::fs::rename(old, dest);
        }
        return Err(e);
    }
    sync_dir(parent)?;
    let staged_parent = parent_of(staged);
    if staged_parent != parent {
        sync_dir(staged_parent)?;
    }
    if let Some(old) = old {
        let removed = match std::fs::symlink_metadata(&old) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&old),
            Ok(_) => std::fs::remove_file(&old),
            Err(e) => Err(e),
        };
        removed.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{} was replaced, but its previous copy {} could not be removed: {e}",
                    dest.display(),
                    old.display()
                ),
            )
        })?;
    }
    Ok(())
}

/// A staging directory next to a destination directory: fill [`StagedDir::path`], then
/// [`StagedDir::commit`] swaps it into place with [`replace_dir`]. Dropped without a
/// successful commit (an error while filling it, a panic), it is removed.
#[derive(Debug)]
pub struct StagedDir {
    path: PathBuf,
    dest: PathBuf,
}

impl StagedDir {
    /// Creates a new empty staging directory `.{name}.tmp-{pid}-{n}` next to `dest` (the
    /// parent directories of `dest` are created).
    ///
    /// # Errors
    /// Creating the parent directories or the staging directory failed, or `dest` does not
    /// end in a file name ([`io::ErrorKind::InvalidInput`]).
    pub fn new(dest: impl AsRef<Path>) -> io::Result<Self> {
        let dest = dest.as_ref();
        std::fs::create_dir_all(parent_of(dest))?;
        let path = unique_sibling(dest, "tmp")?;
        std::fs::create_dir(&path)?;
        Ok(Self {
            path,
            dest: dest.to_path_buf(),
        })
    }

    /// The staging directory to write into.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The destination it will replace.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Swaps the staged directory into place at [`StagedDir::dest`] (see
    /// [`replace_dir`]).
    ///
    /// # Errors
    /// As [`replace_dir`]; the staging directory is removed if it is still there.
    pub fn commit(self) -> io::Result<()> {
        // `self` drops at the end: after a successful swap the staging path no longer
        // exists and the drop finds nothing to remove.
        replace_dir(&self.path, &self.dest)
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        // Nothing to report to: a leftover hidden directory is the worst case.
        if std::fs::symlink_metadata(&self.path).is_ok() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_names_are_hidden_and_unique() {
        let a = unique_sibling(Path::new("dir/state.json"), "tmp").unwrap();
        let b = unique_sibling(Path::new("dir/state.json"), "tmp").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(Path::new("dir")));
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".state.json.tmp-"), "{name}");
        let bare = unique_sibling(Path::new("x"), "old").unwrap();
        assert_eq!(bare.parent(), Some(Path::new(".")));
        assert_eq!(
            unique_sibling(Path::new(".."), "tmp").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
