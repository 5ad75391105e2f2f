//! The checkpoint coordinator: one thread per job that triggers checkpoints at the sources,
//! collects the tasks' acknowledgements, makes each complete checkpoint durable (manifest
//! last), then has the sinks publish its output.
//!
//! A checkpoint is complete when every task has acknowledged it. Exhausted sources stay alive
//! and keep acknowledging, so every checkpoint covers every task; when all sources are
//! exhausted the coordinator triggers the final checkpoint, whose barrier the sources follow
//! with end-of-stream, and the job ends when that checkpoint is committed.
//!
//! The decisions live in `state::Protocol`, a pure state machine with no threads, clocks or
//! disk; the coordinator thread here is the executor around it: it feeds the protocol ticks,
//! the tasks' reports and the stop flags with the current time, and performs its commands
//! (trigger, write the manifest, commit the sinks, abort) against the store and the sinks.

pub(crate) mod pending;
pub(crate) mod protocol;
mod retention;
pub(crate) mod savepoint;
mod state;

use crate::config::CheckpointConfig;
use crate::contract::stats::{AbortedCheckpoint, CheckpointEvent, CheckpointStats, StatsLog};
use crate::error::JobError;
use crate::error_chain::ErrorChain;
use crate::inject::FailureInjector;
use crate::metrics::TaskCounters;
use crate::operator::Committer;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use pending::TaskKey;
use protocol::{TaskReport, Trigger};
use retention::RetentionWorker;
use snapflow_checkpoint::{CheckpointId, CheckpointStore, Manifest, SnapshotEntry, SourceOffset};
use state::{Command, Completion, Input, Protocol, Settings};
use std::collections::{BTreeMap, VecDeque};
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
    /// Savepoints asked for, on stop or of the next checkpoint.
    pub savepoints: Arc<savepoint::SavepointRequests>,
    pub stats: StatsLog,
    pub listener: Option<Sender<CheckpointEvent>>,
    /// The highest checkpoint id that is completed or aborted, shared with the snapshot
    /// writers so that they skip work for checkpoints that can no longer complete.
    pub settled: Arc<AtomicU64>,
    /// The newest checkpoint completed and published, which tasks check to be notified.
    pub completed: Arc<AtomicU64>,
    /// Crash points of the job (for the chaos driver).
    pub crashes: FailureInjector,
}

/// What the coordinator thread keeps besides the protocol: the inputs it still has to feed
/// and the I/O-side bookkeeping of the checkpoint in flight.
struct Executor {
    protocol: Protocol,
    inputs: VecDeque<Input>,
    /// Wall-clock trigger times of the checkpoints in flight, for their manifests.
    triggered_at_ms: BTreeMap<CheckpointId, u64>,
    /// When the previous checkpoint completed, and the records read by then.
    rate_mark: (Instant, u64),
    /// Deletes old checkpoints off this thread; dropped (drained and joined) when the
    /// coordinator stops driving, before the job returns.
    retention: Option<RetentionWorker>,
}

