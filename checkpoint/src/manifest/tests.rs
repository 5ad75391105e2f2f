//! Manifest round trips and corruption detection, on bytes (no disk).

use super::*;
use crate::CheckpointLayout;
use proptest::prelude::*;

const PATH: &str = "chk-00000000000000000003/MANIFEST";

fn manifest() -> Manifest {
    Manifest {
        checkpoint: CheckpointId(3),
        job: "wordcount".to_owned(),
        graph_fingerprint: 0xfeed_beef,
        triggered_at_ms: 1_700_000_000_000,
        completed_at_ms: 1_700_000_000_250,
        snapshots: vec![
            SnapshotEntry {
                operator_uid: "count".to_owned(),
                task: 0,
                file: CheckpointLayout::snapshot_file_name("count", 0),
                bytes: 100,
                checksum: 7,
                base: Vec::new(),
            },
            SnapshotEntry {
                operator_uid: "count".to_owned(),
                task: 1,
                file: CheckpointLayout::snapshot_file_name("count", 1),
                bytes: 40,
                checksum: 9,
                base: Vec::new(),
            },
        ],
        source_offsets: vec![SourceOffset {
            operator_uid: "lines".to_owned(),
            task: 0,
            offset: 1234u64.to_le_bytes().to_vec(),
            description: "byte 1234 of input.txt".to_owned(),
        }],
        operators: vec!["lines".to_owned(), "count".to_owned()],
        is_final: false,
    }
}

fn corrupt_reason(bytes: &[u8], context: &str) -> String {
    match Manifest::decode(bytes, Path::new(PATH)) {
        Err(CheckpointError::Corrupt { path, reason }) => {
            assert_eq!(path, Path::new(PATH), "{context}");
            reason
        }
        Err(other) => panic!("{context}: expected Corrupt, got {other}"),
        Ok(_) => panic!("{context}: corrupt manifest was accepted"),
    }
}

