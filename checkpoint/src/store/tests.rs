//! The store on a real directory: commit, scan, latest, retain, and damage between them.

use super::*;
use crate::manifest::SourceOffset;
use crate::snapshot::write_snapshot;

const UID: &str = "count";

fn store() -> (tempfile::TempDir, CheckpointStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(dir.path().join("job")).expect("open store");
    (dir, store)
}

/// Begins checkpoint `id`, writes two task snapshots and returns the manifest to commit.
fn prepare(store: &CheckpointStore, id: u64) -> Manifest {
    let id = CheckpointId(id);
    store.begin(id).expect("begin");
    let snapshots = (0..2)
        .map(|task| {
            let path = store.layout().snapshot_file(id, UID, task);
            let payload = format!("state of task {task} at {id}");
            let info = write_snapshot(&path, UID, task, id, payload.as_bytes()).expect("write");
            SnapshotEntry::new(UID, task, info)
        })
        .collect();
    Manifest {
        checkpoint: id,
        job: "test".to_owned(),
        graph_fingerprint: 42,
        triggered_at_ms: id.0 * 1000,
        completed_at_ms: id.0 * 1000 + 5,
        snapshots,
        source_offsets: vec![SourceOffset {
            operator_uid: "src".to_owned(),
            task: 0,
            offset: id.0.to_le_bytes().to_vec(),
            description: format!("record {}", id.0),
        }],
        operators: vec!["src".to_owned(), UID.to_owned()],
        is_final: false,
    }
}

fn commit(store: &CheckpointStore, id: u64) -> Manifest {
    let manifest = prepare(store, id);
    store.commit(&manifest).expect("commit");
    manifest
}

fn states(store: &CheckpointStore) -> Vec<(u64, &'static str)> {
    store
        .scan()
        .expect("scan")
        .into_iter()
        .map(|s| {
            let state = match s.state {
                CheckpointState::Complete => "complete",
                CheckpointState::InProgress => "in progress",
                CheckpointState::Corrupt { .. } => "corrupt",
            };
            (s.id.0, state)
        })
        .collect()
}

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).expect("read");
    bytes[offset] ^= 0x04;
    fs::write(path, bytes).expect("write");
}

#[test]
fn committed_checkpoints_scan_as_complete_and_the_newest_is_latest() {
    let (_dir, store) = store();
    assert_eq!(store.latest().expect("latest").0, LatestDecision::default());
    commit(&store, 1);
    commit(&store, 2);
    let third = commit(&store, 3);
    assert_eq!(
        states(&store),
        [(1, "complete"), (2, "complete"), (3, "complete")]
    );
    let (decision, manifest) = store.latest().expect("latest");
    assert_eq!(decision.latest, Some(CheckpointId(3)));
    assert!(decision.newer_corrupt.is_empty());
    assert_eq!(manifest.as_ref(), Some(&third));
    assert_eq!(store.load_manifest(CheckpointId(3)).expect("load"), third);

    let entry = &third.snapshots[1];
    let snapshot = store.open_snapshot(&third, entry).expect("open snapshot");
    assert_eq!(snapshot.payload(), b"state of task 1 at 3");
}

#[test]
fn a_flipped_snapshot_byte_makes_its_checkpoint_corrupt_and_latest_falls_back() {
    let (_dir, store) = store();
    commit(&store, 1);
    commit(&store, 2);
    commit(&store, 3);
    let damaged = store.layout().snapshot_file(CheckpointId(3), UID, 1);
    flip_byte(&damaged, 50);
    assert_eq!(
        states(&store),
        [(1, "complete"), (2, "complete"), (3, "corrupt")]
    );
    let (decision, manifest) = store.latest().expect("latest");
    assert_eq!(decision.latest, Some(CheckpointId(2)));
    assert_eq!(manifest.map(|m| m.checkpoint), Some(CheckpointId(2)));
    let [(id, reason)] = decision.newer_corrupt.as_slice() else {
        panic!("expected one corrupt checkpoint: {decision:?}");
    };
    assert_eq!(*id, CheckpointId(3));
    assert!(reason.contains("count-00001.snap"), "{reason}");
    assert!(reason.contains("payload checksum mismatch"), "{reason}");

    // Corrupt checkpoints are evidence: retention never deletes them.
    assert_eq!(store.retain(1).expect("retain"), [CheckpointId(1)]);
    assert_eq!(states(&store), [(2, "complete"), (3, "corrupt")]);
}

