//! The checkpoint coordinator: one thread per job that triggers checkpoints at the sources,
//! collects the tasks' acknowledgements, makes each complete checkpoint durable (manifest
//! last), then has the sinks publish its output.
//!
//! A checkpoint is complete when every task has acknowledged it. Exhausted sources stay alive
//! and keep acknowledging, so every checkpoint covers every task; when all sources are
//! exhausted the coordinator triggers the final checkpoint, whose barrier the sources follow
//! with end-of-stream, and the job ends when that checkpoint is committed.

pub(crate) mod pending;
pub(crate) mod protocol;
pub(crate) mod restart;
mod stats;

pub(crate) use stats::StatsLog;
pub use stats::{CheckpointEvent, CheckpointStats};

use crate::config::CheckpointConfig;
use crate::error::JobError;
use crate::error_chain::ErrorChain;
use crate::operator::Committer;
use crate::runtime::metrics::TaskCounters;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use pending::{AckOutcome, PendingCheckpoint, TaskKey};
use protocol::{TaskReport, Trigger};
use snapflow_checkpoint::{CheckpointId, CheckpointStore, Manifest, SnapshotEntry, SourceOffset};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the coordinator looks at the job's stop flag while nothing else happens.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How the coordinator ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CoordinatorExit {
    /// The final checkpoint is committed: all output is published.
    Finished,
    /// The job was stopped (cancelled, or a task failed) before its final checkpoint.
    Stopped,
    /// A graceful stop: checkpoint `0` completed and its output is published; the tasks were
    /// then stopped, and a rerun resumes from it.
    StoppedAt(CheckpointId),
}

/// Everything the coordinator works with, set up by the planner.
pub(crate) struct Coordinator {
    pub job: String,
    pub graph_fingerprint: u64,
    /// Every operator's uid, recorded in manifests.
    pub operators: Vec<String>,
    pub checkpoints: Option<(CheckpointConfig, CheckpointStore)>,
    pub first_id: CheckpointId,
    pub tasks: Vec<TaskKey>,
    pub sources: Vec<(TaskKey, Sender<Trigger>)>,
    pub source_counters: Vec<Arc<TaskCounters>>,
    pub reports: Receiver<TaskReport>,
    pub committers: Vec<Arc<dyn Committer>>,
    pub stop: Arc<AtomicBool>,
    /// A graceful stop was asked for: take a checkpoint, then stop.
    pub stop_requested: Arc<AtomicBool>,
    pub stats: StatsLog,
    pub listener: Option<Sender<CheckpointEvent>>,
    /// The highest checkpoint id that is completed or aborted, shared with the snapshot
    /// writers so that they skip work for checkpoints that can no longer complete.
    pub settled: Arc<AtomicU64>,
    /// The newest checkpoint completed and published, which tasks check to be notified.
    pub completed: Arc<AtomicU64>,
}

/// The checkpoint in flight.
struct InFlight {
    acks: PendingCheckpoint,
    triggered: Instant,
    triggered_at_ms: u64,
    snapshots: Vec<SnapshotEntry>,
    offsets: Vec<SourceOffset>,
}

impl Coordinator {
    /// Runs until the final checkpoint is committed or the job stops. A failure here stops the
    /// job too.
    pub(crate) fn run(mut self) -> Result<CoordinatorExit, JobError> {
        let result = self.drive();
        if !matches!(result, Ok(CoordinatorExit::Finished)) {
            self.stop.store(true, Ordering::Relaxed);
        }
        // A task blocked in a sink's database call ends only once its committer lets go.
        let interrupted = !matches!(
            result,
            Ok(CoordinatorExit::Finished | CoordinatorExit::StoppedAt(_))
        );
        for committer in &self.committers {
            committer.close(interrupted);
        }
        result
    }

