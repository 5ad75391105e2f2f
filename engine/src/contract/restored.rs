//! An operator's state in the checkpoint the job resumes from, as its `restore` sees it.

use snapflow_checkpoint::{CheckpointId, KeyGroupRange, Snapshot};
use std::sync::Arc;

/// An operator's state in the checkpoint the job resumes from, as one task sees it.
///
/// It holds every snapshot of the operator, not only the one this task wrote, so that keyed
/// state can be split by key group when the parallelism changed: each task keeps the entries
/// of its own [`key_groups`](RestoredState::key_groups). An incremental snapshot comes as a
/// chain: the full snapshot it builds on, then the deltas in order ([`chains`](Self::chains)).
pub struct RestoredState {
    checkpoint: CheckpointId,
    key_groups: KeyGroupRange,
    /// One chain per old task, oldest file first; a full snapshot is a chain of one.
    snapshots: Vec<Vec<Payload>>,
}

/// One old task's state: memory-mapped from its snapshot file, or given in memory.
enum Payload {
    Mapped(Arc<Snapshot>),
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
    /// A restored state read from `chains`, one per old task of the operator: the
    /// memory-mapped files of its snapshot, oldest first.
    pub(crate) fn mapped(
        checkpoint: CheckpointId,
        key_groups: KeyGroupRange,
        chains: Vec<Vec<Arc<Snapshot>>>,
    ) -> RestoredState {
        RestoredState {
            checkpoint,
            key_groups,
            snapshots: chains
                .into_iter()
                .map(|chain| chain.into_iter().map(Payload::Mapped).collect())
                .collect(),
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
            snapshots: payloads
                .into_iter()
                .map(|p| vec![Payload::Owned(p)])
                .collect(),
        }
    }

    /// A restored state made of chains of payloads, one per old task, each oldest first (a
    /// full snapshot, then the deltas over it), for testing incremental snapshots without a
    /// checkpoint on disk.
    pub fn from_chains(
        checkpoint: CheckpointId,
        key_groups: KeyGroupRange,
        chains: Vec<Vec<Vec<u8>>>,
    ) -> RestoredState {
        RestoredState {
            checkpoint,
            key_groups,
            snapshots: chains
                .into_iter()
                .map(|chain| chain.into_iter().map(Payload::Owned).collect())
                .collect(),
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
    /// `snapshot` returned), read straight from the memory-mapped files. For an incremental
    /// snapshot this is only its last delta: operators that write deltas read
    /// [`chains`](Self::chains).
    pub fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        self.snapshots
            .iter()
            .filter_map(|chain| chain.last().map(Payload::bytes))
    }

    /// Every old task's state as a chain of payloads, oldest first: one full snapshot, then
    /// the deltas to apply over it in order (none for a full snapshot).
    pub fn chains(&self) -> impl Iterator<Item = Vec<&[u8]>> {
        self.snapshots
            .iter()
            .map(|chain| chain.iter().map(Payload::bytes).collect())
    }
}
