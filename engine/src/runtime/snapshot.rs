//! The task side of a checkpoint: take the snapshot on the task's thread, write it to disk on
//! the snapshot pool, then acknowledge to the coordinator.

use crate::coordinator::pending::{TaskAckStats, TaskKey};
use crate::coordinator::protocol::TaskReport;
use crate::error::{BoxError, TaskError};
use crate::error_chain::ErrorChain;
use crate::inject::{CrashPoint, FailureInjector};
use crate::operator::SourcePosition;
use crate::{FrozenSnapshot, SnapshotRequest};
use crossbeam_channel::Sender;
use snapflow_checkpoint::{
    write_snapshot, ChainLink, CheckpointId, CheckpointLayout, SnapshotEntry, SourceOffset,
};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
    /// Whether snapshots may build on earlier ones (incremental checkpoints).
    pub incremental: bool,
    /// Crash points of the job (for the chaos driver).
    pub crashes: FailureInjector,
    /// This task's snapshots that a later one may build on, by checkpoint (written by the
    /// snapshot pool, read at the barrier).
    pub history: Arc<Mutex<SnapshotHistory>>,
}

/// The most files a chain may have (one full snapshot, then deltas): bounds the files a
/// restore opens and the checkpoints retention must keep.
pub(crate) const MAX_CHAIN_FILES: usize = 32;

/// Whether a task's next snapshot may be a delta over `entry`, its snapshot of the newest
/// complete checkpoint: the chain it would end stays within [`MAX_CHAIN_FILES`], and the deltas
/// in the chain so far add up to less than half the full snapshot they apply to. So a restore
/// reads at most about 1.5 times a full snapshot's bytes, and when most keys change between
/// checkpoints (deltas nearly as large as a full one) the task writes full snapshots. With few
/// keys changing, the chain runs to its file bound, spreading one full snapshot's cost over
/// [`MAX_CHAIN_FILES`] checkpoints.
fn may_build_on(entry: &SnapshotEntry) -> bool {
    let files_after_delta = entry.base.len() + 2;
    if files_after_delta > MAX_CHAIN_FILES {
        return false;
    }
    let (full, deltas) = match entry.base.split_first() {
        None => (entry.bytes, 0),
        Some((full, deltas)) => (
            full.bytes,
            deltas.iter().map(|link| link.bytes).sum::<u64>() + entry.bytes,
        ),
    };
    deltas.saturating_mul(2) < full
}

/// The snapshots one task wrote (or restored from), that a later snapshot may build on.
#[derive(Debug)]
pub(crate) struct SnapshotHistory {
    entries: BTreeMap<CheckpointId, SnapshotEntry>,
    /// The checkpoint the task restored from: complete, though this attempt did not complete
    /// it.
    restored_from: CheckpointId,
}

impl Default for SnapshotHistory {
    fn default() -> Self {
        SnapshotHistory {
            entries: BTreeMap::new(),
            restored_from: CheckpointId(0),
        }
    }
}

impl SnapshotHistory {
    /// A history holding the snapshot the task restored from, as the base of its first
    /// incremental snapshot.
    pub(crate) fn restored(checkpoint: CheckpointId, entry: SnapshotEntry) -> SnapshotHistory {
        SnapshotHistory {
            entries: BTreeMap::from([(checkpoint, entry)]),
            restored_from: checkpoint,
        }
    }

    /// The base for a snapshot taken now, when checkpoint `completed` is the newest one this
    /// attempt completed (0 for none): this task's snapshot of the newest complete checkpoint,
    /// unless its chain is at the bound ([`may_build_on`]). Forgets snapshots older than that one, which no later
    /// snapshot builds on.
    pub(crate) fn base_for(
        &mut self,
        completed: CheckpointId,
    ) -> Option<(CheckpointId, SnapshotEntry)> {
        let completed = completed.max(self.restored_from);
        self.entries = self.entries.split_off(&completed);
        let entry = self.entries.get(&completed)?;
        may_build_on(entry).then(|| (completed, entry.clone()))
    }

    fn record(&mut self, checkpoint: CheckpointId, entry: SnapshotEntry) {
        self.entries.insert(checkpoint, entry);
    }
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

    /// Takes this task's part of checkpoint `id`: runs `freeze` on the calling thread (the
    /// only part that holds up the task's records), then serializes what it froze, writes the
    /// file and acknowledges on the snapshot pool.
    pub(crate) fn checkpoint(
        &self,
        id: CheckpointId,
        alignment: Duration,
        freeze: impl FnOnce(SnapshotRequest) -> Result<FrozenSnapshot, BoxError>,
    ) -> Result<(), TaskError> {
        let started = Instant::now();
        let base = self.base();
        let frozen = if self.stores_state() {
            freeze(SnapshotRequest {
                checkpoint: id,
                base: base.as_ref().map(|(id, _)| *id),
            })?
        } else {
            FrozenSnapshot::Ready(None)
        };
        // The chain a delta builds on, looked up now: the history may forget it before the
        // write runs.
        let chain = match (frozen.delta_of(), base) {
            (None, _) => Vec::new(),
            (Some(delta_of), Some((base, entry))) if delta_of == base => entry.chain(base),
            (Some(delta_of), _) => {
                return Err(TaskError::Failed(
                    format!(
                        "the operator's snapshot of checkpoint {id} is a delta over checkpoint \
                         {delta_of}, which the runtime did not offer as a base"
                    )
                    .into(),
                ))
            }
        };
        let stats = TaskAckStats {
            alignment,
            sync_snapshot: started.elapsed(),
            async_snapshot: Duration::ZERO,
            bytes: 0,
        };
        match (frozen, &self.layout) {
            (FrozenSnapshot::Ready(None), _) | (_, None) => self.ack_without_state(id, stats),
            (frozen, Some(layout)) => {
                let ctx = self.clone();
                let layout = layout.clone();
                self.pool
                    .spawn(move || ctx.write_and_ack(&layout, id, frozen, chain, stats));
            }
        }
        Ok(())
    }

