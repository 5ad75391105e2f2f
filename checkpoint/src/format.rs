//! Byte-level file formats: the snapshot header, the framing checks snapshots and manifests
//! share, and the one bincode configuration every payload uses.

use crate::error::{CheckpointError, Result};
use crate::CheckpointId;
use bincode::Options;
use std::path::Path;

/// The first 8 bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"SNAPFLW\0";
/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
/// The first 8 bytes of every manifest file.
pub const MANIFEST_MAGIC: [u8; 8] = *b"SNAPMAN\0";
/// The manifest format version this build writes. It also reads version 1, which had no
/// incremental snapshots ([`SnapshotEntry::base`](crate::SnapshotEntry::base) empty).
pub const MANIFEST_FORMAT_VERSION: u32 = 2;
/// The longest operator uid, in bytes of UTF-8, that a snapshot header can hold.
pub const MAX_OPERATOR_UID_LEN: usize = 1024;

/// Header bytes other than the uid: 8 + 4 + 2 + 4 + 8 + 8 + 4 + 4.
pub(crate) const SNAPSHOT_HEADER_FIXED_LEN: usize = 42;

/// The header of a snapshot file, as read back after every check passed.
///
/// A snapshot file is a header followed by the payload (all integers little-endian):
///
/// | offset     | size | field                                                  |
/// |------------|------|--------------------------------------------------------|
/// | 0          | 8    | magic `SNAPFLW\0`                                      |
/// | 8          | 4    | format version (1)                                     |
/// | 12         | 2    | operator uid length `n` (at most 1024)                 |
/// | 14         | n    | operator uid, UTF-8                                    |
/// | 14+n       | 4    | task index                                             |
/// | 18+n       | 8    | checkpoint id                                          |
/// | 26+n       | 8    | payload length                                         |
/// | 34+n       | 4    | CRC-32 of the payload                                  |
/// | 38+n       | 4    | CRC-32 of header bytes `0..38+n`                       |
/// | 42+n       | len  | payload                                                |
///
/// Checks run in this order: magic, version (a later version may lay the header out
/// differently, so nothing after it is interpreted first), uid length bound, header checksum,
/// then the fields. Because the header checksum covers every preceding header byte, a flipped
/// byte anywhere in the header is reported, never silently read as another task's or
/// checkpoint's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The stable uid of the operator whose state this is.
    pub operator_uid: String,
    /// The index of the task (parallel instance) that wrote it.
    pub task: u32,
    /// The checkpoint it belongs to.
    pub checkpoint: CheckpointId,
    /// Length of the payload in bytes.
    pub payload_len: u64,
    /// CRC-32 (crc32fast) of the payload.
    pub payload_checksum: u32,
}

impl SnapshotHeader {
    /// Length of the encoded header for a uid of `uid_len` bytes.
    pub(crate) fn encoded_len(uid_len: usize) -> usize {
        SNAPSHOT_HEADER_FIXED_LEN + uid_len
    }

