//! Writing one task's snapshot file through a memory map.

use crate::error::{CheckpointError, Result};
use crate::format::{bincode_options, SnapshotHeader, MAX_OPERATOR_UID_LEN};
use crate::fs::allocate;
use crate::CheckpointId;
use bincode::Options;
use memmap2::MmapOptions;
use serde::Serialize;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

/// What a task reports to the coordinator about the snapshot file it wrote; the coordinator
/// copies it into the manifest's [`SnapshotEntry`](crate::SnapshotEntry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The file's name, without its directory.
    pub file: String,
    /// Size of the whole file (header and payload) in bytes.
    pub bytes: u64,
    /// CRC-32 of the payload, as stored in the header.
    pub checksum: u32,
}

/// Writes `payload` as the snapshot of task `task` of operator `operator_uid` for
/// `checkpoint`, and makes the file durable.
///
/// An existing file at `path` (debris of an aborted attempt) is unlinked first and a new one is
/// created, so a file this function maps is never one that another map already reads. The
/// file's directory entry becomes durable with the directory fsync of the manifest commit
/// ([`CheckpointStore::commit`](crate::CheckpointStore::commit)), which lives in the same
/// directory; until then the checkpoint is not complete anyway.
///
/// # Errors
/// - [`CheckpointError::InvalidArgument`] if `operator_uid` is longer than
///   [`MAX_OPERATOR_UID_LEN`] bytes or `path` has no UTF-8 file name.
/// - [`CheckpointError::Io`] if creating, sizing, mapping, flushing or syncing fails; the
///   partial file is removed (best effort) and must not be listed in a manifest. A full disk
///   is reported here (`ENOSPC` from reserving the file's blocks before it is mapped), never
///   as a fault while writing through the map.
pub fn write_snapshot(
    path: &Path,
    operator_uid: &str,
    task: u32,
    checkpoint: CheckpointId,
    payload: &[u8],
) -> Result<SnapshotInfo> {
    let target = Target::new(path, operator_uid, task, checkpoint)?;
    target.write(len_u64(payload.len()), |dst| {
        dst.copy_from_slice(payload);
        Ok(())
    })
}

/// Like [`write_snapshot`], with the payload being `value` encoded by bincode directly into the
/// mapped file (no intermediate buffer). Read it back with [`Snapshot::decode`].
///
/// [`Snapshot::decode`]: crate::Snapshot::decode
///
/// # Errors
/// As [`write_snapshot`], and [`CheckpointError::Encode`] if `value` cannot be serialized (or
/// serializes to a different size than bincode predicted, which a `Serialize` impl that is not
/// deterministic can cause).
pub fn write_snapshot_serialized<T: Serialize + ?Sized>(
    path: &Path,
    operator_uid: &str,
    task: u32,
    checkpoint: CheckpointId,
    value: &T,
) -> Result<SnapshotInfo> {
    let target = Target::new(path, operator_uid, task, checkpoint)?;
    let what = || {
        format!(
            "state of operator '{operator_uid}' task {task} for {}",
            path.display()
        )
    };
    let len =
        bincode_options()
            .serialized_size(value)
            .map_err(|source| CheckpointError::Encode {
                what: what(),
                source,
            })?;
    target.write(len, |dst| {
        let mut rest = &mut *dst;
        bincode_options()
            .serialize_into(&mut rest, value)
            .map_err(|source| CheckpointError::Encode {
                what: what(),
                source,
            })?;
        if !rest.is_empty() {
            let source = Box::new(bincode::ErrorKind::Custom(format!(
                "value serialized {} bytes short of its predicted size",
                rest.len()
            )));
            return Err(CheckpointError::Encode {
                what: what(),
                source,
            });
        }
        Ok(())
    })
}

/// A validated destination for one snapshot file.
struct Target<'a> {
    path: &'a Path,
    file_name: String,
    operator_uid: &'a str,
    task: u32,
    checkpoint: CheckpointId,
}

