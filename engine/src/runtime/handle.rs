//! A running job: its threads, its counters, and how it ends.

use crate::contract::stats::{CheckpointStats, StatsLog};
use crate::coordinator::savepoint::Savepoint;
use crate::coordinator::CoordinatorExit;
use crate::error::{panic_message, JobError, TaskError};
use crate::metrics::{JobMetrics, OperatorMetrics};
use crate::ownership::claim::ClaimedDirs;
use crate::runtime::chained::ChainCursor;
use crate::shared::Shared;
use crate::web::WebServer;
use crossbeam_channel::Receiver;
use snapflow_checkpoint::{CheckpointId, SavepointError};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Asks a running job to stop gracefully, from any thread (a signal handler, say): the job
/// takes a checkpoint, publishes its output, then stops; rerunning it resumes from there.
#[derive(Clone)]
pub struct JobStopper {
    shared: Arc<Shared>,
}

impl JobStopper {
    /// Requests the graceful stop; returns at once. `join` then returns a report whose
    /// `stopped_at` names the checkpoint. Without checkpointing, this cancels the job.
    pub fn stop(&self) {
        self.shared.stop_requested.store(true, Ordering::Relaxed);
    }

    /// Flink's stop-with-savepoint: the job stops gracefully (as [`stop`](Self::stop): a
    /// last checkpoint, its output published) and that checkpoint is then copied, whole, into
    /// the savepoint directory `dir` (created; it must be empty). `join` then returns a report
    /// whose `savepoint` names it; start a job from it with
    /// [`JobConfig::with_savepoint_restore`](crate::JobConfig::with_savepoint_restore). A job
    /// whose sources end first stops at its final checkpoint, which becomes the savepoint.
    /// Should the copy fail or be cut short, `join` fails with [`JobError::Savepoint`] and the
    /// job still resumes from its own checkpoint directory. Without checkpointing, this
    /// cancels the job.
    pub fn stop_with_savepoint(&self, dir: impl Into<PathBuf>) {
        self.shared.savepoints.on_stop(dir.into());
        self.stop();
    }
}

/// The thread of one chain of tasks (one task when unchained).
pub(crate) struct TaskThread {
    /// The chain's tasks, its head first, in the order of their place in the chain.
    pub members: Vec<TaskName>,
    /// Which member failed, when the thread ends in failure.
    pub cursor: ChainCursor,
    pub join: Option<JoinHandle<Result<(), (u64, TaskError)>>>,
}

/// What names a task in a failure.
#[derive(Clone)]
pub(crate) struct TaskName {
    pub name: Arc<str>,
    pub uid: Arc<str>,
    pub index: usize,
    pub parallelism: usize,
}

/// What a finished job reports.
#[derive(Clone, Debug)]
pub struct JobReport {
    /// From launch to the end of the last task.
    pub elapsed: Duration,
    /// Records counted per operator, in graph order.
    pub operators: Vec<OperatorMetrics>,
    /// Every completed checkpoint, oldest first; the last is the final one.
    pub checkpoints: Vec<CheckpointStats>,
    /// How many checkpoints were aborted.
    pub aborted_checkpoints: u64,
    /// The checkpoint the job resumed from, if it resumed (after restarts: the last one).
    pub restored_from: Option<CheckpointId>,
    /// How many times the job was restarted after a failure.
    pub restarts: u32,
    /// Set when the job stopped gracefully at this checkpoint rather than finishing: its
    /// output up to it is published, and a rerun resumes from it.
    pub stopped_at: Option<CheckpointId>,
    /// The savepoint written when the job stopped, if one was asked for
    /// ([`JobStopper::stop_with_savepoint`]).
    pub savepoint: Option<Savepoint>,
}

impl JobReport {
    /// The counts of the operator named `name`, if there is one.
    pub fn operator(&self, name: &str) -> Option<&OperatorMetrics> {
        self.operators.iter().find(|m| m.name == name)
    }
}