    fn drive(&mut self) -> Result<CoordinatorExit, JobError> {
        let mut next_id = self.first_id;
        let mut in_flight: Option<InFlight> = None;
        let mut exhausted: HashSet<TaskKey> = HashSet::new();
        let interval = self.checkpoints.as_ref().map(|(c, _)| c.interval);
        let timeout = self.checkpoints.as_ref().map(|(c, _)| c.timeout);
        let mut next_periodic = interval.map(|i| Instant::now() + i);
        let mut rate_mark = (Instant::now(), self.records_read());
        // The checkpoint a graceful stop waits for.
        let mut stop_at: Option<CheckpointId> = None;

        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(CoordinatorExit::Stopped);
            }
            let stop_wanted = self.stop_requested.load(Ordering::Relaxed);
            if stop_wanted && self.checkpoints.is_none() {
                // Nothing to resume from without checkpoints: a stop is a cancel.
                return Ok(CoordinatorExit::Stopped);
            }
            if in_flight.is_none() {
                let all_exhausted = exhausted.len() == self.sources.len();
                let periodic_due = next_periodic.is_some_and(|t| Instant::now() >= t);
                if all_exhausted || periodic_due || stop_wanted {
                    // Once every source is exhausted the final checkpoint ends the job anyway.
                    stop_at = (stop_wanted && !all_exhausted).then_some(next_id);
                    in_flight = Some(self.trigger(next_id, all_exhausted)?);
                    next_id = next_id.next();
                }
            }

