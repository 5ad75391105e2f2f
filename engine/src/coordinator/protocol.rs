//! Messages between the coordinator and the tasks (besides barriers, which travel in band).

use crate::coordinator::pending::{TaskAckStats, TaskKey};
use snapflow_checkpoint::{CheckpointId, SnapshotEntry, SourceOffset};

/// The coordinator asks a source task to start a checkpoint.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Trigger {
    pub id: CheckpointId,
    /// The last checkpoint of the job: every source is exhausted, and after emitting this
    /// barrier the sources send end-of-stream.
    pub is_final: bool,
}

/// What a task tells the coordinator.
#[derive(Debug)]
pub(crate) enum TaskReport {
    /// The task took its part of checkpoint `checkpoint`; its state file (if any) is durable.
    Ack {
        task: TaskKey,
        checkpoint: CheckpointId,
        stats: TaskAckStats,
        snapshot: Option<SnapshotEntry>,
        source_offset: Option<SourceOffset>,
    },
    /// The task could not take its part of checkpoint `checkpoint`; the checkpoint is aborted.
    SnapshotFailed {
        task: TaskKey,
        checkpoint: CheckpointId,
        error: String,
    },
    /// A source task has read all of its input; it stays alive to take part in checkpoints
    /// until the final one.
    Exhausted { task: TaskKey },
}