#[test]
fn missing_snapshot_files_and_damaged_manifests_are_corrupt() {
    let (_dir, store) = store();
    for id in 1..=4 {
        commit(&store, id);
    }
    fs::remove_file(store.layout().snapshot_file(CheckpointId(2), UID, 0)).expect("remove");
    let manifest = store.layout().manifest_file(CheckpointId(3));
    let bytes = fs::read(&manifest).expect("read");
    fs::write(&manifest, &bytes[..bytes.len() - 1]).expect("truncate");
    flip_byte(&store.layout().manifest_file(CheckpointId(4)), 3);
    assert_eq!(
        states(&store),
        [
            (1, "complete"),
            (2, "corrupt"),
            (3, "corrupt"),
            (4, "corrupt")
        ]
    );
    let (decision, _) = store.latest().expect("latest");
    assert_eq!(decision.latest, Some(CheckpointId(1)));
    let reasons: Vec<&str> = decision
        .newer_corrupt
        .iter()
        .map(|(_, r)| r.as_str())
        .collect();
    assert!(reasons[0].contains("is missing"), "{reasons:?}");
    assert!(reasons[1].contains("header says"), "{reasons:?}");
    assert!(reasons[2].contains("bad magic"), "{reasons:?}");
}

#[test]
fn a_manifest_in_another_checkpoints_directory_is_corrupt() {
    let (_dir, store) = store();
    commit(&store, 1);
    store.begin(CheckpointId(2)).expect("begin");
    fs::copy(
        store.layout().manifest_file(CheckpointId(1)),
        store.layout().manifest_file(CheckpointId(2)),
    )
    .expect("copy");
    let (decision, _) = store.latest().expect("latest");
    assert_eq!(decision.latest, Some(CheckpointId(1)));
    assert!(decision.newer_corrupt[0]
        .1
        .contains("manifest is for checkpoint 1"));
}

#[test]
fn a_snapshot_of_the_wrong_size_or_checksum_is_corrupt() {
    let (_dir, store) = store();
    let mut manifest = prepare(&store, 1);
    manifest.snapshots[0].bytes += 1;
    manifest.snapshots[1].checksum ^= 1;
    store.commit(&manifest).expect("commit");
    assert_eq!(states(&store), [(1, "corrupt")]);
    let entry = &manifest.snapshots[0];
    let error = store.open_snapshot(&manifest, entry).expect_err("size");
    assert!(
        error.to_string().contains("the manifest recorded"),
        "{error}"
    );
}

#[test]
fn in_progress_directories_are_skipped_and_kept_while_newer_than_latest() {
    let (_dir, store) = store();
    commit(&store, 1);
    prepare(&store, 2); // tasks wrote, the coordinator died before the manifest
    commit(&store, 3);
    prepare(&store, 4);
    assert_eq!(
        states(&store),
        [
            (1, "complete"),
            (2, "in progress"),
            (3, "complete"),
            (4, "in progress")
        ]
    );
    assert_eq!(
        store.latest().expect("latest").0.latest,
        Some(CheckpointId(3))
    );
    assert_eq!(store.next_id().expect("next"), CheckpointId(5));
    assert_eq!(
        store.retain(DEFAULT_RETAINED).expect("retain"),
        [CheckpointId(2)]
    );
    assert_eq!(
        states(&store),
        [(1, "complete"), (3, "complete"), (4, "in progress")]
    );
}

#[test]
fn retain_keeps_the_newest_complete_checkpoints() {
    let (_dir, store) = store();
    for id in 1..=5 {
        commit(&store, id);
    }
    assert_eq!(
        store.retain(2).expect("retain"),
        [CheckpointId(1), CheckpointId(2), CheckpointId(3)]
    );
    assert!(!store.layout().checkpoint_dir(CheckpointId(1)).exists());
    assert_eq!(states(&store), [(4, "complete"), (5, "complete")]);
    assert!(store.retain(2).expect("again").is_empty());
    assert_eq!(store.retain(0).expect("keep 0"), [CheckpointId(4)]);
    assert_eq!(states(&store), [(5, "complete")]);
}