/// A running job. [`join`](JobHandle::join) waits for it; dropping the handle cancels the job
/// and joins every thread, so no task thread outlives its handle.
pub struct JobHandle {
    threads: Vec<TaskThread>,
    coordinator: Option<JoinHandle<Result<CoordinatorExit, JobError>>>,
    /// Disconnects once every task and every queued snapshot write is gone.
    writers: Option<Receiver<Infallible>>,
    shared: Arc<Shared>,
    metrics: JobMetrics,
    stats: StatsLog,
    started: Instant,
    restored_from: Option<CheckpointId>,
    /// The web view, if on: stopped when the handle drops, before the directories are
    /// released.
    web: Option<WebServer>,
    /// The job's directory locks; declared last so that they are released only after the
    /// threads are joined (in `drop`) and every other field is gone.
    claims: ClaimedDirs,
}

impl JobHandle {
    pub(crate) fn new(
        threads: Vec<TaskThread>,
        coordinator: Option<JoinHandle<Result<CoordinatorExit, JobError>>>,
        writers: Option<Receiver<Infallible>>,
        shared: Arc<Shared>,
        metrics: JobMetrics,
        stats: StatsLog,
    ) -> Self {
        JobHandle {
            threads,
            coordinator,
            writers,
            shared,
            metrics,
            stats,
            started: Instant::now(),
            restored_from: None,
            web: None,
            claims: ClaimedDirs::default(),
        }
    }

    /// Records that the job resumed from `checkpoint`.
    /// Keeps the job's directories locked until this handle is dropped, after its threads.
    pub(crate) fn holding(mut self, claims: ClaimedDirs) -> Self {
        self.claims = claims;
        self
    }

    /// Keeps the job's web server running until this handle is dropped.
    pub(crate) fn serving(mut self, web: Option<WebServer>) -> Self {
        self.web = web;
        self
    }

    pub(crate) fn resumed_from(mut self, checkpoint: Option<CheckpointId>) -> Self {
        self.restored_from = checkpoint;
        self
    }

    /// The handle of a job whose latest checkpoint is its final one: nothing is left to run.
    pub(crate) fn already_finished(restored_from: Option<CheckpointId>) -> Self {
        let coordinator = std::thread::spawn(|| Ok(CoordinatorExit::Finished));
        JobHandle::new(
            Vec::new(),
            Some(coordinator),
            None,
            Arc::default(),
            JobMetrics {
                operators: Arc::default(),
                checkpoints: StatsLog::default(),
            },
            StatsLog::default(),
        )
        .resumed_from(restored_from)
    }

    /// The checkpoint the job resumed from, if it resumed.
    pub fn restored_from(&self) -> Option<CheckpointId> {
        self.restored_from
    }

    /// The address the web view listens on (see `JobConfig::with_web`), if it is on.
    pub fn web_addr(&self) -> Option<std::net::SocketAddr> {
        self.web.as_ref().map(WebServer::addr)
    }

    /// A handle that asks the job to stop gracefully (see [`JobStopper`]).
    pub fn stopper(&self) -> JobStopper {
        JobStopper {
            shared: self.shared.clone(),
        }
    }

