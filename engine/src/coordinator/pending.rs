//! Which tasks have acknowledged the checkpoint in flight: a pure struct, no I/O.

use snapflow_checkpoint::CheckpointId;
use std::collections::HashSet;
use std::time::Duration;

/// A task, by node index and task index within the node.
pub(crate) type TaskKey = (usize, usize);

/// What one task reported for a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TaskAckStats {
    /// How long the task waited between the first and the last barrier of its inputs.
    pub alignment: Duration,
    /// How long the task's own thread spent taking the snapshot (copying or serializing).
    pub sync_snapshot: Duration,
    /// How long writing the snapshot file took, off the task's thread.
    pub async_snapshot: Duration,
    /// Bytes of the snapshot file, if the task has state.
    pub bytes: u64,
}

/// The checkpoint in flight and the tasks still to acknowledge it.
#[derive(Debug)]
pub(crate) struct PendingCheckpoint {
    pub id: CheckpointId,
    pub is_final: bool,
    waiting: HashSet<TaskKey>,
    pub longest_alignment: Duration,
    pub longest_sync_snapshot: Duration,
    pub longest_async_snapshot: Duration,
    pub bytes: u64,
}

/// The effect of one acknowledgement.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// Other tasks have yet to acknowledge.
    Waiting,
    /// This was the last one: the checkpoint can be committed.
    Complete,
    /// Not for this checkpoint (a late ack of an aborted one) or a repeated ack: ignored.
    Ignored,
}

impl PendingCheckpoint {
    pub(crate) fn new(
        id: CheckpointId,
        is_final: bool,
        tasks: impl IntoIterator<Item = TaskKey>,
    ) -> Self {
        PendingCheckpoint {
            id,
            is_final,
            waiting: tasks.into_iter().collect(),
            longest_alignment: Duration::ZERO,
            longest_sync_snapshot: Duration::ZERO,
            longest_async_snapshot: Duration::ZERO,
            bytes: 0,
        }
    }

    /// Records that `task` acknowledged checkpoint `id`.
    pub(crate) fn on_ack(
        &mut self,
        id: CheckpointId,
        task: TaskKey,
        stats: &TaskAckStats,
    ) -> AckOutcome {
        if id != self.id || !self.waiting.remove(&task) {
            return AckOutcome::Ignored;
        }
        self.longest_alignment = self.longest_alignment.max(stats.alignment);
        self.longest_sync_snapshot = self.longest_sync_snapshot.max(stats.sync_snapshot);
        self.longest_async_snapshot = self.longest_async_snapshot.max(stats.async_snapshot);
        self.bytes += stats.bytes;
        if self.waiting.is_empty() {
            AckOutcome::Complete
        } else {
            AckOutcome::Waiting
        }
    }

    /// How many tasks have yet to acknowledge.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(ms: u64, bytes: u64) -> TaskAckStats {
        TaskAckStats {
            alignment: Duration::from_millis(ms),
            sync_snapshot: Duration::from_millis(ms / 2),
            async_snapshot: Duration::from_millis(ms * 2),
            bytes,
        }
    }

    #[test]
    fn completes_on_the_last_distinct_ack() {
        let mut p = PendingCheckpoint::new(CheckpointId(3), false, [(0, 0), (0, 1), (1, 0)]);
        assert_eq!(
            p.on_ack(CheckpointId(3), (0, 1), &stats(5, 10)),
            AckOutcome::Waiting
        );
        assert_eq!(
            p.on_ack(CheckpointId(3), (0, 1), &stats(9, 10)),
            AckOutcome::Ignored,
            "repeat"
        );
        assert_eq!(
            p.on_ack(CheckpointId(2), (0, 0), &stats(9, 10)),
            AckOutcome::Ignored,
            "old id"
        );
        assert_eq!(
            p.on_ack(CheckpointId(3), (0, 0), &stats(7, 20)),
            AckOutcome::Waiting
        );
        assert_eq!(p.waiting(), 1);
        assert_eq!(
            p.on_ack(CheckpointId(3), (1, 0), &stats(1, 0)),
            AckOutcome::Complete
        );
        assert_eq!(p.longest_alignment, Duration::from_millis(7));
        assert_eq!(p.longest_async_snapshot, Duration::from_millis(14));
        assert_eq!(p.bytes, 30);
    }

    #[test]
    fn unknown_task_is_ignored() {
        let mut p = PendingCheckpoint::new(CheckpointId(1), false, [(0, 0)]);
        assert_eq!(
            p.on_ack(CheckpointId(1), (5, 5), &stats(0, 0)),
            AckOutcome::Ignored
        );
        assert_eq!(
            p.on_ack(CheckpointId(1), (0, 0), &stats(0, 0)),
            AckOutcome::Complete
        );
    }
}