impl<'a> Target<'a> {
    fn new(
        path: &'a Path,
        operator_uid: &'a str,
        task: u32,
        checkpoint: CheckpointId,
    ) -> Result<Target<'a>> {
        if operator_uid.len() > MAX_OPERATOR_UID_LEN {
            return Err(CheckpointError::InvalidArgument {
                what: format!(
                    "operator uid is {} bytes long, the maximum is {MAX_OPERATOR_UID_LEN}",
                    operator_uid.len()
                ),
            });
        }
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| CheckpointError::InvalidArgument {
                what: format!("snapshot path {} has no UTF-8 file name", path.display()),
            })?
            .to_owned();
        Ok(Target {
            path,
            file_name,
            operator_uid,
            task,
            checkpoint,
        })
    }

    /// Creates the file, lets `fill` write exactly `payload_len` bytes into the mapped payload
    /// area, then writes the header and makes everything durable.
    fn write(
        self,
        payload_len: u64,
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<SnapshotInfo> {
        let result = self.write_inner(payload_len, fill);
        if result.is_err() {
            // A partial file is harmless (no manifest lists it) but it is debris.
            let _ = fs::remove_file(self.path);
        }
        result
    }

    fn write_inner(
        &self,
        payload_len: u64,
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<SnapshotInfo> {
        let io_error = |e| CheckpointError::io(self.path, e);
        let header_len = SnapshotHeader::encoded_len(self.operator_uid.len());
        let total = len_u64(header_len)
            .checked_add(payload_len)
            .filter(|&n| usize::try_from(n).is_ok())
            .ok_or_else(|| CheckpointError::InvalidArgument {
                what: format!("a payload of {payload_len} bytes cannot be mapped on this platform"),
            })?;
        match fs::remove_file(self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error(e)),
            _ => {}
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path)
            .map_err(io_error)?;
        // The header alone is at least 42 bytes, so the map is never zero-length (which some
        // platforms refuse), even for an empty payload. The blocks are reserved, not just the
        // length set: a sparse file would allocate them on the first write through the map,
        // and on a full disk that write faults (SIGBUS) instead of returning ENOSPC.
        allocate(&file, total).map_err(io_error)?;
        // SAFETY: the file was created just above with `create_new`, so no other map, in this
        // process or another snapflow process, refers to it; snapshot files are written once,
        // by this one task, and never modified afterwards. Nothing in snapflow can change it
        // while this map is alive. Its blocks are allocated (`allocate` above), so writing
        // through the map needs no space from the file system. An outside process truncating
        // the file meanwhile would make our writes fault (SIGBUS), outside what Rust's memory
        // model covers (UB-adjacent); we accept that, as every user of memmap2's file-backed
        // maps must.
        // `populate` maps every page in one call instead of taking a page fault per 4 KiB as
        // the payload is written, which made the write 3x slower than write(2) for large
        // states (benches/snapshot.rs).
        #[allow(
            unsafe_code,
            reason = "memmap2 maps a file that could change underneath; SAFETY above"
        )]
        let mut map = unsafe { MmapOptions::new().populate().map_mut(&file) }.map_err(io_error)?;
        let (head, body) = map.split_at_mut(header_len);
        fill(body)?;
        let header = SnapshotHeader {
            operator_uid: self.operator_uid.to_owned(),
            task: self.task,
            checkpoint: self.checkpoint,
            payload_len,
            payload_checksum: crc32fast::hash(body),
        };
        head.copy_from_slice(&header.encode()?);
        map.flush().map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        Ok(SnapshotInfo {
            file: self.file_name.clone(),
            bytes: total,
            checksum: header.payload_checksum,
        })
    }
}

fn len_u64(len: usize) -> u64 {
    // usize is at most 64 bits on every platform Rust supports.
    u64::try_from(len).unwrap_or(u64::MAX)
}
