//! Savepoints: the pure decision over every layout, and the copy on a real directory.

use super::*;
use crate::layout::CheckpointLayout;
use crate::manifest::{SnapshotEntry, SourceOffset};
use crate::snapshot::write_snapshot;

fn status(id: u64, state: CheckpointState) -> CheckpointStatus {
    CheckpointStatus {
        id: CheckpointId(id),
        state,
    }
}

#[test]
fn a_savepoint_is_exactly_one_complete_checkpoint() {
    let dir = Path::new("/sp");
    assert_eq!(
        savepoint_checkpoint(dir, &[status(7, CheckpointState::Complete)]).ok(),
        Some(CheckpointId(7))
    );
    assert!(matches!(
        savepoint_checkpoint(dir, &[]),
        Err(SavepointError::Empty { .. })
    ));
    assert!(matches!(
        savepoint_checkpoint(dir, &[status(7, CheckpointState::InProgress)]),
        Err(SavepointError::Incomplete {
            checkpoint: CheckpointId(7),
            ..
        })
    ));
    let corrupt = CheckpointState::Corrupt {
        reason: "bad crc in x.snap".into(),
    };
    match savepoint_checkpoint(dir, &[status(7, corrupt)]) {
        Err(e @ SavepointError::Corrupt { .. }) => assert!(e.to_string().contains("x.snap")),
        other => panic!("{other:?}"),
    }
    // A job's checkpoint directory (several checkpoints) is not a savepoint, whatever states.
    for second in [CheckpointState::Complete, CheckpointState::InProgress] {
        assert!(matches!(
            savepoint_checkpoint(
                dir,
                &[status(6, CheckpointState::Complete), status(7, second)]
            ),
            Err(SavepointError::SeveralCheckpoints { count: 2, .. })
        ));
    }
}

/// A job store holding complete checkpoint 3 (two snapshots, one source offset).
fn job_store(root: &Path) -> CheckpointStore {
    let store = CheckpointStore::open(root.join("job")).expect("open");
    let id = CheckpointId(3);
    store.begin(id).expect("begin");
    let snapshots = (0..2)
        .map(|task| {
            let path = store.layout().snapshot_file(id, "count", task);
            let info = write_snapshot(&path, "count", task, id, format!("state {task}").as_bytes())
                .expect("write");
            SnapshotEntry::new("count", task, info)
        })
        .collect();
    store
        .commit(&Manifest {
            checkpoint: id,
            job: "test".into(),
            graph_fingerprint: 1,
            triggered_at_ms: 1,
            completed_at_ms: 2,
            snapshots,
            source_offsets: vec![SourceOffset {
                operator_uid: "src".into(),
                task: 0,
                offset: vec![1, 2, 3],
                description: "at 3".into(),
            }],
            operators: vec!["src".into(), "count".into()],
            is_final: false,
        })
        .expect("commit");
    store
}

#[test]
fn a_written_savepoint_opens_with_the_same_manifest_and_needs_nothing_of_the_job() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = job_store(root.path());
    let target = root.path().join("sp");
    let written = write_savepoint(&store, CheckpointId(3), &target).expect("savepoint");
    // The job's directory may go: the savepoint is self-contained.
    fs::remove_dir_all(store.layout().root()).expect("remove job dir");
    let (copy, opened) = open_savepoint(&target).expect("open");
    let manifest = opened.manifest;
    assert_eq!(manifest, written);
    for entry in &manifest.snapshots {
        let snapshot = copy.open_snapshot(&manifest, entry).expect("snapshot");
        assert_eq!(
            snapshot.payload(),
            format!("state {}", entry.task).as_bytes()
        );
    }
}

#[test]
fn a_savepoint_is_never_written_over_anything() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = job_store(root.path());
    let target = root.path().join("sp");
    write_savepoint(&store, CheckpointId(3), &target).expect("first");
    assert!(matches!(
        write_savepoint(&store, CheckpointId(3), &target),
        Err(SavepointError::NotEmpty { .. })
    ));
    assert!(matches!(
        write_savepoint(&store, CheckpointId(4), &root.path().join("sp2")),
        Err(SavepointError::NotComplete {
            checkpoint: CheckpointId(4),
            ..
        })
    ));
}

#[test]
fn an_interrupted_or_damaged_savepoint_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = job_store(root.path());
    let target = root.path().join("sp");
    write_savepoint(&store, CheckpointId(3), &target).expect("savepoint");
    let layout = CheckpointLayout::new(&target);
    // Interrupted before its manifest: every file but the manifest is there.
    let manifest = layout.manifest_file(CheckpointId(3));
    let saved = fs::read(&manifest).expect("read manifest");
    fs::remove_file(&manifest).expect("remove manifest");
    match open_savepoint(&target) {
        Err(e @ SavepointError::Incomplete { .. }) => {
            assert!(e.to_string().contains("incomplete"), "{e}")
        }
        other => panic!("{:?}", other.map(|(_, o)| o.manifest)),
    }
    fs::write(&manifest, saved).expect("restore manifest");
    // A snapshot file with one byte flipped.
    let file = layout.snapshot_file(CheckpointId(3), "count", 1);
    let mut bytes = fs::read(&file).expect("read snapshot");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&file, bytes).expect("damage");
    assert!(matches!(
        open_savepoint(&target),
        Err(SavepointError::Corrupt { .. })
    ));
    assert!(matches!(
        open_savepoint(&root.path().join("nowhere")),
        Err(SavepointError::Missing { .. })
    ));
    // The layout is a store's: a job directory holding one complete checkpoint reads as one.
    assert!(open_savepoint(store.layout().root()).is_ok());
}

#[test]
fn a_savepoint_inside_the_jobs_checkpoint_directory_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = job_store(root.path());
    let checkpoints = store.layout().root().to_path_buf();
    for target in [
        checkpoints.clone(),
        checkpoints.join("sp"),
        checkpoints.join("new").join("deeper"),
        checkpoints.join("..").join("job").join("sp"),
    ] {
        match write_savepoint(&store, CheckpointId(3), &target) {
            Err(e @ SavepointError::InsideCheckpoints { .. }) => {
                assert!(
                    e.to_string()
                        .contains("inside the job's checkpoint directory"),
                    "{e}"
                )
            }
            other => panic!("{}: {other:?}", target.display()),
        }
    }
    // Beside it is fine, even with a name that starts the same.
    write_savepoint(&store, CheckpointId(3), &root.path().join("job-sp")).expect("beside");
}
