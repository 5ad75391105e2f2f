//! Errors of the engine: building a job, running its tasks, and the job as a whole.

use snapflow_checkpoint::CheckpointId;
use std::io;

/// Any error a user function, source or sink reports.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error that a retry may cure: a database or broker that cannot be reached right now.
/// Sources and sinks wrap such failures in it; a restart strategy then restarts the job also
/// when the failure comes from a sink's [`Committer::open`](crate::Committer::open) before any
/// task starts (a refusal that would fail the same way again is not wrapped).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Unavailable(pub BoxError);

/// A job graph that cannot run, found by `Job::run` before any thread starts.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The job has no source.
    #[error("the job has no source")]
    NoSource,
    /// A stream is produced but nothing consumes it (it needs a sink or another operator).
    #[error("the output of operator '{operator}' is used by nothing: add a sink or an operator")]
    UnconsumedStream {
        /// The operator whose output is unused.
        operator: String,
    },
    /// A parallelism of 0, or one above the job's max parallelism (the number of key groups).
    #[error("operator '{operator}' has parallelism {parallelism}; it must be between 1 and the max parallelism {max_parallelism}")]
    InvalidParallelism {
        /// The operator.
        operator: String,
        /// The parallelism it was given.
        parallelism: usize,
        /// The job's max parallelism.
        max_parallelism: u32,
    },
    /// A forward edge connects operators of different parallelism.
    #[error("forward edge from '{from}' (parallelism {from_parallelism}) to '{to}' (parallelism {to_parallelism}): forward needs equal parallelism; use rebalance()")]
    ForwardParallelismMismatch {
        /// The upstream operator.
        from: String,
        /// Its parallelism.
        from_parallelism: usize,
        /// The downstream operator.
        to: String,
        /// Its parallelism.
        to_parallelism: usize,
    },
    /// Two operators have the same uid; uids map checkpointed state back to operators.
    #[error("two operators have the uid '{uid}': uids must be unique within a job")]
    DuplicateUid {
        /// The uid used twice.
        uid: String,
    },
    /// Streams of two different jobs were combined.
    #[error("operator '{operator}' combines streams of two different jobs")]
    ForeignStream {
        /// The operator that got an input from another job.
        operator: String,
    },
    /// `side_output` was asked of a stream whose operator has no side outputs.
    #[error("operator '{operator}' has no side outputs, so it has no side output '{tag}' (only the streams of process functions and windows do)")]
    NoSideOutputs {
        /// The operator asked.
        operator: String,
        /// The tag asked for.
        tag: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An environment variable that sets a default of the job's configuration holds a value
    /// the engine does not understand.
    #[error("invalid environment: {variable} is {value:?}; expected {expected}")]
    InvalidEnvironment {
        /// The variable, such as `SNAPFLOW_INCREMENTAL_CHECKPOINTS`.
        variable: &'static str,
        /// Its value (lossily decoded when it is not UTF-8).
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// A numeric setting of the job's configuration is outside the range the engine accepts
    /// (durations in milliseconds).
    #[error("invalid configuration: {setting} is {value}; it must be between {min} and {max}")]
    SettingOutOfRange {
        /// The setting, as `JobConfig` names it (such as `batch size`).
        setting: &'static str,
        /// The value it was given.
        value: u128,
        /// The smallest value accepted.
        min: u128,
        /// The largest value accepted.
        max: u128,
    },
}

/// Why one task stopped before reaching end-of-stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// A user function, source or sink returned an error. Displays as that error, whose
    /// causes `source()` goes on to.
    #[error(transparent)]
    Failed(BoxError),
    /// A user function, source or sink panicked.
    #[error("panicked: {0}")]
    Panicked(String),
    /// A task downstream stopped, so this one could not deliver its output.
    #[error("a downstream task stopped")]
    DownstreamGone,
    /// A task upstream stopped without sending end-of-stream.
    #[error("an upstream task stopped before end-of-stream")]
    UpstreamGone,
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl TaskError {
    /// Whether this error only reacts to another task's failure (or a cancel) rather than
    /// being a cause of its own. The job reports the first error that is not secondary.
    pub fn is_secondary(&self) -> bool {
        matches!(
            self,
            TaskError::DownstreamGone | TaskError::UpstreamGone | TaskError::Cancelled
        )
    }
}

impl From<BoxError> for TaskError {
    fn from(e: BoxError) -> Self {
        TaskError::Failed(e)
    }
}

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The job graph or configuration is invalid; nothing ran.
    #[error("invalid job")]
    Build(#[from] BuildError),
    /// A task failed; every other task was stopped. Names the first task that failed for a
    /// reason of its own.
    #[error("operator '{operator}' (uid '{uid}') task {index} of {parallelism} failed")]
    TaskFailed {
        /// The failed task's operator name.
        operator: String,
        /// The operator's uid.
        uid: String,
        /// The task's index.
        index: usize,
        /// The operator's parallelism.
        parallelism: usize,
        /// What went wrong.
        source: TaskError,
    },
    /// The web view could not listen on the address `JobConfig::with_web` gave; nothing ran.
    #[error("cannot serve the web view on {addr}")]
    Web {
        /// The address, as given.
        addr: String,
        /// Why (address in use, not an address, ...).
        source: BoxError,
    },
    /// The job was cancelled through its handle before it finished.
    #[error("the job was cancelled")]
    Cancelled,
    /// Checkpoint storage failed (writing a manifest, creating a checkpoint directory, ...).
    #[error("checkpoint storage failed")]
    Checkpoint(#[from] snapflow_checkpoint::CheckpointError),
    /// A sink could not publish the output of a completed checkpoint.
    #[error("could not publish the output of checkpoint {checkpoint}")]
    CommitFailed {
        /// The completed checkpoint whose output was being published.
        checkpoint: CheckpointId,
        /// Why.
        source: BoxError,
    },
    /// A two-phase sink could not prepare its output before the job started.
    #[error("a sink could not prepare its output")]
    SinkOpenFailed {
        /// Why.
        source: BoxError,
    },
    /// The final checkpoint, taken once every source was exhausted, did not complete, so the
    /// last output was not published.
    #[error("the final checkpoint {checkpoint} did not complete: {reason}")]
    FinalCheckpointFailed {
        /// The final checkpoint.
        checkpoint: CheckpointId,
        /// Why.
        reason: String,
    },
    /// The latest checkpoint holds state of operators this job no longer has (matched by uid),
    /// and dropping it was not allowed; nothing ran.
    #[error("checkpoint {checkpoint} in {} holds state of operators this job does not have ({}); give the operators the `.uid(..)` they had to keep their state, or allow dropping it with `JobConfig::with_allow_non_restored_state(true)` (`--allow-non-restored-state` in the examples)", dir.display(), describe_mismatch(added, removed))]
    GraphMismatch {
        /// The checkpoint directory.
        dir: std::path::PathBuf,
        /// The checkpoint that would have been restored.
        checkpoint: CheckpointId,
        /// Operator uids in this job but not in the checkpoint (they would start empty).
        added: Vec<String>,
        /// Operator uids whose state in the checkpoint no operator of this job takes.
        removed: Vec<String>,
    },
    /// This job has sources the latest checkpoint holds no position for: they would read
    /// their whole input again while the rest of the job resumes; nothing ran.
    #[error("checkpoint {checkpoint} in {} has no position for the sources [{}]; a new source cannot join a resumed job (give a source the `.uid(..)` it had, or use another checkpoint directory)", dir.display(), sources.join(", "))]
    NewSource {
        /// The checkpoint directory.
        dir: std::path::PathBuf,
        /// The checkpoint that would have been restored.
        checkpoint: CheckpointId,
        /// The uids of the sources without a position.
        sources: Vec<String>,
    },
    /// The newest checkpoint is corrupt. Falling back to an older one could publish output a
    /// second time, so the job refuses to start; nothing ran.
    #[error("checkpoint {checkpoint} in {} is corrupt: {reason}; refusing to resume from an older checkpoint, which could publish output twice (inspect with `snapflow verify {}`)", dir.display(), dir.display())]
    CorruptCheckpoint {
        /// The checkpoint directory.
        dir: std::path::PathBuf,
        /// The corrupt checkpoint.
        checkpoint: CheckpointId,
        /// What is wrong with it.
        reason: String,
    },
    /// The checkpoint coordinator panicked (a bug, or a panicking committer).
    #[error("the checkpoint coordinator panicked: {0}")]
    CoordinatorPanicked(String),
    /// A directory the job needs is not its to use (in use by another process, marked as
    /// another job's, holding foreign files, or overlapping another); nothing ran.
    #[error(transparent)]
    Ownership(#[from] crate::ownership::OwnershipError),
    /// The input of a source is not the one the restored checkpoint read (it was truncated,
    /// grew, or was replaced); nothing ran.
    #[error("source '{operator}' cannot resume from checkpoint {checkpoint}")]
    InputChanged {
        /// The source operator's name.
        operator: String,
        /// The checkpoint being restored.
        checkpoint: CheckpointId,
        /// What changed.
        source: BoxError,
    },
    /// A savepoint could not be written (the job's own last checkpoint is complete: it
    /// resumes from its checkpoint directory), or the savepoint to start from is missing,
    /// incomplete or damaged (nothing ran).
    #[error(transparent)]
    Savepoint(#[from] snapflow_checkpoint::SavepointError),
    /// A source of the restored checkpoint cannot resume at the job's new parallelism;
    /// nothing ran.
    #[error("source '{operator}' (uid '{uid}') cannot resume from checkpoint {checkpoint} at parallelism {to}: it was checkpointed at parallelism {from}; run it at parallelism {from} (`.parallelism({from})` on the source)")]
    SourceCannotRescale {
        /// The source operator's name.
        operator: String,
        /// Its uid.
        uid: String,
        /// The checkpoint being restored.
        checkpoint: CheckpointId,
        /// How many tasks recorded positions in the checkpoint.
        from: usize,
        /// The source's parallelism now.
        to: usize,
        /// Why the source cannot.
        source: BoxError,
    },
    /// The operating system refused to start a thread of the job (a task's, the checkpoint
    /// coordinator's or retention's).
    #[error("could not start a thread of the job")]
    Spawn(#[source] io::Error),
}

fn describe_mismatch(added: &[String], removed: &[String]) -> String {
    format!(
        "state dropped: [{}]; operators added: [{}]",
        removed.join(", "),
        added.join(", ")
    )
}

/// The message of a panic, from its payload: what `panic!` was given when it was a string.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