    /// The base a snapshot taken now may build on, if incremental snapshots are on.
    fn base(&self) -> Option<(CheckpointId, SnapshotEntry)> {
        if !self.incremental || !self.stores_state() {
            return None;
        }
        let completed = CheckpointId(self.completed_id());
        self.history_lock().base_for(completed)
    }

    fn history_lock(&self) -> MutexGuard<'_, SnapshotHistory> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ack_without_state(&self, id: CheckpointId, stats: TaskAckStats) {
        self.report(TaskReport::Ack {
            task: self.task,
            checkpoint: id,
            stats,
            snapshot: None,
            source_offset: None,
        });
    }

    fn write_and_ack(
        &self,
        layout: &CheckpointLayout,
        id: CheckpointId,
        frozen: FrozenSnapshot,
        chain: Vec<ChainLink>,
        mut stats: TaskAckStats,
    ) {
        if id.0 <= self.settled.load(Ordering::Relaxed) {
            return; // aborted while this write waited in the queue
        }
        let path = layout.snapshot_file(id, &self.uid, self.index);
        let started = Instant::now();
        let bytes = match frozen.serialize() {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return self.ack_without_state(id, stats),
            Err(e) => {
                return self.report(TaskReport::SnapshotFailed {
                    task: self.task,
                    checkpoint: id,
                    error: format!(
                        "serializing the state of '{}' task {}: {}",
                        self.uid,
                        self.index,
                        ErrorChain(&*e)
                    ),
                })
            }
        };
        if self.crashes.crash_due(CrashPoint::SnapshotWrite) {
            // As a kill in the middle of the write would leave it: a file cut short.
            let _ = std::fs::write(&path, &bytes[..bytes.len() / 2]);
            eprintln!("injected crash while writing {}", path.display());
            std::process::abort();
        }
        let report = match write_snapshot(&path, &self.uid, self.index, id, &bytes) {
            Ok(info) => {
                stats.bytes = info.bytes;
                stats.async_snapshot = started.elapsed();
                let entry = SnapshotEntry {
                    operator_uid: self.uid.to_string(),
                    task: self.index,
                    file: info.file,
                    bytes: info.bytes,
                    checksum: info.checksum,
                    base: chain,
                };
                self.history_lock().record(id, entry.clone());
                TaskReport::Ack {
                    task: self.task,
                    checkpoint: id,
                    stats,
                    snapshot: Some(entry),
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

#[cfg(test)]
mod tests {
    use super::*;
    use snapflow_checkpoint::ChainLink;

    fn link(checkpoint: u64, bytes: u64) -> ChainLink {
        ChainLink {
            checkpoint: CheckpointId(checkpoint),
            file: format!("f{checkpoint}"),
            bytes,
            checksum: 0,
        }
    }

    /// A snapshot of `bytes` over a chain of files of `chain` bytes each (oldest first).
    fn entry(bytes: u64, chain: &[u64]) -> SnapshotEntry {
        SnapshotEntry {
            operator_uid: "op".to_owned(),
            task: 0,
            file: "f".to_owned(),
            bytes,
            checksum: 0,
            base: chain
                .iter()
                .enumerate()
                .map(|(i, &b)| link(i as u64 + 1, b))
                .collect(),
        }
    }

    #[test]
    fn small_deltas_build_on_a_full_snapshot_up_to_the_file_bound() {
        assert!(may_build_on(&entry(1000, &[])));
        let mut chain = vec![1000];
        chain.extend(std::iter::repeat_n(10, MAX_CHAIN_FILES - 3));
        // The chain ending at this entry has MAX - 1 files: one more delta fits.
        assert!(may_build_on(&entry(10, &chain)));
        chain.push(10);
        assert!(!may_build_on(&entry(10, &chain)));
    }

    #[test]
    fn deltas_adding_up_to_half_the_full_snapshot_end_the_chain() {
        assert!(may_build_on(&entry(400, &[1000, 99])));
        assert!(!may_build_on(&entry(401, &[1000, 99])));
        // Nearly every key changing: the second delta is already refused.
        assert!(!may_build_on(&entry(900, &[1000])));
        // An empty full snapshot: every delta is at least as large.
        assert!(!may_build_on(&entry(10, &[0])));
    }
}
