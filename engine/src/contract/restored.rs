//! An operator's state in the checkpoint the job resumes from, as its `restore` sees it.

use snapflow_checkpoint::{CheckpointId, KeyGroupRange, Snapshot};

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
    /// A restored state read from `snapshots`, the memory-mapped snapshot files of every old
    /// task of the operator.
    pub(crate) fn mapped(
        checkpoint: CheckpointId,
        key_groups: KeyGroupRange,
        snapshots: Vec<Snapshot>,
    ) -> RestoredState {
        RestoredState {
            checkpoint,
            key_groups,
            snapshots: snapshots.into_iter().map(Payload::Mapped).collect(),
        }
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
