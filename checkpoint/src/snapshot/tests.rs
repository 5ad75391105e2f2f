//! Round trips and corruption detection of snapshot files on a real file system.

use super::*;
use crate::error::{CheckpointError, Result};
use crate::format::{SnapshotHeader, MAX_OPERATOR_UID_LEN};
use crate::CheckpointId;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

const UID: &str = "op-é";
const TASK: u32 = 2;
const CHECKPOINT: CheckpointId = CheckpointId(17);

fn expected(checksum: Option<u32>) -> ExpectedSnapshot<'static> {
    ExpectedSnapshot {
        operator_uid: UID,
        task: TASK,
        checkpoint: CHECKPOINT,
        checksum,
    }
}

/// Writes a reference snapshot and returns its path, bytes and header length.
fn reference(dir: &Path) -> (std::path::PathBuf, Vec<u8>, usize) {
    let path = dir.join("ref.snap");
    let payload: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
    write_snapshot(&path, UID, TASK, CHECKPOINT, &payload).expect("write");
    let bytes = fs::read(&path).expect("read back");
    (path, bytes, SnapshotHeader::encoded_len(UID.len()))
}

/// The reason of a `Corrupt` error; fails the test on `Ok` or any other error.
fn corrupt_reason(result: Result<Snapshot>, context: &str) -> String {
    match result {
        Err(CheckpointError::Corrupt { reason, .. }) => reason,
        Err(other) => panic!("{context}: expected Corrupt, got {other}"),
        Ok(_) => panic!("{context}: corrupt file was accepted"),
    }
}

fn open_bytes(path: &Path, bytes: &[u8]) -> Result<Snapshot> {
    fs::write(path, bytes).expect("write test file");
    Snapshot::open(path, &expected(None))
}

/// Overwrites a header field and recomputes the header checksum, so that the check of that
/// field itself (not the checksum) must reject the file.
fn rewrite_field(bytes: &mut [u8], header_len: usize, offset: usize, value: &[u8]) {
    bytes[offset..offset + value.len()].copy_from_slice(value);
    let checksum = crc32fast::hash(&bytes[..header_len - 4]);
    bytes[header_len - 4..header_len].copy_from_slice(&checksum.to_le_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn snapshots_round_trip(
        uid in "\\PC{0,40}",
        task in any::<u32>(),
        id in any::<u64>(),
        payload in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.snap");
        let info = write_snapshot(&path, &uid, task, CheckpointId(id), &payload).expect("write");
        prop_assert_eq!(info.file.as_str(), "x.snap");
        prop_assert_eq!(info.bytes, fs::metadata(&path).expect("stat").len());
        prop_assert_eq!(info.checksum, crc32fast::hash(&payload));
        let want = ExpectedSnapshot {
            operator_uid: &uid,
            task,
            checkpoint: CheckpointId(id),
            checksum: Some(info.checksum),
        };
        let snapshot = Snapshot::open(&path, &want).expect("open");
        prop_assert_eq!(snapshot.payload(), &payload[..]);
        prop_assert_eq!(&snapshot.header().operator_uid, &uid);
        prop_assert_eq!(snapshot.header().task, task);
        prop_assert_eq!(snapshot.header().checkpoint, CheckpointId(id));
        prop_assert_eq!(snapshot.header().payload_len, payload.len() as u64);
    }
}

#[test]
fn empty_payload_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.snap");
    let info = write_snapshot(&path, "", 0, CheckpointId(1), &[]).expect("write");
    let want = ExpectedSnapshot {
        operator_uid: "",
        task: 0,
        checkpoint: CheckpointId(1),
        checksum: Some(info.checksum),
    };
    let snapshot = Snapshot::open(&path, &want).expect("open");
    assert!(snapshot.payload().is_empty());
    assert_eq!(info.bytes, SnapshotHeader::encoded_len(0) as u64);
}

#[test]
fn serialized_values_round_trip_and_match_plain_bincode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("map.snap");
    let value: BTreeMap<String, (u64, Vec<i32>)> = (0..50)
        .map(|i| (format!("key{i}"), (i * i, vec![-1; i as usize % 5])))
        .collect();
    let info = write_snapshot_serialized(&path, UID, TASK, CHECKPOINT, &value).expect("write");
    let snapshot = Snapshot::open(&path, &expected(Some(info.checksum))).expect("open");
    let decoded: BTreeMap<String, (u64, Vec<i32>)> = snapshot.decode().expect("decode");
    assert_eq!(decoded, value);
    assert_eq!(
        snapshot.payload(),
        bincode::serialize(&value).expect("bincode")
    );

    let empty: Vec<u64> = Vec::new();
    write_snapshot_serialized(&path, UID, TASK, CHECKPOINT, &empty).expect("write empty");
    let snapshot = Snapshot::open(&path, &expected(None)).expect("open empty");
    assert_eq!(snapshot.decode::<Vec<u64>>().expect("decode empty"), empty);
}

#[test]
fn decoding_as_another_type_is_a_decode_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v.snap");
    write_snapshot_serialized(&path, UID, TASK, CHECKPOINT, &(1u64, 2u64)).expect("write");
    let snapshot = Snapshot::open(&path, &expected(None)).expect("open");
    // Too short for the type, and too long for it (trailing bytes are rejected).
    let short = snapshot.decode::<(u64, u64, u64)>();
    assert!(
        matches!(short, Err(CheckpointError::Decode { .. })),
        "{short:?}"
    );
    let long = snapshot.decode::<u64>();
    assert!(
        matches!(long, Err(CheckpointError::Decode { .. })),
        "{long:?}"
    );
}