    /// The header's bytes, header checksum included.
    ///
    /// # Errors
    /// [`CheckpointError::InvalidArgument`] if the uid is longer than [`MAX_OPERATOR_UID_LEN`].
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let uid = self.operator_uid.as_bytes();
        let uid_len = u16::try_from(uid.len())
            .ok()
            .filter(|&n| usize::from(n) <= MAX_OPERATOR_UID_LEN)
            .ok_or_else(|| CheckpointError::InvalidArgument {
                what: format!(
                    "operator uid is {} bytes long, the maximum is {MAX_OPERATOR_UID_LEN}",
                    uid.len()
                ),
            })?;
        let mut out = Vec::with_capacity(Self::encoded_len(uid.len()));
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&uid_len.to_le_bytes());
        out.extend_from_slice(uid);
        out.extend_from_slice(&self.task.to_le_bytes());
        out.extend_from_slice(&self.checkpoint.0.to_le_bytes());
        out.extend_from_slice(&self.payload_len.to_le_bytes());
        out.extend_from_slice(&self.payload_checksum.to_le_bytes());
        let header_checksum = crc32fast::hash(&out);
        out.extend_from_slice(&header_checksum.to_le_bytes());
        Ok(out)
    }

    /// Parses and checks the header at the start of `bytes` (the whole file), returning it and
    /// its length. Checks nothing about the payload.
    ///
    /// # Errors
    /// [`CheckpointError::Corrupt`] naming `path` and the failed check.
    pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<(SnapshotHeader, usize)> {
        let mut fields = Fields::new(bytes, path);
        fields.expect_magic(&SNAPSHOT_MAGIC, "snapshot")?;
        fields.expect_version(SNAPSHOT_FORMAT_VERSION)?;
        let uid_len = usize::from(fields.u16("operator uid length")?);
        if uid_len > MAX_OPERATOR_UID_LEN {
            return Err(CheckpointError::corrupt(
                path,
                format!(
                    "operator uid length {uid_len} exceeds the maximum of {MAX_OPERATOR_UID_LEN}"
                ),
            ));
        }
        let header_len = Self::encoded_len(uid_len);
        fields.expect_header_checksum(header_len)?;
        let uid = fields.take(uid_len, "operator uid")?;
        let operator_uid = std::str::from_utf8(uid)
            .map_err(|_| CheckpointError::corrupt(path, "operator uid is not UTF-8"))?
            .to_owned();
        let header = SnapshotHeader {
            operator_uid,
            task: fields.u32("task index")?,
            checkpoint: CheckpointId(fields.u64("checkpoint id")?),
            payload_len: fields.u64("payload length")?,
            payload_checksum: fields.u32("payload checksum")?,
        };
        Ok((header, header_len))
    }
}

/// The bincode configuration of every payload: fixed-width little-endian integers (what
/// `bincode::serialize` writes), and decoding rejects trailing bytes, because a payload that
/// decodes with bytes to spare was written as a different type.
pub(crate) fn bincode_options() -> impl Options + Copy {
    bincode::DefaultOptions::new().with_fixint_encoding()
}

/// Decodes all of `bytes` as one `T`. The size limit keeps a bogus length prefix from
/// allocating more than the input could possibly hold.
pub(crate) fn decode_exact<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<T, bincode::Error> {
    bincode_options()
        .with_limit(u64::try_from(bytes.len()).unwrap_or(u64::MAX))
        .deserialize(bytes)
}

