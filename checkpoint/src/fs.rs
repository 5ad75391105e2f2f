//! The one way to make a small file durable: temp file, fsync, rename, fsync the directory.
//!
//! After a crash at any point, `path` holds either its old content (or nothing) or the complete
//! new content, never a mix; a crash may leave a `.<name>.<pid>-<n>.tmp` file behind, which
//! nothing reads.

use crate::error::{CheckpointError, Result};
use crate::layout::temp_sibling;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
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

/// Sizes the empty, just created `file` to `len` bytes with every block allocated on disk, so
/// that writing anywhere in it through a memory map cannot fail for lack of space.
///
/// `set_len` alone makes a sparse file: its blocks are allocated only when a write through the
/// map first touches them, and if the file system is full then, the process gets `SIGBUS`
/// instead of an error. Reserving the blocks up front turns that into `ENOSPC` here.
///
/// On Linux, Android and FreeBSD this is `posix_fallocate` (one call; glibc emulates it on
/// file systems without `fallocate`); elsewhere, or where the file system refuses it
/// (`EOPNOTSUPP`, e.g. musl on such a file system), zeros are written with `write(2)`.
/// Copy-on-write file systems (btrfs, ZFS) may still allocate on write; no call can promise
/// otherwise there.
///
/// # Errors
/// What the operating system reports: [`io::ErrorKind::StorageFull`] (`ENOSPC`) when the file
/// system cannot hold `len` bytes, or `EFBIG` and the like.
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        use std::os::fd::AsRawFd;
        let off_len = libc::off_t::try_from(len).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{len} bytes is beyond the largest file offset"),
            )
        })?;
        if off_len == 0 {
            return file.set_len(0);
        }
        loop {
            // SAFETY: `posix_fallocate` only reads its integer arguments; the descriptor is
            // owned by `file`, which is borrowed (so open) for the whole call. It returns the
            // error number instead of setting errno.
            #[allow(unsafe_code, reason = "posix_fallocate is a libc call; SAFETY above")]
            let code = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, off_len) };
            match code {
                0 => return Ok(()),
                libc::EINTR => continue,
                libc::EOPNOTSUPP | libc::EINVAL => break, // not supported here: write zeros
                _ => return Err(io::Error::from_raw_os_error(code)),
            }
        }
    }
    write_zeros(file, len)
}

/// Extends the empty `file` to `len` bytes by writing zeros, so every block is allocated.
fn write_zeros(mut file: &File, len: u64) -> io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let zeros = [0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
        file.write_all(&zeros[..n])?;
        left -= n as u64;
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
    fn allocate_sizes_the_file_with_zeros() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        for len in [0u64, 1, 4095, 4096, 200_000] {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .expect("create");
            allocate(&file, len).expect("allocate");
            let bytes = fs::read(&path).expect("read");
            assert_eq!(bytes.len() as u64, len);
            assert!(bytes.iter().all(|&b| b == 0), "not all zeros at len {len}");
        }
    }

    #[test]
    fn write_zeros_sizes_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let file = File::create(&path).expect("create");
        write_zeros(&file, 150_001).expect("write zeros");
        assert_eq!(fs::read(&path).expect("read"), vec![0u8; 150_001]);
    }

    #[test]
    fn parent_of_a_bare_name_is_the_current_directory() {
        assert_eq!(parent_dir(Path::new("MANIFEST")), Path::new("."));
        assert_eq!(parent_dir(Path::new("a/MANIFEST")), Path::new("a"));
    }
}