impl Coordinator {
    /// Runs until the final checkpoint is committed or the job stops. A failure here stops the
    /// job too.
    pub(crate) fn run(mut self) -> Result<CoordinatorExit, JobError> {
        let result = self.drive().and_then(|exit| self.savepoint_at_stop(exit));
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

    /// Writes the savepoint asked for on stop, once the job stopped gracefully or finished:
    /// its last checkpoint is committed and published by then.
    fn savepoint_at_stop(&self, exit: CoordinatorExit) -> Result<CoordinatorExit, JobError> {
        let last = match exit {
            CoordinatorExit::StoppedAt(id) => Some(id),
            CoordinatorExit::Finished => Some(CheckpointId(self.completed.load(Ordering::Relaxed))),
            CoordinatorExit::Stopped => None,
        };
        if let (Some(id), Some((_, store))) = (last, &self.checkpoints) {
            self.savepoints.at_stop(store, id)?;
        }
        Ok(exit)
    }

    /// The executor around `Protocol`: feeds it the stop flags, ticks and the tasks' reports
    /// with the current time, and performs its commands.
    fn drive(&mut self) -> Result<CoordinatorExit, JobError> {
        let settings = Settings {
            first_id: self.first_id,
            tasks: self.tasks.clone(),
            sources: self.sources.len(),
            periodic: self
                .checkpoints
                .as_ref()
                .map(|(c, _)| (c.interval, c.timeout)),
        };
        let retention = match &self.checkpoints {
            Some((config, store)) => Some(
                RetentionWorker::start(store.clone(), config.retained, self.crashes.clone())
                    .map_err(JobError::Spawn)?,
            ),
            None => None,
        };
        let mut ex = Executor {
            protocol: Protocol::new(settings, Instant::now()),
            inputs: VecDeque::new(),
            triggered_at_ms: BTreeMap::new(),
            rate_mark: (Instant::now(), self.records_read()),
            retention,
        };
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(CoordinatorExit::Stopped);
            }
            if self.stop_requested.load(Ordering::Relaxed) {
                if let Some(exit) = self.feed(&mut ex, Input::StopRequested)? {
                    return Ok(exit);
                }
            }
            if let Some(exit) = self.feed(&mut ex, Input::Tick)? {
                return Ok(exit);
            }
            let poll = Instant::now() + STOP_POLL;
            let deadline = ex.protocol.deadline().map_or(poll, |d| d.min(poll));
            let report = match self.reports.recv_deadline(deadline) {
                Ok(report) => report,
                Err(RecvTimeoutError::Timeout) => continue,
                // Every task and snapshot writer is gone: the job is over, and without a
                // committed final checkpoint it failed; the tasks' errors say why.
                Err(RecvTimeoutError::Disconnected) => return Ok(CoordinatorExit::Stopped),
            };
            if let Some(exit) = self.feed(&mut ex, Input::Report(report))? {
                return Ok(exit);
            }
        }
    }

    /// Feeds `input` to the protocol and performs its commands, feeding back their results
    /// until nothing is left to do. Returns how the coordinator ends, once it does.
    fn feed(&self, ex: &mut Executor, input: Input) -> Result<Option<CoordinatorExit>, JobError> {
        ex.inputs.push_back(input);
        while let Some(input) = ex.inputs.pop_front() {
            for command in ex.protocol.step(Instant::now(), input) {
                if let Some(exit) = self.perform(command, ex)? {
                    return Ok(Some(exit));
                }
            }
        }
        Ok(None)
    }

    /// Performs one command of the protocol, queueing the input that reports its result.
    /// Returns how the coordinator ends, once it does.
    fn perform(
        &self,
        command: Command,
        ex: &mut Executor,
    ) -> Result<Option<CoordinatorExit>, JobError> {
        match command {
            Command::Trigger { id, is_final } => {
                self.trigger(id, is_final)?;
                ex.triggered_at_ms.insert(id, unix_ms());
            }
            Command::WriteManifest {
                checkpoint,
                snapshots,
                offsets,
            } => {
                let triggered_at_ms = ex.triggered_at_ms.get(&checkpoint.id).copied().unwrap_or(0);
                self.write_manifest(checkpoint, triggered_at_ms, snapshots, offsets)?;
                ex.inputs.push_back(Input::ManifestWritten(checkpoint.id));
            }
            Command::Commit(checkpoint) => {
                let triggered_at_ms = ex.triggered_at_ms.remove(&checkpoint.id).unwrap_or(0);
                self.commit(checkpoint, triggered_at_ms, &mut ex.rate_mark)?;
                if let Some(retention) = &ex.retention {
                    // After the commit's savepoints, which copy this checkpoint and its
                    // chain: retention keeps both, since this is the newest complete one.
                    retention.request(checkpoint.id);
                }
                ex.inputs.push_back(Input::Committed(checkpoint.id));
            }
            Command::Abort { id, reason } => {
                let triggered_at_ms = ex.triggered_at_ms.remove(&id);
                self.abort(id, triggered_at_ms, &reason);
            }
            Command::FailFinal { id, reason } => {
                return Err(JobError::FinalCheckpointFailed {
                    checkpoint: id,
                    reason,
                })
            }
            Command::Finish(exit) => return Ok(Some(exit)),
        }
        Ok(None)
    }

    fn trigger(&self, id: CheckpointId, is_final: bool) -> Result<(), JobError> {
        if let Some((_, store)) = &self.checkpoints {
            store.begin(id)?;
        }
        for (_, triggers) in &self.sources {
            // A source that is gone has failed; the job is stopping and the tasks say why.
            let _ = triggers.send(Trigger { id, is_final });
        }
        tracing::debug!(checkpoint = id.0, is_final, "checkpoint triggered");
        Ok(())
    }

    fn abort(&self, id: CheckpointId, triggered_at_ms: Option<u64>, reason: &str) {
        tracing::warn!(checkpoint = id.0, %reason, "checkpoint aborted");
        self.settled.fetch_max(id.0, Ordering::Relaxed);
        self.stats.aborted(AbortedCheckpoint {
            id,
            triggered_at: triggered_at_ms.map(system_time),
            aborted_at: SystemTime::now(),
            reason: reason.to_owned(),
        });
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
            reason: reason.to_owned(),
        });
    }

    /// The commit point: from here on, recovery restores this checkpoint.
    fn write_manifest(
        &self,
        c: Completion,
        triggered_at_ms: u64,
        snapshots: Vec<SnapshotEntry>,
        source_offsets: Vec<SourceOffset>,
    ) -> Result<(), JobError> {
        self.settled.fetch_max(c.id.0, Ordering::Relaxed);
        if let Some((_, store)) = &self.checkpoints {
            store.commit(&Manifest {
                checkpoint: c.id,
                job: self.job.clone(),
                graph_fingerprint: self.graph_fingerprint,
                triggered_at_ms,
                completed_at_ms: unix_ms(),
                snapshots,
                source_offsets,
                operators: self.operators.clone(),
                is_final: c.is_final,
            })?;
        }
        Ok(())
    }

    /// Has every sink publish the checkpoint, then records its completion.
    fn commit(
        &self,
        c: Completion,
        triggered_at_ms: u64,
        rate_mark: &mut (Instant, u64),
    ) -> Result<(), JobError> {
        let id = c.id;
        for committer in &self.committers {
            committer
                .commit(id)
                .map_err(|source| JobError::CommitFailed {
                    checkpoint: id,
                    source,
                })?;
        }
        self.completed.store(id.0, Ordering::Relaxed);
        if let Some((_, store)) = &self.checkpoints {
            self.savepoints.after_commit(store, id);
        }
        let read = self.records_read();
        let elapsed = rate_mark.0.elapsed().as_secs_f64();
        let stats = CheckpointStats {
            id,
            is_final: c.is_final,
            triggered_at: system_time(triggered_at_ms),
            duration: c.triggered.elapsed(),
            longest_alignment: c.longest_alignment,
            longest_sync_snapshot: c.longest_sync_snapshot,
            longest_async_snapshot: c.longest_async_snapshot,
            bytes: c.bytes,
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
        // Recorded first, so that whoever hears of the checkpoint finds it in the statistics.
        self.stats.completed(stats.clone());
        self.notify(CheckpointEvent::Completed(stats));
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

/// The wall-clock time `ms` milliseconds after the Unix epoch.
fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
