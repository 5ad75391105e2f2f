//! Checkpoint storage for snapflow: snapshot files, manifests, the checkpoint store, and the
//! key-group layout of keyed state.
//!
//! # Key groups
//!
//! snapflow partitions keyed state Flink-style: every key hashes into one of a fixed number of
//! *key groups* (the job's max parallelism), and each parallel task owns a contiguous range of
//! key groups. Because the number of key groups never changes for a job, state written by a job
//! at one parallelism can later be split or merged by key group for another parallelism
//! ([`encode_keyed_state`], [`decode_keyed_state`]).
//!
//! # On disk
//!
//! ```text
//! <root>/chk-00000000000000000007/    one directory per checkpoint (CheckpointLayout)
//!     count-00000.snap                 one snapshot file per task: checked header + payload
//!     MANIFEST                         written last, atomically: the commit point
//! ```
//!
//! Every file has a magic, a format version, a header checksum and a payload checksum; a torn,
//! truncated or altered file is reported as [`CheckpointError::Corrupt`], never loaded. Which
//! checkpoint to restore and which to delete are pure decisions ([`decide_latest`],
//! [`retention_plan`]) over what [`CheckpointStore::scan`] finds.
//!
//! # Example
//!
//! ```
//! use snapflow_checkpoint::{
//!     decode_keyed_state, encode_keyed_state, write_snapshot, CheckpointId, CheckpointStore,
//!     KeyGroupRange, Manifest, SnapshotEntry,
//! };
//! use std::collections::HashMap;
//!
//! # fn main() -> snapflow_checkpoint::Result<()> {
//! # let dir = tempfile::tempdir().expect("tempdir");
//! let store = CheckpointStore::open(dir.path().join("wordcount"))?;
//! let id = store.next_id()?;
//! store.begin(id)?;
//!
//! // Each task writes its state and reports the file to the coordinator.
//! let counts = HashMap::from([("the".to_string(), 3u64), ("fox".to_string(), 1)]);
//! let payload = encode_keyed_state(&counts, 128)?;
//! let path = store.layout().snapshot_file(id, "count", 0);
//! let info = write_snapshot(&path, "count", 0, id, &payload)?;
//!
//! // Once every task has acked, the coordinator commits the manifest, last.
//! store.commit(&Manifest {
//!     checkpoint: id,
//!     job: "wordcount".into(),
//!     graph_fingerprint: 0,
//!     triggered_at_ms: 0,
//!     completed_at_ms: 0,
//!     snapshots: vec![SnapshotEntry::new("count", 0, info)],
//!     source_offsets: vec![],
//!     operators: vec!["count".into()],
//!     is_final: false,
//! })?;
//!
//! // After a restart: find the latest complete checkpoint and restore task 1 of 2.
//! let (decision, manifest) = store.latest()?;
//! assert_eq!(decision.latest, Some(id));
//! let manifest = manifest.expect("complete checkpoint has a manifest");
//! let mut restored: Vec<(String, u64)> = Vec::new();
//! for entry in manifest.snapshots_of("count") {
//!     let snapshot = store.open_snapshot(&manifest, entry)?;
//!     let owned = KeyGroupRange::for_task(1, 2, 128);
//!     restored.extend(decode_keyed_state::<String, u64>(snapshot.payload(), &owned, 128)?);
//! }
//! assert!(restored.len() <= counts.len());
//! # Ok(())
//! # }
//! ```
//!
//! This crate sits at the bottom of the dependency chain
//! (`checkpoint` <- `engine` <- `operators` <- `snapflow`) so that the runtime's hash
//! partitioner and the state backend agree on one definition of "which task owns this key".

mod backend;
mod error;
mod format;
mod fs;
mod id;
mod key_group;
mod layout;
mod manifest;
mod recovery;
mod savepoint;
mod snapshot;
mod store;

pub use backend::{
    decode_keyed_changes, decode_keyed_section, decode_keyed_state, encode_keyed_changes,
    encode_keyed_state, keyed_state_types, read_keyed_index, KeyedChanges, KeyedIndex,
    KeyedSection, StateTypes, KEYED_CHANGES_FORMAT, KEYED_SECTIONS_FORMAT, KEYED_STATE_FORMAT,
};
pub use error::{CheckpointError, Result};
pub use format::{
    SnapshotHeader, MANIFEST_FORMAT_VERSION, MANIFEST_MAGIC, MAX_OPERATOR_UID_LEN,
    SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC,
};
pub use fs::{fsync_dir, write_atomic};
pub use id::CheckpointId;
pub use key_group::{
    key_group_of_hash, key_hash, task_for_key_group, KeyGroup, KeyGroupRange, KeyGroupRouter,
    DEFAULT_MAX_PARALLELISM,
};
pub use layout::{checkpoint_dir_name, is_plain_file_name, CheckpointLayout};
pub use manifest::{ChainLink, Manifest, SnapshotEntry, SourceOffset};
pub use recovery::{
    decide_latest, retention_plan, CheckpointState, CheckpointStatus, LatestDecision,
};
pub use savepoint::{open_savepoint, savepoint_checkpoint, write_savepoint, SavepointError};
pub use snapshot::{
    verify_snapshot_file, write_snapshot, write_snapshot_serialized, ExpectedSnapshot, Snapshot,
    SnapshotInfo,
};
pub use store::{unreferenced, CheckpointStore, OpenedCheckpoint, DEFAULT_RETAINED};
