//! The errors of checkpoint storage, and what each one means for durability.

use crate::CheckpointId;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while writing, reading or managing checkpoints.
///
/// The variants separate three situations a caller must treat differently:
/// - [`Io`](CheckpointError::Io): the operating system refused an operation. Nothing is known
///   about the data; a write that failed this way is not durable and its checkpoint must not be
///   committed.
/// - [`Corrupt`](CheckpointError::Corrupt): a file was read and failed a check. Its checkpoint
///   is unusable and must never be restored from; the file is left in place as evidence.
/// - everything else: the caller asked for something impossible, or the bytes are intact but do
///   not match the type or configuration they are read with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading, writing, syncing, renaming or removing `path` failed.
    #[error("cannot read/write {}", path.display())]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },

    /// `path` is torn, truncated or corrupt: `reason` names the field or check that failed.
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file that failed the check.
        path: PathBuf,
        /// Which field or check failed, e.g. "bad magic" or "payload checksum mismatch".
        reason: String,
    },

    /// A value could not be serialized (`what` says which value).
    #[error("cannot encode {what}")]
    Encode {
        /// The value that failed, e.g. "manifest of checkpoint 4".
        what: String,
        /// bincode's error.
        source: bincode::Error,
    },

    /// Intact bytes (their checksum matched) do not decode as the requested type: the reader
    /// and the writer disagree about the state's type, which is a program or upgrade error,
    /// not disk corruption.
    #[error("cannot decode {what}")]
    Decode {
        /// The value that failed, naming its file where there is one.
        what: String,
        /// bincode's error.
        source: bincode::Error,
    },

    /// Keyed state was written for `found` key groups but is read for `expected`. Key groups are
    /// fixed for the lifetime of a job: such state cannot be redistributed.
    #[error(
        "keyed state was written with max parallelism {found}, but is read with {expected}; \
         the number of key groups must never change for a job"
    )]
    KeyGroupMismatch {
        /// The max parallelism recorded in the state.
        found: u32,
        /// The max parallelism of the reading job.
        expected: u32,
    },

    /// Decoded keyed state breaks its own invariants (unknown format, key group out of range,
    /// entries out of order): written by a buggy or foreign writer.
    #[error("keyed state is invalid: {reason}")]
    InvalidState {
        /// The invariant that does not hold.
        reason: String,
    },

    /// The caller passed an argument that can never work, e.g. an operator uid longer than
    /// [`MAX_OPERATOR_UID_LEN`](crate::MAX_OPERATOR_UID_LEN) bytes.
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// What is wrong with it.
        what: String,
    },

    /// The checkpoint already has a manifest: it is committed (or its manifest is corrupt
    /// evidence) and must not be begun, aborted or committed again.
    #[error("checkpoint {id} already has a manifest at {}; refusing to change it", path.display())]
    AlreadyCommitted {
        /// The checkpoint.
        id: CheckpointId,
        /// Its manifest file.
        path: PathBuf,
    },

    /// A checkpoint directory to delete holds a file snapflow did not write; it is left in
    /// place, with that file.
    #[error("{} holds {}, which snapflow did not write; the directory was left in place: move that file away", dir.display(), file.display())]
    ForeignFile {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The foreign file.
        file: PathBuf,
    },
}

impl CheckpointError {
    /// Whether this error reports a torn, truncated or corrupt file.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, CheckpointError::Corrupt { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> CheckpointError {
        CheckpointError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> CheckpointError {
        CheckpointError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, CheckpointError>;