    /// Takes a savepoint without stopping: the next checkpoint to complete (after its output
    /// is published) is copied, whole, into `dir` (created; it must be empty). The receiver
    /// gets the savepoint, or why it could not be written (the job goes on either way); it
    /// disconnects if the job ends before another checkpoint completes. Needs checkpointing.
    pub fn trigger_savepoint(
        &self,
        dir: impl Into<PathBuf>,
    ) -> Receiver<Result<Savepoint, SavepointError>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.shared.savepoints.of_next(dir.into(), tx);
        rx
    }

    /// Statistics of every checkpoint completed so far, oldest first.
    pub fn checkpoints(&self) -> Vec<CheckpointStats> {
        self.stats.all()
    }

    /// Live record counters, readable from any thread while the job runs.
    pub fn metrics(&self) -> JobMetrics {
        self.metrics.clone()
    }

    /// Asks the job to stop: every task stops at its next batch. `join` then returns
    /// [`JobError::Cancelled`], unless the job had already finished.
    pub fn cancel(&self) {
        self.shared.cancelled.store(true, Ordering::Relaxed);
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for every task and the checkpoint coordinator to finish.
    ///
    /// # Errors
    /// [`JobError::TaskFailed`] naming the first task that failed for a reason of its own (the
    /// others stopped because of it); a checkpoint or commit error of the coordinator; or
    /// [`JobError::Cancelled`].
    pub fn join(mut self) -> Result<JobReport, JobError> {
        let mut first: Option<(bool, u64, usize, TaskError)> = None;
        for (i, thread) in self.threads.iter_mut().enumerate() {
            let outcome = thread
                .join
                .take()
                .expect("joined once")
                .join()
                .unwrap_or_else(|_| {
                    Err((
                        u64::MAX,
                        TaskError::Panicked("task thread panicked outside its task".into()),
                    ))
                });
            if let Err((seq, error)) = outcome {
                // Rank: causes before reactions, then earlier before later.
                let rank = (error.is_secondary(), seq);
                if first.as_ref().is_none_or(|(s, q, _, _)| rank < (*s, *q)) {
                    first = Some((rank.0, seq, i, error));
                }
            }
        }
        let coordinator = match self.coordinator.take() {
            Some(join) => join.join().unwrap_or_else(|payload| {
                Err(JobError::CoordinatorPanicked(panic_message(
                    payload.as_ref(),
                )))
            }),
            None => Ok(CoordinatorExit::Stopped),
        };
        self.wait_for_writers();
        let cancelled = self.shared.cancelled.load(Ordering::Relaxed);
        match (first, coordinator) {
            (Some((false, _, i, source)), _) => Err(self.task_failed(i, source)),
            (_, Err(error)) => Err(error),
            (None, Ok(CoordinatorExit::Finished)) => Ok(JobReport {
                elapsed: self.started.elapsed(),
                operators: self.metrics.snapshot(),
                checkpoints: self.stats.all(),
                aborted_checkpoints: self.stats.aborted_count(),
                restored_from: self.restored_from,
                restarts: 0,
                stopped_at: None,
                savepoint: self.shared.savepoints.written(),
            }),
            (_, Ok(CoordinatorExit::StoppedAt(id))) => Ok(JobReport {
                elapsed: self.started.elapsed(),
                operators: self.metrics.snapshot(),
                checkpoints: self.stats.all(),
                aborted_checkpoints: self.stats.aborted_count(),
                restored_from: self.restored_from,
                restarts: 0,
                stopped_at: Some(id),
                savepoint: self.shared.savepoints.written(),
            }),
            (_, Ok(_)) if cancelled => Err(JobError::Cancelled),
            (Some((true, _, i, source)), _) => Err(self.task_failed(i, source)),
            // Every task ended, yet the final checkpoint was never committed: that can only be
            // a stop, so nothing may be reported as published.
            (None, Ok(CoordinatorExit::Stopped)) => Err(JobError::Cancelled),
        }
    }

    /// Blocks until no snapshot write of this job is queued or running.
    fn wait_for_writers(&mut self) {
        if let Some(writers) = self.writers.take() {
            // Only ever disconnects: nothing is sent on it.
            let _ = writers.recv();
        }
    }

    fn task_failed(&self, i: usize, source: TaskError) -> JobError {
        let thread = &self.threads[i];
        let t = thread
            .members
            .get(thread.cursor.failing())
            .unwrap_or(&thread.members[0]);
        JobError::TaskFailed {
            operator: t.name.to_string(),
            uid: t.uid.to_string(),
            index: t.index,
            parallelism: t.parallelism,
            source,
        }
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        if self.threads.iter().any(|t| t.join.is_some()) || self.coordinator.is_some() {
            self.cancel();
            for thread in &mut self.threads {
                if let Some(join) = thread.join.take() {
                    let _ = join.join();
                }
            }
            if let Some(join) = self.coordinator.take() {
                let _ = join.join();
            }
            self.wait_for_writers();
        }
    }
}
