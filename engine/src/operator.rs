//! The traits that sources, operators and sinks implement.
//!
//! Each is split into a shareable *definition* (`Source`, `Sink`, or an operator factory
//! closure) and a per-task *instance* (`SourceReader`, `SinkWriter`, `UnaryOperator`, ...): the
//! runtime asks the definition for one instance per parallel task, and can ask again when it
//! restarts the job.

use crate::contract::restored::RestoredState;
use crate::error::BoxError;
use crate::id::{OperatorId, TaskId};
use crate::message::Timestamp;
use crate::router::Output;
use snapflow_checkpoint::{CheckpointId, KeyGroupRange};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a task sits in the job: handed to every factory and instance.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    /// The operator's position in the graph.
    pub operator: OperatorId,
    /// The operator's display name.
    pub name: Arc<str>,
    /// The operator's stable uid.
    pub uid: Arc<str>,
    /// This task's index, `0..parallelism`.
    pub index: usize,
    /// How many tasks run the operator.
    pub parallelism: usize,
    /// The job's number of key groups.
    pub max_parallelism: u32,
    /// The id of the first checkpoint this task takes part in: output a sink writes before
    /// that checkpoint's barrier belongs to it.
    pub first_checkpoint: CheckpointId,
}

impl TaskInfo {
    /// This task's id.
    pub fn id(&self) -> TaskId {
        TaskId {
            operator: self.operator,
            index: self.index as u32,
        }
    }

    /// The key groups this task owns when its input is partitioned by key.
    pub fn key_groups(&self) -> KeyGroupRange {
        KeyGroupRange::for_task(
            self.index as u32,
            self.parallelism as u32,
            self.max_parallelism,
        )
    }
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' task {} of {}",
            self.name, self.index, self.parallelism
        )
    }
}

/// Whether a source has more to read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// Call `read_batch` again.
    More,
    /// The source is exhausted; anything appended by this call is its last output.
    Exhausted,
}

/// A source definition: creates one reader per parallel task.
pub trait Source: Send + Sync + 'static {
    /// The records it produces.
    type Out: crate::Data;

    /// The operator name used when the job does not set one.
    fn name(&self) -> String {
        "source".to_owned()
    }

    /// Opens the reader for one task. Each task must read a disjoint part of the input, and
    /// together they must read all of it.
    ///
    /// # Errors
    /// When the input cannot be opened; the job fails naming this task.
    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<Self::Out>>, BoxError>;

    /// Checks, before the job resumes, that the input is still the one the checkpoint read:
    /// `positions` holds what every task's [`SourceReader::position`] recorded, by task index.
    /// Called once per resume, also when the restored checkpoint is the final one (a finished
    /// job), and before any task starts, so that a changed input is refused rather than read
    /// twice or skipped.
    ///
    /// # Errors
    /// The input changed in a way the source cannot resume from (it was truncated, replaced
    /// or rewritten); the job does not start.
    fn verify_restore(&self, _positions: &[SourcePosition]) -> Result<(), BoxError> {
        Ok(())
    }

    /// Reassigns what `positions` (one per task of the job that took the checkpoint, by task
    /// index) still has to read to `parallelism` new tasks, so that a job restored at another
    /// parallelism still reads every record exactly once (Flink: the splits with their
    /// positions are the source's state, redistributed on rescale). Returns one position per
    /// new task, each one its [`SourceReader::seek`] accepts. Called only when the
    /// parallelism changed, after [`verify_restore`](Self::verify_restore).
    ///
    /// # Errors
    /// The source cannot resume at another parallelism (the default): the job does not start.
    fn rescale(
        &self,
        _positions: &[SourcePosition],
        _parallelism: usize,
    ) -> Result<Vec<SourcePosition>, BoxError> {
        Err(
            "this source cannot resume at another parallelism (its input is split by task index)"
                .into(),
        )
    }
}

