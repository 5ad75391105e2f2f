//! An operator's state in the checkpoint the job resumes from, as its `restore` sees it.

use snapflow_checkpoint::{CheckpointId, KeyGroupRange, Snapshot};
use std::ops::Deref;
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
    snapshots: Vec<Vec<SharedPayload>>,
}

/// One restored snapshot file's payload, shared: an operator may keep it after `restore`
/// returns (to decode its state lazily) and send it to other threads. Cloning it copies a
/// pointer; it derefs to the payload bytes.
///
/// A memory-mapped file stays mapped while a handle to it lives. That is sound because a
/// committed snapshot file is never written again, and deleting it (retention) leaves the map
/// readable on the platforms snapflow runs on.
#[derive(Clone)]
pub struct SharedPayload(Payload);

/// Where the bytes are: memory-mapped from a snapshot file, or given in memory.
#[derive(Clone)]
enum Payload {
    Mapped(Arc<Snapshot>),
    Owned(Arc<[u8]>),
}

impl Deref for SharedPayload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Payload::Mapped(snapshot) => snapshot.payload(),
            Payload::Owned(bytes) => bytes,
        }
    }
}

impl AsRef<[u8]> for SharedPayload {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for SharedPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            Payload::Mapped(_) => "mapped",
            Payload::Owned(_) => "owned",
        };
        write!(f, "SharedPayload({kind}, {} bytes)", self.len())
    }
}

impl SharedPayload {
    fn mapped(snapshot: Arc<Snapshot>) -> SharedPayload {
        SharedPayload(Payload::Mapped(snapshot))
    }

    fn owned(bytes: Vec<u8>) -> SharedPayload {
        SharedPayload(Payload::Owned(bytes.into()))
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
                .map(|chain| chain.into_iter().map(SharedPayload::mapped).collect())
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
        let chains = payloads.into_iter().map(|p| vec![p]).collect();
        RestoredState::from_chains(checkpoint, key_groups, chains)
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
                .map(|chain| chain.into_iter().map(SharedPayload::owned).collect())
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
            .filter_map(|chain| chain.last().map(|payload| &**payload))
    }

    /// Every old task's state as a chain of payloads, oldest first: one full snapshot, then
    /// the deltas to apply over it in order (none for a full snapshot).
    pub fn chains(&self) -> impl Iterator<Item = Vec<&[u8]>> {
        self.snapshots
            .iter()
            .map(|chain| chain.iter().map(|payload| &**payload).collect())
    }

    /// As [`chains`](Self::chains), but as handles the operator may keep after `restore`
    /// returns and move to other threads (to decode its state lazily): each is the same memory
    /// map (or bytes) the borrowed payloads come from, not a copy.
    pub fn shared_chains(&self) -> impl Iterator<Item = Vec<SharedPayload>> + '_ {
        self.snapshots.iter().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_shareable<T: Clone + Send + Sync + 'static>(_: &T) {}

    #[test]
    fn shared_chains_outlive_the_restored_state_and_match_chains() {
        let range = KeyGroupRange { groups: 0..4 };
        let state = RestoredState::from_chains(
            CheckpointId(3),
            range,
            vec![vec![vec![1, 2], vec![3]], vec![vec![4, 5, 6]]],
        );
        let borrowed: Vec<Vec<Vec<u8>>> = state
            .chains()
            .map(|chain| chain.into_iter().map(<[u8]>::to_vec).collect())
            .collect();
        let shared: Vec<Vec<SharedPayload>> = state.shared_chains().collect();
        // The handles point at the same bytes as the borrowed payloads, not at copies.
        for (chain, handles) in state.chains().zip(&shared) {
            for (bytes, handle) in chain.into_iter().zip(handles) {
                assert_eq!(bytes.as_ptr(), handle.as_ptr());
            }
        }
        drop(state);
        assert_shareable(&shared[0][0]);
        let moved = std::thread::spawn(move || {
            shared
                .iter()
                .map(|chain| chain.iter().map(|p| p.to_vec()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .join()
        .expect("thread");
        assert_eq!(moved, borrowed);
        assert_eq!(
            borrowed,
            vec![vec![vec![1, 2], vec![3]], vec![vec![4, 5, 6]]]
        );
    }
}