/// Frames `payload` as a manifest file with correct checksums, bypassing validation.
fn frame(payload: &[u8], version: u32) -> Vec<u8> {
    let mut out = MANIFEST_MAGIC.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let checksum = crc32fast::hash(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn arb_manifest() -> impl Strategy<Value = Manifest> {
    let snapshots = proptest::collection::btree_map(
        ("\\PC{0,12}", any::<u32>()),
        (any::<u64>(), any::<u32>()),
        0..8,
    );
    let offsets = proptest::collection::btree_map(
        ("[a-z]{1,8}", 0u32..16),
        (proptest::collection::vec(any::<u8>(), 0..16), "\\PC{0,20}"),
        0..4,
    );
    (
        any::<u64>(),
        "\\PC{0,20}",
        any::<[u64; 3]>(),
        snapshots,
        offsets,
    )
        .prop_map(
            |(id, job, [fingerprint, triggered, completed], snapshots, offsets)| Manifest {
                checkpoint: CheckpointId(id),
                job,
                graph_fingerprint: fingerprint,
                triggered_at_ms: triggered,
                completed_at_ms: completed,
                snapshots: snapshots
                    .into_iter()
                    .map(|((uid, task), (bytes, checksum))| SnapshotEntry {
                        file: CheckpointLayout::snapshot_file_name(&uid, task),
                        operator_uid: uid,
                        task,
                        bytes,
                        checksum,
                        base: Vec::new(),
                    })
                    .collect(),
                source_offsets: offsets
                    .into_iter()
                    .map(|((uid, task), (offset, description))| SourceOffset {
                        operator_uid: uid,
                        task,
                        offset,
                        description,
                    })
                    .collect(),
                operators: vec![format!("op-{id}")],
                is_final: id % 2 == 0,
            },
        )
}

proptest! {
    #[test]
    fn manifests_round_trip(manifest in arb_manifest()) {
        let bytes = manifest.encode().expect("encode");
        prop_assert_eq!(Manifest::decode(&bytes, Path::new(PATH)).expect("decode"), manifest);
    }

    #[test]
    fn a_random_flipped_byte_is_detected(manifest in arb_manifest(), at in any::<usize>(), mask in 1u8..) {
        let mut bytes = manifest.encode().expect("encode");
        let at = at % bytes.len();
        bytes[at] ^= mask;
        corrupt_reason(&bytes, &format!("byte {at}"));
    }
}

#[test]
fn every_flipped_header_byte_and_sampled_payload_bytes_are_detected() {
    let bytes = manifest().encode().expect("encode");
    let payload_offsets = [28, 29, 60, bytes.len() / 2, bytes.len() - 1];
    for offset in (0..MANIFEST_HEADER_LEN).chain(payload_offsets) {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bad = bytes.clone();
            bad[offset] ^= mask;
            corrupt_reason(&bad, &format!("byte {offset} ^ {mask:#04x}"));
        }
    }
}

#[test]
fn every_truncation_and_trailing_bytes_are_detected() {
    let bytes = manifest().encode().expect("encode");
    for len in 0..bytes.len() {
        let reason = corrupt_reason(&bytes[..len], &format!("length {len}"));
        if len >= MANIFEST_HEADER_LEN {
            let want = format!("file is {len} bytes, header says {}", bytes.len());
            assert_eq!(reason, want);
        }
    }
    let mut longer = bytes;
    longer.extend_from_slice(b"junk");
    let reason = corrupt_reason(&longer, "trailing bytes");
    assert!(reason.contains("header says"), "{reason}");
}

#[test]
fn wrong_magic_and_unsupported_version_name_their_field() {
    let payload = bincode_options().serialize(&manifest()).expect("bincode");
    let good = frame(&payload, MANIFEST_FORMAT_VERSION);
    assert_eq!(good, manifest().encode().expect("encode"));

    let reason = corrupt_reason(&frame(&payload, 7), "version");
    assert!(reason.contains("unsupported format version 7"), "{reason}");

    let mut snapshot_magic = good;
    snapshot_magic[..8].copy_from_slice(b"SNAPFLW\0");
    let reason = corrupt_reason(&snapshot_magic, "magic");
    assert!(reason.contains("bad magic"), "{reason}");
}

#[test]
fn an_intact_frame_around_a_bad_payload_is_corrupt() {
    let reason = corrupt_reason(&frame(b"not bincode", 1), "payload");
    assert!(reason.contains("does not decode"), "{reason}");

    let mut escaping = manifest();
    escaping.snapshots[0].file = "../../etc/passwd".to_owned();
    let payload = bincode_options().serialize(&escaping).expect("bincode");
    let reason = corrupt_reason(&frame(&payload, MANIFEST_FORMAT_VERSION), "path");
    assert!(reason.contains("not a plain file name"), "{reason}");
}

#[test]
fn manifests_that_would_not_decode_are_refused_on_encode() {
    let mut duplicate = manifest();
    duplicate.snapshots[1].task = 0;
    let mut same_file = manifest();
    same_file.snapshots[1].file = same_file.snapshots[0].file.clone();
    let mut escaping = manifest();
    escaping.snapshots[0].file = "a/b".to_owned();
    let mut sources = manifest();
    sources
        .source_offsets
        .push(sources.source_offsets[0].clone());
    for bad in [duplicate, same_file, escaping, sources] {
        let error = bad.encode().expect_err("invalid manifest");
        assert!(
            matches!(error, CheckpointError::InvalidArgument { .. }),
            "{error}"
        );
    }
}

#[test]
fn lookups_and_totals() {
    let manifest = manifest();
    assert_eq!(manifest.total_bytes(), 140);
    assert_eq!(manifest.snapshot("count", 1).map(|e| e.bytes), Some(40));
    assert!(manifest.snapshot("count", 2).is_none());
    assert_eq!(manifest.snapshots_of("count").count(), 2);
    assert_eq!(
        manifest
            .source_offset("lines", 0)
            .map(|o| o.description.as_str()),
        Some("byte 1234 of input.txt")
    );
    let entry = SnapshotEntry::new(
        "count",
        4,
        SnapshotInfo {
            file: "f".to_owned(),
            bytes: 1,
            checksum: 2,
        },
    );
    let expected = entry.expected(CheckpointId(3));
    assert_eq!(
        (
            expected.operator_uid,
            expected.task,
            expected.checkpoint,
            expected.checksum
        ),
        ("count", 4, CheckpointId(3), Some(2))
    );
}

#[test]
fn a_version_1_manifest_reads_with_no_chains() {
    let m = manifest();
    let entries: Vec<(String, u32, String, u64, u32)> = m
        .snapshots
        .iter()
        .map(|e| {
            (
                e.operator_uid.clone(),
                e.task,
                e.file.clone(),
                e.bytes,
                e.checksum,
            )
        })
        .collect();
    let v1 = (
        m.checkpoint,
        m.job.clone(),
        m.graph_fingerprint,
        m.triggered_at_ms,
        m.completed_at_ms,
        entries,
        m.source_offsets.clone(),
        m.operators.clone(),
        m.is_final,
    );
    let payload = bincode_options().serialize(&v1).expect("bincode");
    let decoded = Manifest::decode(&frame(&payload, 1), Path::new(PATH)).expect("decode v1");
    assert_eq!(decoded, m);
}

#[test]
fn chains_round_trip_and_name_the_checkpoints_they_reference() {
    let mut m = manifest();
    m.snapshots[0].base = vec![
        ChainLink {
            checkpoint: CheckpointId(1),
            file: "count-0.snap".to_owned(),
            bytes: 90,
            checksum: 1,
        },
        ChainLink {
            checkpoint: CheckpointId(2),
            file: "count-0.snap".to_owned(),
            bytes: 10,
            checksum: 2,
        },
    ];
    let decoded = Manifest::decode(&m.encode().expect("encode"), Path::new(PATH)).expect("decode");
    assert_eq!(decoded, m);
    assert_eq!(
        m.referenced_checkpoints(),
        vec![CheckpointId(1), CheckpointId(2)]
    );
    assert_eq!(m.snapshots[0].chain_bytes(), 200);
    // A link to this or a later checkpoint cannot be right.
    m.snapshots[1].base = vec![ChainLink {
        checkpoint: CheckpointId(3),
        file: "count-1.snap".to_owned(),
        bytes: 1,
        checksum: 1,
    }];
    assert!(m.encode().is_err());
}