/// One task's share of a source.
pub trait SourceReader<T>: Send {
    /// Appends up to `max` records to `batch`.
    ///
    /// # Errors
    /// Bad input or an I/O failure; the job fails naming this task.
    fn read_batch(&mut self, batch: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError>;

    /// Where the reader stands: enough to resume right after the last record it returned.
    /// Checkpoints record it; `None` means the source cannot be checkpointed, and a job with
    /// checkpointing on then fails at its first checkpoint rather than replay wrongly later.
    fn position(&self) -> Option<SourcePosition> {
        None
    }

    /// Moves the reader to `position`, one that `position` returned for the same task of a
    /// job of the same parallelism (or, after a change of parallelism, one that
    /// [`Source::rescale`] planned for this task), so that reading resumes right after the
    /// last record recorded in the checkpoint.
    ///
    /// # Errors
    /// The position is not one of this task's, or the source cannot seek (the default).
    fn seek(&mut self, _position: &SourcePosition) -> Result<(), BoxError> {
        Err("this source cannot seek, so it cannot resume from a checkpoint".into())
    }

    /// Checkpoint `checkpoint` is complete: its manifest is durable and its output published
    /// (Flink's `notifyCheckpointComplete`). Called on the task's thread at its next input.
    ///
    /// # Errors
    /// The job fails naming this task.
    fn notify_checkpoint_complete(&mut self, _checkpoint: CheckpointId) -> Result<(), BoxError> {
        Ok(())
    }

    /// The reader's watermark after the records it returned so far, for a reader that
    /// generates watermarks itself (per split, as Flink's sources can): asked after every
    /// batch, and sent downstream behind the batch when it advanced. Such a reader must keep
    /// its generator's state in its [`position`](Self::position), so that after recovery its
    /// watermark resumes where the checkpoint left it. `None` (the default): no watermark.
    /// When the reader is exhausted the runtime sends [`Timestamp::MAX`] anyway.
    fn watermark(&mut self) -> Option<Timestamp> {
        None
    }

    /// Whether the reader's split is idle (Flink's `withIdleness`): asked after every batch.
    /// When it turns true, the runtime tells the tasks downstream, which then no longer wait
    /// for this split's watermark; its next record or watermark makes it count again. `false`
    /// (the default): never idle.
    fn is_idle(&mut self) -> bool {
        false
    }
}

/// A source reader's position, as recorded in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePosition {
    /// The position in the source's own encoding.
    pub offset: Vec<u8>,
    /// The position for people, e.g. "byte 1024 of input.txt".
    pub description: String,
}

/// A sink definition: creates one writer per parallel task.
pub trait Sink<T>: Send + Sync + 'static {
    /// The operator name used when the job does not set one.
    fn name(&self) -> String {
        "sink".to_owned()
    }

    /// Opens the writer for one task.
    ///
    /// # Errors
    /// When the output cannot be opened; the job fails naming this task.
    fn create_writer(&self, task: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>, BoxError>;

    /// The sink's global committer, for two-phase sinks: it publishes what every writer
    /// pre-committed once a checkpoint is complete. `None` for sinks without transactions.
    fn committer(&self) -> Option<Arc<dyn Committer>> {
        None
    }
}