#[test]
fn unrelated_entries_in_the_root_are_ignored() {
    let (_dir, store) = store();
    commit(&store, 7);
    let root = store.layout().root();
    fs::write(root.join("notes.txt"), "hello").expect("file");
    fs::create_dir(root.join("chk-12")).expect("short name");
    fs::create_dir(root.join("chk-00000000000000000009.old")).expect("suffix");
    fs::write(root.join("chk-00000000000000000010"), "not a dir").expect("file named like a dir");
    assert_eq!(states(&store), [(7, "complete")]);
    assert!(store.retain(1).expect("retain").is_empty());
    assert!(root.join("notes.txt").exists() && root.join("chk-12").exists());
}

#[test]
fn begin_replaces_an_uncommitted_attempt_and_committed_checkpoints_are_immutable() {
    let (_dir, store) = store();
    let stale = prepare(&store, 1);
    let stale_file = store
        .layout()
        .listed_file(CheckpointId(1), &stale.snapshots[0].file);
    assert!(stale_file.exists());
    let dir = store.begin(CheckpointId(1)).expect("begin again");
    assert_eq!(fs::read_dir(&dir).expect("list").count(), 0);

    let manifest = prepare(&store, 1);
    store.commit(&manifest).expect("commit");
    for result in [
        store.begin(CheckpointId(1)).map(drop),
        store.commit(&manifest),
        store.abort(CheckpointId(1)),
    ] {
        assert!(
            matches!(result, Err(CheckpointError::AlreadyCommitted { .. })),
            "{result:?}"
        );
    }
    assert_eq!(states(&store), [(1, "complete")]);
}

#[test]
fn abort_removes_the_directory_and_accepts_an_absent_one() {
    let (_dir, store) = store();
    prepare(&store, 1);
    store.abort(CheckpointId(1)).expect("abort");
    assert!(!store.layout().checkpoint_dir(CheckpointId(1)).exists());
    store.abort(CheckpointId(1)).expect("abort again");
    store.abort(CheckpointId(99)).expect("never begun");
    assert_eq!(store.next_id().expect("next"), CheckpointId(1));
}

#[test]
fn commit_without_begin_fails_and_leaves_nothing() {
    let (_dir, store) = store();
    let mut manifest = prepare(&store, 1);
    manifest.checkpoint = CheckpointId(2);
    let error = store.commit(&manifest).expect_err("not begun");
    assert!(matches!(error, CheckpointError::Io { .. }), "{error}");
    assert!(
        error.to_string().contains("chk-00000000000000000002"),
        "{error}"
    );
    let missing = store
        .load_manifest(CheckpointId(2))
        .expect_err("no manifest");
    assert!(
        matches!(missing, CheckpointError::Io { ref source, .. } if source.kind() == io::ErrorKind::NotFound)
    );
}

#[test]
fn retention_deletes_only_what_the_store_wrote_and_a_foreign_file_holds_up_only_its_checkpoint() {
    let (_dir, store) = store();
    for id in 1..=3 {
        commit(&store, id);
    }
    let foreign = store
        .layout()
        .checkpoint_dir(CheckpointId(1))
        .join("notes.txt");
    fs::write(&foreign, "mine").expect("write a foreign file");
    match store.retain(1) {
        Err(CheckpointError::ForeignFile { file, .. }) => assert_eq!(file, foreign),
        other => panic!("expected a foreign-file error, got {other:?}"),
    }
    assert_eq!(fs::read_to_string(&foreign).expect("still there"), "mine");
    // Checkpoint 2 was deleted all the same; 1 is left without its manifest.
    let ids: Vec<_> = store.scan().expect("scan").iter().map(|s| s.id).collect();
    assert_eq!(ids, [CheckpointId(1), CheckpointId(3)]);
    // Moved away, the next pass deletes the rest.
    fs::remove_file(&foreign).expect("remove it");
    store.retain(1).expect("retain");
    let ids: Vec<_> = store.scan().expect("scan").iter().map(|s| s.id).collect();
    assert_eq!(ids, [CheckpointId(3)]);
}

/// Commits checkpoint `id` whose task-0 snapshot is a delta over the task-0 files of `chain`
/// (ids, oldest first); task 1 writes a full snapshot.
fn commit_delta(store: &CheckpointStore, id: u64, chain: &[u64]) -> Manifest {
    let mut manifest = prepare(store, id);
    manifest.snapshots[0].base = chain
        .iter()
        .map(|&c| {
            let c = CheckpointId(c);
            let m = store.load_manifest(c).expect("base manifest");
            ChainLink::to_entry(c, m.snapshot(UID, 0).expect("task 0"))
        })
        .collect();
    store.commit(&manifest).expect("commit");
    manifest
}

