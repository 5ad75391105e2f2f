//! The one way to make a small file durable: temp file, fsync, rename, fsync the directory.
//!
//! After a crash at any point, `path` holds either its old content (or nothing) or the complete
//! new content, never a mix; a crash may leave a `.<name>.<pid>-<n>.tmp` file behind, which
//! nothing reads.

use crate::error::{CheckpointError, Result};
use crate::layout::temp_sibling;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temp files of concurrent writers within this process (the pid in the name
/// distinguishes processes).
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically and durably.
///
/// Writes a temp file in the same directory (a rename is only atomic within one file system),
/// fsyncs it, renames it over `path`, then fsyncs the directory so that the rename itself
/// survives a power loss. When this returns `Ok`, the new content is on disk.
///
/// # Errors
/// [`CheckpointError::Io`] naming the file or directory whose operation failed. The temp file
/// is removed on failure (best effort); `path` then still holds its previous content, or is
/// absent if it did not exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = temp_sibling(path, NEXT_TEMP.fetch_add(1, Ordering::Relaxed));
    let written = write_synced(&temp, bytes)
        .and_then(|()| fs::rename(&temp, path).map_err(|e| CheckpointError::io(path, e)));
    if let Err(error) = written {
        // The temp file may not exist (or the rename may have happened); either way it is
        // debris, and the original error is the one worth reporting.
        let _ = fs::remove_file(&temp);
        return Err(error);
    }
    fsync_dir(parent_dir(path))
}

/// Makes the entries of directory `dir` (files created, renamed or removed in it) durable.
///
/// A no-op on platforms that cannot open a directory for syncing (Windows), where renames are
/// journaled by the file system instead.
///
/// # Errors
/// [`CheckpointError::Io`] if `dir` cannot be opened or synced.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    if cfg!(unix) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| CheckpointError::io(dir, e))?;
    }
    Ok(())
}

/// The directory holding `path`; `.` for a bare file name.
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| CheckpointError::io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| CheckpointError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("MANIFEST");
        write_atomic(&path, b"first").expect("first write");
        write_atomic(&path, b"second, longer").expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"second, longer");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec!["MANIFEST"]);
    }

    #[test]
    fn write_atomic_into_a_missing_directory_fails_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent").join("MANIFEST");
        let error = write_atomic(&path, b"x").expect_err("no directory");
        assert!(matches!(error, CheckpointError::Io { .. }), "{error}");
        assert!(error.to_string().contains("absent"), "{error}");
    }

    #[test]
    fn parent_of_a_bare_name_is_the_current_directory() {
        assert_eq!(parent_dir(Path::new("MANIFEST")), Path::new("."));
        assert_eq!(parent_dir(Path::new("a/MANIFEST")), Path::new("a"));
    }
}