/// Publishes a two-phase sink's pre-committed output (Flink's global committer): called by the
/// checkpoint coordinator after the checkpoint's manifest is durable, never concurrently.
pub trait Committer: Send + Sync {
    /// The directories this sink writes to. The job takes each for itself before it starts
    /// (a lock held while it runs and a mark saying which job owns it), and refuses to start
    /// when one of them overlaps another sink's directory or the checkpoint directory.
    fn directories(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Called once before any task of the job starts, with the sink's state in the checkpoint
    /// the job resumes from (`None` for a fresh start): what its writers returned from
    /// [`SinkWriter::snapshot`] for that checkpoint. Checks that the output agrees with the
    /// checkpoint, publishes what that checkpoint pre-committed and is not yet published, and
    /// discards staged output of later, incomplete checkpoints.
    ///
    /// # Errors
    /// The output cannot be used (it holds another run's output, output of a checkpoint newer
    /// than the restored one, or lacks output the restored checkpoint pre-committed); the job
    /// does not start.
    fn open(&self, _restored: Option<&RestoredState>) -> Result<(), BoxError> {
        Ok(())
    }

    /// The job attempt is over: release what [`open`](Committer::open) took (a connection, a
    /// lock). `interrupted` when it ended by a failure or a cancel rather than by its final
    /// checkpoint or a graceful stop: then also unblock any writer that may wait on something
    /// only a later attempt can resolve, so that the attempt can end. Called once per attempt,
    /// by the coordinator as it exits; the default does nothing.
    fn close(&self, _interrupted: bool) {}

    /// Publishes everything pre-committed for checkpoints up to and including `checkpoint`.
    ///
    /// # Errors
    /// Publishing failed; the job fails. It must be safe to call again for the same checkpoint.
    fn commit(&self, checkpoint: CheckpointId) -> Result<(), BoxError>;
}

/// One task's share of a sink.
pub trait SinkWriter<T>: Send {
    /// Writes one batch.
    ///
    /// # Errors
    /// An I/O failure; the job fails naming this task.
    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), BoxError>;

    /// The barrier of `checkpoint` arrived: make everything written since the previous
    /// barrier durable, ready for the committer to publish (phase one of two-phase commit).
    ///
    /// # Errors
    /// An I/O failure; the job fails naming this task.
    fn pre_commit(&mut self, _checkpoint: CheckpointId) -> Result<(), BoxError> {
        Ok(())
    }

    /// What this writer pre-committed for `checkpoint` (called right after
    /// [`pre_commit`](SinkWriter::pre_commit)): stored as the task's state in the checkpoint,
    /// and handed to [`Committer::open`] when the job resumes from it, so that the committer
    /// can check the output against it. `None` (the default) stores nothing.
    ///
    /// # Errors
    /// The job fails naming this task.
    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>, BoxError> {
        Ok(None)
    }