#[test]
fn every_flipped_header_byte_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes, header_len) = reference(dir.path());
    for offset in 0..header_len {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bad = bytes.clone();
            bad[offset] ^= mask;
            corrupt_reason(
                open_bytes(&path, &bad),
                &format!("byte {offset} ^ {mask:#04x}"),
            );
        }
    }
}

#[test]
fn flipped_payload_bytes_are_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes, header_len) = reference(dir.path());
    for offset in [
        header_len,
        header_len + 1,
        header_len + 150,
        bytes.len() - 1,
    ] {
        let mut bad = bytes.clone();
        bad[offset] ^= 0x10;
        let reason = corrupt_reason(open_bytes(&path, &bad), &format!("byte {offset}"));
        assert!(reason.contains("payload checksum mismatch"), "{reason}");
    }
}

#[test]
fn every_truncation_and_trailing_bytes_are_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes, header_len) = reference(dir.path());
    for len in 0..bytes.len() {
        let reason = corrupt_reason(open_bytes(&path, &bytes[..len]), &format!("length {len}"));
        if len > header_len {
            assert!(reason.contains("header says"), "{len}: {reason}");
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let reason = corrupt_reason(open_bytes(&path, &longer), "trailing byte");
    assert_eq!(
        reason,
        format!(
            "file is {} bytes, header says {}",
            bytes.len() + 1,
            bytes.len()
        )
    );
}

#[test]
fn wrong_magic_and_unsupported_version_name_their_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes, header_len) = reference(dir.path());

    let mut bad = bytes.clone();
    rewrite_field(&mut bad, header_len, 0, b"NOTSNAP\0");
    let reason = corrupt_reason(open_bytes(&path, &bad), "magic");
    assert!(reason.contains("bad magic"), "{reason}");

    let mut bad = bytes.clone();
    rewrite_field(&mut bad, header_len, 8, &7u32.to_le_bytes());
    let reason = corrupt_reason(open_bytes(&path, &bad), "version");
    assert!(reason.contains("unsupported format version 7"), "{reason}");

    let mut bad = bytes.clone();
    rewrite_field(&mut bad, header_len, 12, &2000u16.to_le_bytes());
    let reason = corrupt_reason(open_bytes(&path, &bad), "uid length");
    assert!(reason.contains("operator uid length 2000"), "{reason}");

    let mut bad = bytes;
    bad[20] ^= 1;
    let reason = corrupt_reason(open_bytes(&path, &bad), "task");
    assert!(reason.contains("header checksum mismatch"), "{reason}");
}

#[test]
fn a_valid_file_that_is_not_the_expected_one_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _, _) = reference(dir.path());
    let checksum = verify_snapshot_file(&path)
        .expect("verify")
        .payload_checksum;
    let cases = [
        (
            ExpectedSnapshot {
                operator_uid: "y",
                ..expected(None)
            },
            "operator uid is 'op-é', expected 'y'",
        ),
        (
            ExpectedSnapshot {
                task: 3,
                ..expected(None)
            },
            "task is 2, expected 3",
        ),
        (
            ExpectedSnapshot {
                checkpoint: CheckpointId(16),
                ..expected(None)
            },
            "checkpoint is 17, expected 16",
        ),
        (expected(Some(checksum ^ 1)), "the manifest recorded"),
    ];
    for (want, needle) in cases {
        let reason = corrupt_reason(Snapshot::open(&path, &want), needle);
        assert!(reason.contains(needle), "{reason}");
    }
    assert!(Snapshot::open(&path, &expected(Some(checksum))).is_ok());
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes, _) = reference(dir.path());
    let error = open_bytes(&path, &bytes[..10]).expect_err("truncated");
    assert!(error.to_string().contains("ref.snap"), "{error}");
    let missing = Snapshot::open(&dir.path().join("absent.snap"), &expected(None));
    match missing {
        Err(CheckpointError::Io { path, source }) => {
            assert!(path.ends_with("absent.snap"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io NotFound, got {other:?}"),
    }
}

#[test]
fn rewriting_a_path_leaves_an_open_snapshot_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("same.snap");
    write_snapshot(&path, UID, TASK, CHECKPOINT, b"old state").expect("first");
    let old = Snapshot::open(&path, &expected(None)).expect("open old");
    write_snapshot(&path, UID, TASK, CHECKPOINT, b"a newer, longer state").expect("second");
    assert_eq!(old.payload(), b"old state");
    let new = Snapshot::open(&path, &expected(None)).expect("open new");
    assert_eq!(new.payload(), b"a newer, longer state");
}

#[test]
fn an_overlong_uid_is_refused_before_touching_the_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("long.snap");
    let uid = "u".repeat(MAX_OPERATOR_UID_LEN + 1);
    let error = write_snapshot(&path, &uid, 0, CHECKPOINT, b"").expect_err("too long");
    assert!(
        matches!(error, CheckpointError::InvalidArgument { .. }),
        "{error}"
    );
    assert!(!path.exists());
    let uid = "u".repeat(MAX_OPERATOR_UID_LEN);
    write_snapshot(&path, &uid, 0, CHECKPOINT, b"").expect("longest uid");
    assert_eq!(
        verify_snapshot_file(&path).expect("verify").operator_uid,
        uid
    );
}