            let mut deadline = Instant::now() + STOP_POLL;
            // The final checkpoint has no timeout: the sources have ended, so nothing could
            // subsume it, and it only waits for the backlog ahead of it to drain.
            match (&in_flight, timeout) {
                (Some(f), Some(t)) if !f.acks.is_final => deadline = deadline.min(f.triggered + t),
                (None, _) => {
                    if let Some(t) = next_periodic {
                        deadline = deadline.min(t);
                    }
                }
                _ => {}
            }
            let report = match self.reports.recv_deadline(deadline) {
                Ok(report) => report,
                Err(RecvTimeoutError::Timeout) => {
                    if let (Some(f), Some(t)) = (&in_flight, timeout) {
                        if !f.acks.is_final && f.triggered.elapsed() >= t {
                            let f = in_flight.take().expect("checked above");
                            let reason = format!(
                                "not complete after {t:?}: {} tasks have not acknowledged",
                                f.acks.waiting()
                            );
                            self.abort(f, reason)?;
                            next_periodic = interval.map(|i| Instant::now() + i);
                        }
                    }
                    continue;
                }
                // Every task and snapshot writer is gone: the job is over, and without a
                // committed final checkpoint it failed; the tasks' errors say why.
                Err(RecvTimeoutError::Disconnected) => return Ok(CoordinatorExit::Stopped),
            };
            match report {
                TaskReport::Exhausted { task } => {
                    exhausted.insert(task);
                }
                TaskReport::SnapshotFailed {
                    task,
                    checkpoint,
                    error,
                } => {
                    if in_flight.as_ref().is_some_and(|f| f.acks.id == checkpoint) {
                        let f = in_flight.take().expect("checked above");
                        self.abort(
                            f,
                            format!("task {task:?} could not write its snapshot: {error}"),
                        )?;
                        next_periodic = interval.map(|i| Instant::now() + i);
                    }
                }
                TaskReport::Ack {
                    task,
                    checkpoint,
                    stats,
                    snapshot,
                    source_offset,
                } => {
                    let Some(f) = in_flight.as_mut() else {
                        continue;
                    };
                    let outcome = f.acks.on_ack(checkpoint, task, &stats);
                    if outcome == AckOutcome::Ignored {
                        continue;
                    }
                    f.snapshots.extend(snapshot);
                    f.offsets.extend(source_offset);
                    if outcome == AckOutcome::Complete {
                        let f = in_flight.take().expect("checked above");
                        let (id, is_final) = (f.acks.id, f.acks.is_final);
                        self.complete(f, &mut rate_mark)?;
                        if is_final {
                            return Ok(CoordinatorExit::Finished);
                        }
                        if stop_at == Some(id) {
                            return Ok(CoordinatorExit::StoppedAt(id));
                        }
                        next_periodic = interval.map(|i| Instant::now() + i);
                    }
                }
            }
        }
    }

    fn trigger(&self, id: CheckpointId, is_final: bool) -> Result<InFlight, JobError> {
        if let Some((_, store)) = &self.checkpoints {
            store.begin(id)?;
        }
        for (_, triggers) in &self.sources {
            // A source that is gone has failed; the job is stopping and the tasks say why.
            let _ = triggers.send(Trigger { id, is_final });
        }
        tracing::debug!(checkpoint = id.0, is_final, "checkpoint triggered");
        Ok(InFlight {
            acks: PendingCheckpoint::new(id, is_final, self.tasks.iter().copied()),
            triggered: Instant::now(),
            triggered_at_ms: unix_ms(),
            snapshots: Vec::new(),
            offsets: Vec::new(),
        })
    }

    fn abort(&self, f: InFlight, reason: String) -> Result<(), JobError> {
        let id = f.acks.id;
        tracing::warn!(checkpoint = id.0, %reason, "checkpoint aborted");
        self.settled.fetch_max(id.0, Ordering::Relaxed);
        self.stats.aborted();
        if let Some((_, store)) = &self.checkpoints {
            // A snapshot write still running can race the removal; what it leaves is an
            // incomplete checkpoint, which is never restored and which retention deletes.
            if let Err(e) = store.abort(id) {
                tracing::warn!(checkpoint = id.0, error = %ErrorChain(&e), "could not remove an aborted checkpoint");
            }
        }
        // After the removal, so that a listener sees the files gone.
        self.notify(CheckpointEvent::Aborted {
            id,
            reason: reason.clone(),
        });
        if f.acks.is_final {
            // The sources have ended: there is no later checkpoint to subsume this one, and
            // publishing without it would break exactly-once. The job fails instead.
            return Err(JobError::FinalCheckpointFailed {
                checkpoint: id,
                reason,
            });
        }
        Ok(())
    }

    fn complete(&self, mut f: InFlight, rate_mark: &mut (Instant, u64)) -> Result<(), JobError> {
        let id = f.acks.id;
        self.settled.fetch_max(id.0, Ordering::Relaxed);
        if let Some((_, store)) = &self.checkpoints {
            f.snapshots
                .sort_by(|a, b| (&a.operator_uid, a.task).cmp(&(&b.operator_uid, b.task)));
            f.offsets
                .sort_by(|a, b| (&a.operator_uid, a.task).cmp(&(&b.operator_uid, b.task)));
            let manifest = Manifest {
                checkpoint: id,
                job: self.job.clone(),
                graph_fingerprint: self.graph_fingerprint,
                triggered_at_ms: f.triggered_at_ms,
                completed_at_ms: unix_ms(),
                snapshots: std::mem::take(&mut f.snapshots),
                source_offsets: std::mem::take(&mut f.offsets),
                operators: self.operators.clone(),
                is_final: f.acks.is_final,
            };
            // The commit point: from here on, recovery restores this checkpoint.
            store.commit(&manifest)?;
        }
        for committer in &self.committers {
            committer
                .commit(id)
                .map_err(|source| JobError::CommitFailed {
                    checkpoint: id,
                    source,
                })?;
        }
        self.completed.store(id.0, Ordering::Relaxed);
        if let Some((config, store)) = &self.checkpoints {
            if let Err(e) = store.retain(config.retained) {
                tracing::warn!(checkpoint = id.0, error = %ErrorChain(&e), "could not delete old checkpoints");
            }
        }
        let read = self.records_read();
        let elapsed = rate_mark.0.elapsed().as_secs_f64();
        let stats = CheckpointStats {
            id,
            is_final: f.acks.is_final,
            duration: f.triggered.elapsed(),
            longest_alignment: f.acks.longest_alignment,
            longest_sync_snapshot: f.acks.longest_sync_snapshot,
            bytes: f.acks.bytes,
            records_per_second: if elapsed > 0.0 {
                (read - rate_mark.1) as f64 / elapsed
            } else {
                0.0
            },
        };
        *rate_mark = (Instant::now(), read);
        tracing::info!(
            checkpoint = id.0,
            is_final = stats.is_final,
            duration_ms = stats.duration.as_secs_f64() * 1e3,
            longest_alignment_ms = stats.longest_alignment.as_secs_f64() * 1e3,
            bytes = stats.bytes,
            records_per_second = stats.records_per_second,
            "checkpoint complete"
        );
        self.notify(CheckpointEvent::Completed(stats.clone()));
        self.stats.completed(stats);
        Ok(())
    }

    fn notify(&self, event: CheckpointEvent) {
        if let Some(listener) = &self.listener {
            // Never block the coordinator on a listener: a full or closed one misses events.
            let _ = listener.try_send(event);
        }
    }

    fn records_read(&self) -> u64 {
        self.source_counters.iter().map(|c| c.records_in()).sum()
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