    /// Checkpoint `checkpoint` is complete: its manifest is durable and its output published
    /// (Flink's `notifyCheckpointComplete`). Called on the task's thread at its next input.
    ///
    /// # Errors
    /// The job fails naming this task.
    fn notify_checkpoint_complete(&mut self, _checkpoint: CheckpointId) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called once after the last batch, when every input has ended.
    ///
    /// # Errors
    /// An I/O failure; the job fails naming this task.
    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The lifecycle every operator task goes through, whatever its number of inputs (Flink's
/// `StreamOperator`): restore, open, then input with watermarks, checkpoints and timers, then
/// close. [`UnaryOperator`] and [`BinaryOperator`] add only the hooks that take input; the
/// runtime, chaining and the test harnesses drive everything else through this trait.
/// Stateless operators implement it with an empty body, keeping every default.
pub trait OperatorLifecycle<O>: Send + 'static {
    /// Called once before the first record.
    ///
    /// # Errors
    /// The job fails naming this task.
    fn open(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// The barrier of `checkpoint` arrived: return the operator's state, serialized, or `None`
    /// if it has none. Runs on the task's thread while its inputs wait, so it should only copy
    /// or serialize; the runtime writes the bytes to disk on another thread.
    ///
    /// # Errors
    /// The job fails naming this task.
    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>, BoxError> {
        Ok(None)
    }

    /// The barrier of `request.checkpoint` arrived: freeze the state for a snapshot
    /// serialized off the task's thread, full or (when `request.base` allows) incremental
    /// (see [`FrozenSnapshot`](crate::FrozenSnapshot)). The runtime calls this, not
    /// [`snapshot`](Self::snapshot); the default serializes a full snapshot with `snapshot`
    /// right away.
    ///
    /// # Errors
    /// The job fails naming this task.
    fn snapshot_frozen(
        &mut self,
        request: crate::SnapshotRequest,
    ) -> Result<crate::FrozenSnapshot, BoxError> {
        self.snapshot(request.checkpoint)
            .map(crate::FrozenSnapshot::Ready)
    }

    /// Restores the state this operator had in the checkpoint the job resumes from; called
    /// before `open`. `state` holds what every task of the operator returned from `snapshot`,
    /// so that keyed state can be split by key group when the parallelism changed.
    ///
    /// # Errors
    /// The state cannot be decoded; the job fails naming this task. The default fails if
    /// there is state to restore, since an operator without `restore` would silently lose it.
    fn restore(&mut self, state: &RestoredState) -> Result<(), BoxError> {
        if state.is_empty() {
            Ok(())
        } else {
            Err("the operator has state in the checkpoint but does not implement restore".into())
        }
    }

    /// Checkpoint `checkpoint` is complete: its manifest is durable and its output published
    /// (Flink's `notifyCheckpointComplete`). Called on the task's thread at its next input.
    ///
    /// # Errors
    /// The job fails naming this task.
    fn notify_checkpoint_complete(&mut self, _checkpoint: CheckpointId) -> Result<(), BoxError> {
        Ok(())
    }

    /// The combined watermark of all inputs advanced to `watermark`. The runtime forwards the
    /// watermark downstream after this returns (see
    /// [`forwards_watermarks`](Self::forwards_watermarks)).
    ///
    /// # Errors
    /// The job fails naming this task.
    fn on_watermark(
        &mut self,
        _watermark: Timestamp,
        _out: &mut Output<O>,
    ) -> Result<(), BoxError> {
        Ok(())
    }

    /// Whether the runtime forwards the input watermark downstream after
    /// [`on_watermark`](Self::on_watermark): true but for operators that generate watermarks
    /// themselves (timestamp assigners), which emit through [`Output::emit_watermark`].
    fn forwards_watermarks(&self) -> bool {
        true
    }

    /// The processing time (milliseconds since the Unix epoch) at which the operator next
    /// wants [`on_processing_time`](Self::on_processing_time), if any: its earliest
    /// processing-time timer. Asked after every input event; the task waits for input no
    /// longer than that. `None` (the default) costs the task loop nothing.
    fn next_processing_time(&self) -> Option<u64> {
        None
    }

    /// The processing time asked for by [`next_processing_time`](Self::next_processing_time)
    /// has come: fire what is due.
    ///
    /// # Errors
    /// The job fails naming this task.
    fn on_processing_time(&mut self, _out: &mut Output<O>) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called once after every input has ended, before end-of-stream is sent downstream.
    ///
    /// # Errors
    /// The job fails naming this task.
    fn close(&mut self, _out: &mut Output<O>) -> Result<(), BoxError> {
        Ok(())
    }
}

/// One task of a one-input operator. Stateless operators implement only `process_batch`, and
/// [`OperatorLifecycle`] with an empty body.
pub trait UnaryOperator<I, O>: OperatorLifecycle<O> {
    /// Processes one batch of input, pushing results to `out`.
    ///
    /// # Errors
    /// The job fails naming this task.
    fn process_batch(&mut self, batch: Vec<I>, out: &mut Output<O>) -> Result<(), BoxError>;
}

/// One task of a two-input operator whose inputs may have different types.
pub trait BinaryOperator<A, B, O>: OperatorLifecycle<O> {
    /// Processes a batch of the first input.
    ///
    /// # Errors
    /// The job fails naming this task.
    fn process_first(&mut self, batch: Vec<A>, out: &mut Output<O>) -> Result<(), BoxError>;

    /// Processes a batch of the second input.
    ///
    /// # Errors
    /// The job fails naming this task.
    fn process_second(&mut self, batch: Vec<B>, out: &mut Output<O>) -> Result<(), BoxError>;
}
