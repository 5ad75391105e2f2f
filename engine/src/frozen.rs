//! State frozen at a barrier and serialized later, off the task's thread.
//!
//! A task's thread is blocked only while an operator *freezes* its state (for a
//! copy-on-write store: hands out shared references to its current maps, which the task then
//! copies on its next write to each). Serializing the frozen view and writing the file run on
//! the snapshot pool while the task goes on processing records.

use crate::error::BoxError;
use snapflow_checkpoint::CheckpointId;

/// What the runtime asks of an operator's snapshot at a barrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// The checkpoint whose barrier arrived.
    pub checkpoint: CheckpointId,
    /// A completed checkpoint holding this task's previous snapshot, which the new one may
    /// build on (an incremental snapshot: only what changed since `base`'s barrier). `None`
    /// asks for a full snapshot: incremental checkpoints are off, the chain reached its
    /// bound, there is no completed snapshot of this task yet, or the checkpoint must be
    /// self-contained (a savepoint).
    pub base: Option<CheckpointId>,
}

impl SnapshotRequest {
    /// A request for a full snapshot of `checkpoint`.
    pub fn full(checkpoint: CheckpointId) -> SnapshotRequest {
        SnapshotRequest {
            checkpoint,
            base: None,
        }
    }
}

/// Serializes state frozen at a barrier: called once, on the snapshot pool.
pub type SerializeFrozen = Box<dyn FnOnce() -> Result<Option<Vec<u8>>, BoxError> + Send>;

/// What an operator hands the runtime at a barrier.
pub enum FrozenSnapshot {
    /// The state already serialized on the task's thread (what `snapshot` returns), or `None`.
    Ready(Option<Vec<u8>>),
    /// A view of the state as it was at the barrier, to be serialized on the snapshot pool.
    /// Whatever the operator does after returning it must not change what it serializes.
    Deferred {
        /// `Some(base)` when the bytes are a delta over the task's snapshot of `base` (the
        /// request's base; restoring applies it over that one), `None` for a full snapshot.
        delta_of: Option<CheckpointId>,
        /// Serializes the frozen view.
        serialize: SerializeFrozen,
    },
}

impl FrozenSnapshot {
    /// A full snapshot serialized by `serialize` on the snapshot pool.
    pub fn deferred(
        serialize: impl FnOnce() -> Result<Option<Vec<u8>>, BoxError> + Send + 'static,
    ) -> FrozenSnapshot {
        FrozenSnapshot::Deferred {
            delta_of: None,
            serialize: Box::new(serialize),
        }
    }

    /// A delta over the task's snapshot of checkpoint `base`, serialized by `serialize` on the
    /// snapshot pool.
    pub fn delta(
        base: CheckpointId,
        serialize: impl FnOnce() -> Result<Option<Vec<u8>>, BoxError> + Send + 'static,
    ) -> FrozenSnapshot {
        FrozenSnapshot::Deferred {
            delta_of: Some(base),
            serialize: Box::new(serialize),
        }
    }

    /// The checkpoint this snapshot is a delta over, if it is one.
    pub fn delta_of(&self) -> Option<CheckpointId> {
        match self {
            FrozenSnapshot::Ready(_) => None,
            FrozenSnapshot::Deferred { delta_of, .. } => *delta_of,
        }
    }

    /// Serializes the snapshot now, on the calling thread (harnesses and tests; the runtime
    /// does this on the snapshot pool).
    ///
    /// # Errors
    /// The deferred serialization failed.
    pub fn serialize(self) -> Result<Option<Vec<u8>>, BoxError> {
        match self {
            FrozenSnapshot::Ready(bytes) => Ok(bytes),
            FrozenSnapshot::Deferred { serialize, .. } => serialize(),
        }
    }
}

impl std::fmt::Debug for FrozenSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrozenSnapshot::Ready(bytes) => f
                .debug_tuple("Ready")
                .field(&bytes.as_ref().map(Vec::len))
                .finish(),
            FrozenSnapshot::Deferred { delta_of, .. } => f
                .debug_struct("Deferred")
                .field("delta_of", delta_of)
                .finish(),
        }
    }
}
