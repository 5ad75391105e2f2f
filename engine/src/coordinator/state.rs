//! The checkpoint protocol as a pure state machine: no threads, clocks or disk.
//!
//! The coordinator thread feeds [`Input`]s (a tick, a task's report, a stop request, the
//! result of a command it performed) together with the current time, and performs the
//! [`Command`]s that come back: trigger a checkpoint at the sources, write its manifest (the
//! commit point), have the sinks commit, abort it, finish. Time only ever comes in as an
//! argument, so every decision can be tested by replaying inputs.
//!
//! One checkpoint is in flight at a time; from its trigger until its sinks have committed it
//! holds the only slot:
//!
//! ```text
//! Idle --Trigger--> Collecting --all acks--> WritingManifest --ManifestWritten--> Committing
//!  ^                    |                                                             |
//!  +------Abort---------+ (timeout, or a task could not write its snapshot)           |
//!  +--------------------------------------Committed------------------------------------+
//! ```
//!
//! A checkpoint is committed only after every task acknowledged it and after its manifest is
//! durable. Acks and failures of any other checkpoint (late ones of an aborted checkpoint,
//! repeats) are ignored. When every source is exhausted the next checkpoint is the final one:
//! it has no timeout, and once it is committed the job is finished. A graceful stop takes a
//! checkpoint triggered after the request and stops once it is committed.

use super::pending::{AckOutcome, PendingCheckpoint, TaskKey};
use super::protocol::TaskReport;
use super::CoordinatorExit;
use snapflow_checkpoint::{CheckpointId, SnapshotEntry, SourceOffset};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// What the protocol is set up with.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// The id of the first checkpoint to trigger.
    pub first_id: CheckpointId,
    /// Every task of the job: each one acknowledges every checkpoint.
    pub tasks: Vec<TaskKey>,
    /// How many source tasks report that they are exhausted before the final checkpoint.
    pub sources: usize,
    /// The interval and timeout of periodic checkpoints, or `None` when the job takes no
    /// checkpoints (then only the final one, which nothing makes durable, and a stop request
    /// is a cancel).
    pub periodic: Option<(Duration, Duration)>,
}

/// Something that happened, fed to [`Protocol::step`].
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "a handful per checkpoint, consumed at once: boxing would only add an allocation"
)]
pub(crate) enum Input {
    /// Time has passed: due triggers and timeouts are acted on.
    Tick,
    /// A task reported an ack, a failed snapshot, or that its source is exhausted.
    Report(TaskReport),
    /// A graceful stop was asked for (repeating it changes nothing).
    StopRequested,
    /// The manifest of the checkpoint is durable: the checkpoint is committed.
    ManifestWritten(CheckpointId),
    /// Every sink committed the checkpoint and its completion was recorded.
    Committed(CheckpointId),
}

/// A checkpoint whose every task acknowledged it, as far as it is known without I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Completion {
    pub id: CheckpointId,
    pub is_final: bool,
    /// When it was triggered.
    pub triggered: Instant,
    /// The longest time a task spent aligning barriers.
    pub longest_alignment: Duration,
    /// The longest time a task's own thread spent taking its snapshot.
    pub longest_sync_snapshot: Duration,
    /// The longest time a snapshot file took to write, off its task's thread.
    pub longest_async_snapshot: Duration,
    /// Bytes of snapshot files written.
    pub bytes: u64,
}

/// Something for the coordinator thread to do, in order.
#[derive(Debug, PartialEq)]
pub(crate) enum Command {
    /// Start checkpoint `id` at the sources.
    Trigger { id: CheckpointId, is_final: bool },
    /// Make the checkpoint durable by writing its manifest, then feed
    /// [`Input::ManifestWritten`]. Snapshots and offsets are sorted by operator and task.
    WriteManifest {
        checkpoint: Completion,
        snapshots: Vec<SnapshotEntry>,
        offsets: Vec<SourceOffset>,
    },
    /// Have every sink publish the checkpoint's output and record its completion, then feed
    /// [`Input::Committed`].
    Commit(Completion),
    /// Give the checkpoint up: a later one subsumes it.
    Abort { id: CheckpointId, reason: String },
    /// The final checkpoint was aborted: nothing can subsume it, so the job fails.
    FailFinal { id: CheckpointId, reason: String },
    /// The coordinator is done.
    Finish(CoordinatorExit),
}