#[test]
fn retention_keeps_every_checkpoint_a_kept_chain_builds_on() {
    let (_dir, store) = store();
    commit(&store, 1);
    commit_delta(&store, 2, &[1]);
    commit_delta(&store, 3, &[1, 2]);
    commit(&store, 4);
    commit_delta(&store, 5, &[4]);
    // Keeping 1 would delete 1..=4, but 5 builds on 4.
    assert_eq!(
        store.retain(1).expect("retain"),
        [CheckpointId(1), CheckpointId(2), CheckpointId(3)]
    );
    assert_eq!(states(&store), [(4, "complete"), (5, "complete")]);
    let (decision, opened) = store.latest_opened().expect("latest");
    assert_eq!(decision.latest, Some(CheckpointId(5)));
    let opened = opened.expect("opened");
    // Task 0's chain (4, 5) and task 1's file of 5: three files, each opened once.
    assert_eq!(opened.file_count(), 3);
    let entry = opened.manifest.snapshot(UID, 0).expect("task 0").clone();
    let chain = opened.chain_of(&entry).expect("chain");
    let payloads: Vec<&[u8]> = chain.iter().map(|s| s.payload()).collect();
    assert_eq!(
        payloads,
        [&b"state of task 0 at 4"[..], &b"state of task 0 at 5"[..]]
    );
}

#[test]
fn unreferenced_follows_references_transitively() {
    let refs = |id: CheckpointId| -> Result<Vec<CheckpointId>> {
        Ok(match id.0 {
            9 => vec![CheckpointId(7)],
            7 => vec![CheckpointId(3)],
            _ => vec![],
        })
    };
    let plan = (1..=8).map(CheckpointId).collect();
    let left = unreferenced(plan, &[CheckpointId(9)], refs).expect("pure");
    let want: Vec<CheckpointId> = [1, 2, 4, 5, 6, 8].into_iter().map(CheckpointId).collect();
    assert_eq!(left, want);
}

#[test]
fn a_missing_or_changed_chain_file_makes_the_checkpoint_corrupt() {
    let (_dir, store) = store();
    commit(&store, 1);
    commit_delta(&store, 2, &[1]);
    flip_byte(&store.layout().snapshot_file(CheckpointId(1), UID, 0), 50);
    assert_eq!(states(&store), [(1, "corrupt"), (2, "corrupt")]);
    let (decision, opened) = store.latest_opened().expect("latest");
    assert!(opened.is_none());
    assert_eq!(decision.latest, None);
    assert_eq!(decision.newer_corrupt.len(), 2);
}

#[test]
fn a_savepoint_of_an_incremental_checkpoint_carries_the_files_it_builds_on() {
    let (dir, store) = store();
    commit(&store, 4);
    commit_delta(&store, 5, &[4]);
    let target = dir.path().join("savepoint");
    crate::write_savepoint(&store, CheckpointId(5), &target).expect("savepoint");
    // The job's checkpoints may go: the savepoint reads nothing of theirs.
    for id in [4, 5] {
        std::fs::remove_dir_all(store.layout().checkpoint_dir(CheckpointId(id))).expect("rm");
    }
    let (_copy, opened) = crate::open_savepoint(&target).expect("a complete savepoint");
    assert_eq!(opened.manifest.checkpoint, CheckpointId(5));
    let entry = opened.manifest.snapshot(UID, 0).expect("task 0").clone();
    assert!(!entry.base.is_empty(), "task 0's snapshot of 5 is a delta");
    let chain = opened.chain_of(&entry).expect("chain");
    let payloads: Vec<&[u8]> = chain.iter().map(|s| s.payload()).collect();
    assert_eq!(
        payloads,
        [&b"state of task 0 at 4"[..], &b"state of task 0 at 5"[..]]
    );
    // Cut short before its manifest, the same copy is refused, chain directories or not.
    std::fs::remove_file(CheckpointLayout::new(&target).manifest_file(CheckpointId(5)))
        .expect("rm manifest");
    assert!(crate::open_savepoint(&target).is_err());
}
