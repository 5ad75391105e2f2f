//! Statistics of completed checkpoints, readable while the job runs.

use snapflow_checkpoint::CheckpointId;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// What one completed checkpoint cost.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointStats {
    /// The checkpoint.
    pub id: CheckpointId,
    /// Whether it was the job's final checkpoint, taken when every source was exhausted.
    pub is_final: bool,
    /// When the coordinator triggered it (wall clock).
    pub triggered_at: SystemTime,
    /// From the trigger until the manifest was durable and the sinks committed.
    pub duration: Duration,
    /// The longest time a task spent aligning barriers.
    pub longest_alignment: Duration,
    /// The longest time a task's own thread spent taking its snapshot (the part that holds
    /// up the data; writing the file happens off the task's thread).
    pub longest_sync_snapshot: Duration,
    /// The longest time a snapshot file took to write, on the snapshot pool (the part that
    /// does not hold up the data).
    pub longest_async_snapshot: Duration,
    /// Bytes of snapshot files written.
    pub bytes: u64,
    /// Records read by all sources per second since the previous checkpoint completed.
    pub records_per_second: f64,
}

/// Something that happened to a checkpoint, as sent to a checkpoint listener.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckpointEvent {
    /// A checkpoint completed: its manifest is durable and its output published.
    Completed(CheckpointStats),
    /// A checkpoint was aborted; its files were removed and a later one subsumes it.
    Aborted {
        /// The checkpoint.
        id: CheckpointId,
        /// Why it was aborted.
        reason: String,
    },
}

/// All checkpoint statistics of a job, shared by its coordinator and its handle.
#[derive(Clone, Debug, Default)]
pub(crate) struct StatsLog {
    inner: Arc<Mutex<StatsInner>>,
}

#[derive(Debug, Default)]
struct StatsInner {
    completed: Vec<CheckpointStats>,
    aborted: Vec<AbortedCheckpoint>,
}

/// A checkpoint given up, as the history shows it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AbortedCheckpoint {
    pub id: CheckpointId,
    /// When it was triggered, if known.
    pub triggered_at: Option<SystemTime>,
    /// When it was aborted.
    pub aborted_at: SystemTime,
    pub reason: String,
}

impl StatsLog {
    pub(crate) fn completed(&self, stats: CheckpointStats) {
        self.lock().completed.push(stats);
    }

    pub(crate) fn aborted(&self, aborted: AbortedCheckpoint) {
        self.lock().aborted.push(aborted);
    }

    /// Every aborted checkpoint so far, oldest first.
    pub(crate) fn all_aborted(&self) -> Vec<AbortedCheckpoint> {
        self.lock().aborted.clone()
    }

    /// Every completed checkpoint so far, oldest first.
    pub(crate) fn all(&self) -> Vec<CheckpointStats> {
        self.lock().completed.clone()
    }

    /// The newest completed checkpoint, if any.
    pub(crate) fn last(&self) -> Option<CheckpointStats> {
        self.lock().completed.last().cloned()
    }

    /// How many checkpoints completed so far.
    pub(crate) fn completed_count(&self) -> u64 {
        self.lock().completed.len() as u64
    }

    /// How many checkpoints were aborted so far.
    pub(crate) fn aborted_count(&self) -> u64 {
        self.lock().aborted.len() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatsInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