/// The checkpoint holding the slot.
#[derive(Debug)]
enum Slot {
    Idle,
    Collecting {
        acks: PendingCheckpoint,
        triggered: Instant,
        snapshots: Vec<SnapshotEntry>,
        offsets: Vec<SourceOffset>,
    },
    WritingManifest(Completion),
    Committing(Completion),
}

/// The coordinator's protocol state.
#[derive(Debug)]
pub(crate) struct Protocol {
    settings: Settings,
    next_id: CheckpointId,
    next_periodic: Option<Instant>,
    exhausted: HashSet<TaskKey>,
    stop_requested: bool,
    /// The checkpoint a graceful stop waits for.
    stop_at: Option<CheckpointId>,
    slot: Slot,
    finished: bool,
}

impl Protocol {
    /// A protocol that starts at `now`: the first periodic checkpoint is due one interval later.
    pub(crate) fn new(settings: Settings, now: Instant) -> Self {
        Protocol {
            next_id: settings.first_id,
            next_periodic: settings.periodic.map(|(interval, _)| now + interval),
            settings,
            exhausted: HashSet::new(),
            stop_requested: false,
            stop_at: None,
            slot: Slot::Idle,
            finished: false,
        }
    }

    /// Takes `input`, which happened at `now`, and returns what to do, in order. After
    /// [`Command::Finish`] every input is ignored.
    pub(crate) fn step(&mut self, now: Instant, input: Input) -> Vec<Command> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        match input {
            Input::Tick => self.tick(now, &mut out),
            Input::Report(report) => self.report(now, report, &mut out),
            Input::StopRequested => {
                self.stop_requested = true;
                if self.settings.periodic.is_none() {
                    // Nothing to resume from without checkpoints: a stop is a cancel.
                    out.push(Command::Finish(CoordinatorExit::Stopped));
                }
            }
            Input::ManifestWritten(id) => match self.slot {
                Slot::WritingManifest(c) if c.id == id => {
                    self.slot = Slot::Committing(c);
                    out.push(Command::Commit(c));
                }
                _ => debug_assert!(false, "manifest of {id:?} written out of turn"),
            },
            Input::Committed(id) => match self.slot {
                Slot::Committing(c) if c.id == id => {
                    self.slot = Slot::Idle;
                    if c.is_final {
                        out.push(Command::Finish(CoordinatorExit::Finished));
                    } else if self.stop_at == Some(id) {
                        out.push(Command::Finish(CoordinatorExit::StoppedAt(id)));
                    } else {
                        self.restart_interval(now);
                    }
                }
                _ => debug_assert!(false, "{id:?} committed out of turn"),
            },
        }
        self.finished = out.iter().any(|c| matches!(c, Command::Finish(_)));
        out
    }

    /// When the next tick is due without any other input: a timeout or a periodic trigger.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.slot {
            Slot::Idle => self.next_periodic,
            Slot::Collecting {
                acks, triggered, ..
            } if !acks.is_final => self.settings.periodic.map(|(_, t)| *triggered + t),
            _ => None,
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Command>) {
        if let Slot::Collecting {
            acks, triggered, ..
        } = &self.slot
        {
            // The final checkpoint has no timeout: the sources have ended, so nothing could
            // subsume it, and it only waits for the backlog ahead of it to drain.
            if let (Some((_, timeout)), false) = (self.settings.periodic, acks.is_final) {
                if now >= *triggered + timeout {
                    let reason = format!(
                        "not complete after {timeout:?}: {} tasks have not acknowledged",
                        acks.waiting()
                    );
                    self.abort(now, reason, out);
                }
            }
        }
        if !matches!(self.slot, Slot::Idle) {
            return;
        }
        let all_exhausted = self.exhausted.len() == self.settings.sources;
        let periodic_due = self.next_periodic.is_some_and(|t| now >= t);
        if all_exhausted || periodic_due || self.stop_requested {
            let id = self.next_id;
            // Once every source is exhausted the final checkpoint ends the job anyway.
            self.stop_at = (self.stop_requested && !all_exhausted).then_some(id);
            self.next_id = id.next();
            debug_assert!(self.next_id > id, "checkpoint ids strictly increase");
            self.slot = Slot::Collecting {
                acks: PendingCheckpoint::new(
                    id,
                    all_exhausted,
                    self.settings.tasks.iter().copied(),
                ),
                triggered: now,
                snapshots: Vec::new(),
                offsets: Vec::new(),
            };
            out.push(Command::Trigger {
                id,
                is_final: all_exhausted,
            });
        }
    }

    fn report(&mut self, now: Instant, report: TaskReport, out: &mut Vec<Command>) {
        match report {
            TaskReport::Exhausted { task } => {
                self.exhausted.insert(task);
            }
            TaskReport::SnapshotFailed {
                task,
                checkpoint,
                error,
            } => {
                if matches!(&self.slot, Slot::Collecting { acks, .. } if acks.id == checkpoint) {
                    let reason = format!("task {task:?} could not write its snapshot: {error}");
                    self.abort(now, reason, out);
                }
            }
            TaskReport::Ack {
                task,
                checkpoint,
                stats,
                snapshot,
                source_offset,
            } => {
                let Slot::Collecting {
                    acks,
                    snapshots,
                    offsets,
                    triggered,
                } = &mut self.slot
                else {
                    return;
                };
                let outcome = acks.on_ack(checkpoint, task, &stats);
                if outcome == AckOutcome::Ignored {
                    return;
                }
                snapshots.extend(snapshot);
                offsets.extend(source_offset);
                if outcome == AckOutcome::Complete {
                    let completion = Completion {
                        id: acks.id,
                        is_final: acks.is_final,
                        triggered: *triggered,
                        longest_alignment: acks.longest_alignment,
                        longest_sync_snapshot: acks.longest_sync_snapshot,
                        longest_async_snapshot: acks.longest_async_snapshot,
                        bytes: acks.bytes,
                    };
                    let mut snapshots = std::mem::take(snapshots);
                    let mut offsets = std::mem::take(offsets);
                    snapshots
                        .sort_by(|a, b| (&a.operator_uid, a.task).cmp(&(&b.operator_uid, b.task)));
                    offsets
                        .sort_by(|a, b| (&a.operator_uid, a.task).cmp(&(&b.operator_uid, b.task)));
                    self.slot = Slot::WritingManifest(completion);
                    out.push(Command::WriteManifest {
                        checkpoint: completion,
                        snapshots,
                        offsets,
                    });
                }
            }
        }
    }

    /// Aborts the checkpoint being collected.
    fn abort(&mut self, now: Instant, reason: String, out: &mut Vec<Command>) {
        let Slot::Collecting { acks, .. } = std::mem::replace(&mut self.slot, Slot::Idle) else {
            unreachable!("only a checkpoint being collected is aborted");
        };
        let id = acks.id;
        if acks.is_final {
            // The sources have ended: there is no later checkpoint to subsume this one, and
            // publishing without it would break exactly-once. The job fails instead.
            out.push(Command::Abort {
                id,
                reason: reason.clone(),
            });
            out.push(Command::FailFinal { id, reason });
        } else {
            out.push(Command::Abort { id, reason });
            self.restart_interval(now);
        }
    }

    fn restart_interval(&mut self, now: Instant) {
        self.next_periodic = self.settings.periodic.map(|(interval, _)| now + interval);
    }
}

#[cfg(test)]
mod tests;