/// A cursor over a file's header that turns every short read into [`CheckpointError::Corrupt`]
/// naming the field.
pub(crate) struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(bytes: &'a [u8], path: &'a Path) -> Fields<'a> {
        Fields {
            bytes,
            pos: 0,
            path,
        }
    }

    fn corrupt(&self, reason: String) -> CheckpointError {
        CheckpointError::corrupt(self.path, reason)
    }

    pub(crate) fn take(&mut self, len: usize, field: &str) -> Result<&'a [u8]> {
        let bytes = self.bytes;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                self.corrupt(format!(
                    "file is {} bytes, too short for the {field} field",
                    bytes.len()
                ))
            })?;
        let slice = &bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn u16(&mut self, field: &str) -> Result<u16> {
        self.array(field).map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self, field: &str) -> Result<u32> {
        self.array(field).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, field: &str) -> Result<u64> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// Checks the 8-byte magic; `kind` names the expected file kind in the error.
    pub(crate) fn expect_magic(&mut self, magic: &[u8; 8], kind: &str) -> Result<()> {
        if self.array::<8>("magic")? != *magic {
            return Err(self.corrupt(format!("bad magic: not a snapflow {kind} file")));
        }
        Ok(())
    }

    /// Reads the format version and checks it is one of `supported`; returns it.
    pub(crate) fn expect_version_in(&mut self, supported: &[u32]) -> Result<u32> {
        let version = self.u32("format version")?;
        if !supported.contains(&version) {
            return Err(self.corrupt(format!(
                "unsupported format version {version} (this build reads versions {supported:?})"
            )));
        }
        Ok(version)
    }

    pub(crate) fn expect_version(&mut self, supported: u32) -> Result<()> {
        let version = self.u32("format version")?;
        if version != supported {
            return Err(self.corrupt(format!(
                "unsupported format version {version} (this build reads version {supported})"
            )));
        }
        Ok(())
    }

    /// Checks the CRC-32 stored in the last 4 of the first `header_len` bytes against the bytes
    /// before it. Leaves the cursor where it was, so the fields can be read afterwards.
    pub(crate) fn expect_header_checksum(&mut self, header_len: usize) -> Result<()> {
        if self.bytes.len() < header_len {
            return Err(self.corrupt(format!(
                "file is {} bytes, too short for its {header_len}-byte header",
                self.bytes.len()
            )));
        }
        let (covered, stored) = self.bytes[..header_len].split_at(header_len - 4);
        let mut stored_bytes = [0u8; 4];
        stored_bytes.copy_from_slice(stored);
        let stored = u32::from_le_bytes(stored_bytes);
        let computed = crc32fast::hash(covered);
        if stored != computed {
            return Err(self.corrupt(format!(
                "header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            )));
        }
        Ok(())
    }
}

/// Checks that `payload` has the checksum its header recorded.
pub(crate) fn expect_payload_checksum(path: &Path, payload: &[u8], stored: u32) -> Result<()> {
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(CheckpointError::corrupt(
            path,
            format!("payload checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"),
        ));
    }
    Ok(())
}

/// Checks that a file of `file_len` bytes holds exactly a `header_len`-byte header and a
/// `payload_len`-byte payload: fewer bytes is a torn write, more is not a file we wrote.
pub(crate) fn expect_file_len(
    path: &Path,
    file_len: usize,
    header_len: usize,
    payload_len: u64,
) -> Result<()> {
    let expected = u64::try_from(header_len)
        .ok()
        .and_then(|h| h.checked_add(payload_len));
    if expected != u64::try_from(file_len).ok() {
        let says = expected.map_or_else(|| "more than 2^64".to_owned(), |n| n.to_string());
        return Err(CheckpointError::corrupt(
            path,
            format!("file is {file_len} bytes, header says {says}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SnapshotHeader {
        SnapshotHeader {
            operator_uid: "count".to_owned(),
            task: 3,
            checkpoint: CheckpointId(9),
            payload_len: 5,
            payload_checksum: crc32fast::hash(b"hello"),
        }
    }

    #[test]
    fn header_layout_matches_the_documented_offsets() {
        let bytes = header().encode().expect("encode");
        assert_eq!(bytes.len(), SnapshotHeader::encoded_len(5));
        assert_eq!(&bytes[0..8], b"SNAPFLW\0");
        assert_eq!(bytes[8..12], 1u32.to_le_bytes());
        assert_eq!(bytes[12..14], 5u16.to_le_bytes());
        assert_eq!(&bytes[14..19], b"count");
        assert_eq!(bytes[19..23], 3u32.to_le_bytes());
        assert_eq!(bytes[23..31], 9u64.to_le_bytes());
        assert_eq!(bytes[31..39], 5u64.to_le_bytes());
        let (parsed, len) = SnapshotHeader::parse(&bytes, Path::new("x")).expect("parse");
        assert_eq!((parsed, len), (header(), bytes.len()));
    }

    #[test]
    fn uid_longer_than_the_maximum_is_refused() {
        let mut long = header();
        long.operator_uid = "u".repeat(MAX_OPERATOR_UID_LEN + 1);
        let error = long.encode().expect_err("too long");
        assert!(
            matches!(error, CheckpointError::InvalidArgument { .. }),
            "{error}"
        );
        long.operator_uid.pop();
        assert!(long.encode().is_ok());
    }

    #[test]
    fn file_length_must_match_exactly() {
        let path = Path::new("f");
        assert!(expect_file_len(path, 47, 42, 5).is_ok());
        for (file_len, payload_len) in [(46, 5), (48, 5), (47, u64::MAX)] {
            let error = expect_file_len(path, file_len, 42, payload_len).expect_err("mismatch");
            assert!(error.is_corrupt(), "{error}");
        }
    }
}
