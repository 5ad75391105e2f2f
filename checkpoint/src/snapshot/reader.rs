//! Opening, verifying and decoding a snapshot file through a read-only memory map.

use crate::error::{CheckpointError, Result};
use crate::format::{
    decode_exact, expect_file_len, expect_payload_checksum, SnapshotHeader,
    SNAPSHOT_HEADER_FIXED_LEN,
};
use crate::CheckpointId;
use memmap2::Mmap;
use serde::de::DeserializeOwned;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// What a snapshot file must contain to be the one a reader asked for: usually taken from the
/// manifest's [`SnapshotEntry`](crate::SnapshotEntry) with
/// [`SnapshotEntry::expected`](crate::SnapshotEntry::expected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedSnapshot<'a> {
    /// The operator uid the header must name.
    pub operator_uid: &'a str,
    /// The task index the header must name.
    pub task: u32,
    /// The checkpoint the header must name.
    pub checkpoint: CheckpointId,
    /// The payload checksum recorded in the manifest, if known. A file that is intact but is
    /// not the one the manifest recorded (replaced, or from another attempt) fails this check.
    pub checksum: Option<u32>,
}

/// A verified snapshot file, mapped read-only. Its payload is borrowed from the map, without a
/// copy.
#[derive(Debug)]
pub struct Snapshot {
    path: PathBuf,
    header: SnapshotHeader,
    map: Mmap,
    payload: Range<usize>,
}

impl Snapshot {
    /// Opens `path`, checks its integrity (magic, version, header checksum, exact length,
    /// payload checksum) and that it is the snapshot `expected` describes.
    ///
    /// Only open files of checkpoints whose manifest is committed (or files a live task just
    /// wrote and will not touch again): see the safety argument on the map below.
    ///
    /// # Errors
    /// - [`CheckpointError::Io`] if the file cannot be opened, read or mapped (a missing file
    ///   is `Io` with [`std::io::ErrorKind::NotFound`]).
    /// - [`CheckpointError::Corrupt`] if any check fails; the reason names it, e.g.
    ///   "payload checksum mismatch" or "operator uid is 'x', expected 'y'".
    pub fn open(path: &Path, expected: &ExpectedSnapshot<'_>) -> Result<Snapshot> {
        let snapshot = Snapshot::open_verified(path)?;
        snapshot.check_expected(expected)?;
        Ok(snapshot)
    }

    /// The verified header.
    pub fn header(&self) -> &SnapshotHeader {
        &self.header
    }

    /// The payload bytes, borrowed from the map.
    pub fn payload(&self) -> &[u8] {
        // The range was checked against the map's length when the file was opened.
        self.map.get(self.payload.clone()).unwrap_or_default()
    }

    /// Size of the whole file (header and payload) in bytes.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// The path the snapshot was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Decodes the payload as one bincode-encoded `T`, as written by
    /// [`write_snapshot_serialized`](crate::write_snapshot_serialized).
    ///
    /// # Errors
    /// [`CheckpointError::Decode`] if the payload is not exactly one `T` (the checksum already
    /// matched, so this means the writer used another type).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        decode_exact(self.payload()).map_err(|source| CheckpointError::Decode {
            what: format!("snapshot payload of {}", self.path.display()),
            source,
        })
    }

    fn open_verified(path: &Path) -> Result<Snapshot> {
        let io_error = |e| CheckpointError::io(path, e);
        let file = File::open(path).map_err(io_error)?;
        let file_len = file.metadata().map_err(io_error)?.len();
        // Refuse before mapping: an empty file cannot be mapped on every platform, and a file
        // shorter than the smallest header is torn whatever it holds.
        if file_len < SNAPSHOT_HEADER_FIXED_LEN as u64 {
            return Err(CheckpointError::corrupt(
                path,
                format!(
                    "file is {file_len} bytes, shorter than the smallest header \
                     ({SNAPSHOT_HEADER_FIXED_LEN} bytes)"
                ),
            ));
        }
        // SAFETY: snapshot files are written once, by one task, and never modified after the
        // writer's fsync; callers map only files of committed (or otherwise finished)
        // checkpoints, and the engine never writes to a file that a map reads (a rewrite of
        // the same path unlinks the old file and creates a new one, which leaves this map's
        // pages intact). An outside process truncating the file while it is mapped would make
        // reads fault (SIGBUS), and one writing into it would change bytes behind a `&[u8]`:
        // both are outside what Rust's memory model covers (UB-adjacent). We accept that, as
        // every user of memmap2's file-backed maps must; the checksums below at least catch a
        // change made before they ran.
        #[allow(
            unsafe_code,
            reason = "memmap2 maps a file that could change underneath; SAFETY above"
        )]
        let map = unsafe { Mmap::map(&file) }.map_err(io_error)?;
        let (header, header_len) = SnapshotHeader::parse(&map, path)?;
        expect_file_len(path, map.len(), header_len, header.payload_len)?;
        let payload = header_len..map.len();
        expect_payload_checksum(path, &map[payload.clone()], header.payload_checksum)?;
        Ok(Snapshot {
            path: path.to_owned(),
            header,
            map,
            payload,
        })
    }

    fn check_expected(&self, expected: &ExpectedSnapshot<'_>) -> Result<()> {
        let header = &self.header;
        let mismatch = if header.operator_uid != expected.operator_uid {
            Some(format!(
                "operator uid is '{}', expected '{}'",
                header.operator_uid, expected.operator_uid
            ))
        } else if header.task != expected.task {
            Some(format!(
                "task is {}, expected {}",
                header.task, expected.task
            ))
        } else if header.checkpoint != expected.checkpoint {
            Some(format!(
                "checkpoint is {}, expected {}",
                header.checkpoint, expected.checkpoint
            ))
        } else {
            match expected.checksum {
                Some(checksum) if checksum != header.payload_checksum => Some(format!(
                    "payload checksum is {:#010x}, the manifest recorded {checksum:#010x}",
                    header.payload_checksum
                )),
                _ => None,
            }
        };
        match mismatch {
            Some(reason) => Err(CheckpointError::corrupt(&self.path, reason)),
            None => Ok(()),
        }
    }
}

/// Checks the integrity of the snapshot file at `path` without knowing what it should contain
/// (for a `verify` tool), and returns its header.
///
/// # Errors
/// As [`Snapshot::open`], without the expectation checks.
pub fn verify_snapshot_file(path: &Path) -> Result<SnapshotHeader> {
    Snapshot::open_verified(path).map(|snapshot| snapshot.header)
}
