//! What a task restores from when the job resumes from a checkpoint.

use crate::error::{BoxError, JobError};
use snapflow_checkpoint::{CheckpointId, CheckpointStore, KeyGroupRange, Manifest, Snapshot};
use std::sync::Arc;

/// The checkpoint a job resumes from, shared by all its tasks.
pub(crate) struct RestorePoint {
    pub store: CheckpointStore,
    pub manifest: Manifest,
}

/// An operator's state in the checkpoint the job resumes from, as one task sees it.
///
/// It holds every snapshot of the operator, not only the one this task wrote, so that keyed
/// state can be split by key group when the parallelism changed: each task keeps the entries
/// of its own [`key_groups`](RestoredState::key_groups).
pub struct RestoredState {
    checkpoint: CheckpointId,
    key_groups: KeyGroupRange,
    snapshots: Vec<Payload>,
}

/// One old task's state: memory-mapped from its snapshot file, or given in memory.
enum Payload {
    Mapped(Snapshot),
    Owned(Vec<u8>),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Mapped(snapshot) => snapshot.payload(),
            Payload::Owned(bytes) => bytes,
        }
    }
}

impl RestoredState {
    pub(crate) fn load(
        point: &Arc<RestorePoint>,
        uid: &str,
        key_groups: KeyGroupRange,
    ) -> Result<RestoredState, BoxError> {
        let snapshots = point
            .manifest
            .snapshots_of(uid)
            .map(|entry| {
                point
                    .store
                    .open_snapshot(&point.manifest, entry)
                    .map(Payload::Mapped)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RestoredState {
            checkpoint: point.manifest.checkpoint,
            key_groups,
            snapshots,
        })
    }

    /// A restored state made of the given payloads (what each old task's `snapshot`
    /// returned), for testing an operator or a committer without a checkpoint on disk.
    pub fn from_payloads(
        checkpoint: CheckpointId,
        key_groups: KeyGroupRange,
        payloads: Vec<Vec<u8>>,
    ) -> RestoredState {
        RestoredState {
            checkpoint,
            key_groups,
            snapshots: payloads.into_iter().map(Payload::Owned).collect(),
        }
    }

    /// The checkpoint being restored.
    pub fn checkpoint(&self) -> CheckpointId {
        self.checkpoint
    }

    /// The key groups this task owns now.
    pub fn key_groups(&self) -> &KeyGroupRange {
        &self.key_groups
    }

    /// Whether the operator had no state in the checkpoint.
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }

    /// The serialized state of every task of the operator in the checkpoint (what
    /// `snapshot` returned), read straight from the memory-mapped files.
    pub fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        self.snapshots.iter().map(Payload::bytes)
    }
}

/// Decides where a job resumes from: the newest complete checkpoint in `store`, if any.
///
/// Refuses (rather than falls back) when a checkpoint newer than that one is corrupt, since
/// its output may already be published, and when the checkpoint was written by a different
/// job graph. A directory with only incomplete checkpoints means nothing was ever committed,
/// and so nothing published: the job starts from the beginning.
pub(crate) fn find_restore_point(
    store: &CheckpointStore,
    graph_fingerprint: u64,
    operators: &[String],
) -> Result<Option<Arc<RestorePoint>>, JobError> {
    let dir = store.layout().root().to_path_buf();
    let (decision, manifest) = store.latest()?;
    if let Some((checkpoint, reason)) = decision.newer_corrupt.last() {
        return Err(JobError::CorruptCheckpoint {
            dir,
            checkpoint: *checkpoint,
            reason: reason.clone(),
        });
    }
    let Some(manifest) = manifest else {
        return Ok(None);
    };
    if manifest.graph_fingerprint != graph_fingerprint {
        let missing = |from: &[String], to: &[String]| -> Vec<String> {
            from.iter()
                .filter(|uid| !to.contains(uid))
                .cloned()
                .collect()
        };
        return Err(JobError::GraphMismatch {
            dir,
            checkpoint: manifest.checkpoint,
            added: missing(operators, &manifest.operators),
            removed: missing(&manifest.operators, operators),
        });
    }
    Ok(Some(Arc::new(RestorePoint {
        store: store.clone(),
        manifest,
    })))
}
