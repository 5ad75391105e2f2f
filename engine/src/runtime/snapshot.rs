//! The task side of a checkpoint: take the snapshot on the task's thread, write it to disk on
//! the snapshot pool, then acknowledge to the coordinator.

use crate::coordinator::pending::{TaskAckStats, TaskKey};
use crate::coordinator::protocol::TaskReport;
use crate::error::{BoxError, TaskError};
use crate::error_chain::ErrorChain;
use crate::operator::SourcePosition;
use crossbeam_channel::Sender;
use snapflow_checkpoint::{
    write_snapshot, CheckpointId, CheckpointLayout, SnapshotEntry, SourceOffset,
};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a task needs to take part in checkpoints.
#[derive(Clone)]
pub(crate) struct SnapshotContext {
    pub task: TaskKey,
    pub uid: Arc<str>,
    pub index: u32,
    pub reports: Sender<TaskReport>,
    /// `None` when the job takes no checkpoints: only the final one, which commits the sinks,
    /// and which then needs no state.
    pub layout: Option<Arc<CheckpointLayout>>,
    pub pool: Arc<rayon::ThreadPool>,
    /// Checkpoints up to this id are completed or aborted: a write for them is dead work.
    pub settled: Arc<AtomicU64>,
    /// The newest checkpoint that is complete and whose output is published.
    pub completed: Arc<AtomicU64>,
    /// The newest completed checkpoint this task was told about.
    pub notified: u64,
    /// Held by every task and every queued snapshot write; the job handle waits until all
    /// are dropped, so no write outlives the job. Never read: dropping it is the signal.
    #[allow(dead_code)]
    pub alive: Sender<Infallible>,
}

impl SnapshotContext {
    /// The newest checkpoint completed since the task last asked, if any: checked once per
    /// batch, so a task learns of a completion at its next input.
    pub(crate) fn newly_completed(&mut self) -> Option<CheckpointId> {
        let completed = self.completed.load(Ordering::Relaxed);
        (completed > self.notified).then(|| {
            self.notified = completed;
            CheckpointId(completed)
        })
    }

    /// The newest completed checkpoint of this job attempt (0 for none).
    pub(crate) fn completed_id(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Whether snapshots are written at all.
    pub(crate) fn stores_state(&self) -> bool {
        self.layout.is_some()
    }

    /// Takes this task's part of checkpoint `id`: runs `snapshot` on the calling thread (it only
    /// serializes), then writes the bytes and acknowledges off the thread.
    pub(crate) fn checkpoint(
        &self,
        id: CheckpointId,
        alignment: Duration,
        snapshot: impl FnOnce() -> Result<Option<Vec<u8>>, BoxError>,
    ) -> Result<(), TaskError> {
        let started = Instant::now();
        let state = if self.stores_state() {
            snapshot()?
        } else {
            None
        };
        let stats = TaskAckStats {
            alignment,
            sync_snapshot: started.elapsed(),
            async_snapshot: Duration::ZERO,
            bytes: 0,
        };
        match (state, &self.layout) {
            (Some(bytes), Some(layout)) => {
                let ctx = self.clone();
                let layout = layout.clone();
                self.pool
                    .spawn(move || ctx.write_and_ack(&layout, id, &bytes, stats));
            }
            _ => self.report(TaskReport::Ack {
                task: self.task,
                checkpoint: id,
                stats,
                snapshot: None,
                source_offset: None,
            }),
        }
        Ok(())
    }

    fn write_and_ack(
        &self,
        layout: &CheckpointLayout,
        id: CheckpointId,
        bytes: &[u8],
        mut stats: TaskAckStats,
    ) {
        if id.0 <= self.settled.load(Ordering::Relaxed) {
            return; // aborted while this write waited in the queue
        }
        let path = layout.snapshot_file(id, &self.uid, self.index);
        let started = Instant::now();
        let report = match write_snapshot(&path, &self.uid, self.index, id, bytes) {
            Ok(info) => {
                stats.bytes = info.bytes;
                stats.async_snapshot = started.elapsed();
                TaskReport::Ack {
                    task: self.task,
                    checkpoint: id,
                    stats,
                    snapshot: Some(SnapshotEntry {
                        operator_uid: self.uid.to_string(),
                        task: self.index,
                        file: info.file,
                        bytes: info.bytes,
                        checksum: info.checksum,
                    }),
                    source_offset: None,
                }
            }
            Err(e) => TaskReport::SnapshotFailed {
                task: self.task,
                checkpoint: id,
                // The reason names the file and the cause, e.g. no space left on device.
                error: ErrorChain(&e).to_string(),
            },
        };
        self.report(report);
    }

    /// A source's part of checkpoint `id`: its position goes into the manifest itself.
    pub(crate) fn checkpoint_source(
        &self,
        id: CheckpointId,
        position: Option<SourcePosition>,
    ) -> Result<(), TaskError> {
        let source_offset = match (position, self.stores_state()) {
            (Some(p), _) => Some(SourceOffset {
                operator_uid: self.uid.to_string(),
                task: self.index,
                offset: p.offset,
                description: p.description,
            }),
            (None, false) => None,
            (None, true) => {
                return Err(TaskError::Failed(
                    format!(
                        "source '{}' cannot record its position, so it cannot be checkpointed",
                        self.uid
                    )
                    .into(),
                ))
            }
        };
        self.report(TaskReport::Ack {
            task: self.task,
            checkpoint: id,
            stats: TaskAckStats::default(),
            snapshot: None,
            source_offset,
        });
        Ok(())
    }

    /// Tells the coordinator that this source has read all its input.
    pub(crate) fn exhausted(&self) {
        self.report(TaskReport::Exhausted { task: self.task });
    }

    fn report(&self, report: TaskReport) {
        // The coordinator is gone only when the job is stopping; the task notices that on its
        // own (stop flag, disconnected channels), so a lost report changes nothing.
        let _ = self.reports.send(report);
    }
}
