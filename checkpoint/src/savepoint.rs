//! Savepoints: a completed checkpoint copied, whole, into a directory of the user's choosing.
//!
//! A savepoint directory has the layout of a checkpoint store holding exactly one checkpoint:
//!
//! ```text
//! <savepoint>/
//!   chk-00000000000000000042/   the checkpoint's id, as in the job's store
//!     <uid>-00000.snap          a copy of every snapshot file the manifest lists
//!     MANIFEST                  the checkpoint's manifest, copied last: the commit point
//! ```
//!
//! It is self-contained (nothing refers into the job's checkpoint directory, which may be
//! deleted), never written by a job that starts from it (so it can be started from any number
//! of times), and carries no ownership marker, so using it as a job's checkpoint or output
//! directory is refused (an unmarked directory holding files is not snapflow's to write).
//!
//! A write that was cut short leaves a checkpoint directory without a manifest: such a
//! savepoint is refused, never half restored ([`savepoint_checkpoint`] decides, without I/O).

use crate::error::CheckpointError;
use crate::fs::write_atomic;
use crate::manifest::Manifest;
use crate::recovery::{CheckpointState, CheckpointStatus};
use crate::store::{CheckpointStore, OpenedCheckpoint};
use crate::CheckpointId;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why a savepoint cannot be written or started from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SavepointError {
    /// The savepoint directory does not exist.
    #[error("savepoint {} does not exist", dir.display())]
    Missing {
        /// The savepoint directory.
        dir: PathBuf,
    },
    /// The directory holds no checkpoint.
    #[error("{} is not a savepoint: it holds no checkpoint directory", dir.display())]
    Empty {
        /// The savepoint directory.
        dir: PathBuf,
    },
    /// The directory holds more than one checkpoint (a job's checkpoint directory, say).
    #[error("{} is not a savepoint: it holds {count} checkpoints, a savepoint holds one; to start from a job's checkpoint directory, run the job with that directory", dir.display())]
    SeveralCheckpoints {
        /// The savepoint directory.
        dir: PathBuf,
        /// How many checkpoint directories it holds.
        count: usize,
    },
    /// The savepoint's write was interrupted: it has no manifest.
    #[error("savepoint {} is incomplete (checkpoint {checkpoint} has no manifest: its write was interrupted); it is never used: take the savepoint again, or resume the stopped job from its checkpoint directory", dir.display())]
    Incomplete {
        /// The savepoint directory.
        dir: PathBuf,
        /// The checkpoint it was copying.
        checkpoint: CheckpointId,
    },
    /// A file of the savepoint fails its checks.
    #[error("savepoint {} is corrupt: {reason}", dir.display())]
    Corrupt {
        /// The savepoint directory.
        dir: PathBuf,
        /// What is wrong, naming the file.
        reason: String,
    },
    /// The target directory of a new savepoint lies inside the job's checkpoint directory,
    /// where retention and recovery would take it for the job's own files.
    #[error("cannot write a savepoint into {}: it lies inside the job's checkpoint directory {} (choose a directory outside it)", dir.display(), checkpoints.display())]
    InsideCheckpoints {
        /// The target directory.
        dir: PathBuf,
        /// The job's checkpoint directory.
        checkpoints: PathBuf,
    },
    /// The target directory of a new savepoint is not empty.
    #[error("cannot write a savepoint into {}: the directory is not empty (a savepoint is never overwritten; choose a new directory)", dir.display())]
    NotEmpty {
        /// The target directory.
        dir: PathBuf,
    },
    /// The checkpoint to copy is not complete in the job's store.
    #[error("checkpoint {checkpoint} in {} is not complete, so it cannot become a savepoint", dir.display())]
    NotComplete {
        /// The job's checkpoint directory.
        dir: PathBuf,
        /// The checkpoint.
        checkpoint: CheckpointId,
    },
    /// Reading or writing failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// Decides which checkpoint a savepoint directory holds, from the states of its checkpoint
/// directories: exactly one, and complete. Pure; the caller scans.
///
/// # Errors
/// [`SavepointError::Empty`], [`SavepointError::SeveralCheckpoints`],
/// [`SavepointError::Incomplete`] or [`SavepointError::Corrupt`], naming `dir`.
pub fn savepoint_checkpoint(
    dir: &Path,
    statuses: &[CheckpointStatus],
) -> Result<CheckpointId, SavepointError> {
    let dir = dir.to_path_buf();
    match statuses {
        [] => Err(SavepointError::Empty { dir }),
        [one] => match &one.state {
            CheckpointState::Complete => Ok(one.id),
            CheckpointState::InProgress => Err(SavepointError::Incomplete {
                dir,
                checkpoint: one.id,
            }),
            CheckpointState::Corrupt { reason } => Err(SavepointError::Corrupt {
                dir,
                reason: reason.clone(),
            }),
        },
        several => Err(SavepointError::SeveralCheckpoints {
            dir,
            count: several.len(),
        }),
    }
}

/// Opens the savepoint in `dir` for reading: its store (the directory is not created, and
/// nothing in it is ever written) and the manifest of its one checkpoint, every file of
/// which has been verified.
///
/// # Errors
/// [`SavepointError::Missing`] if `dir` is not a directory; as [`savepoint_checkpoint`] for
/// a directory that is not one complete savepoint; [`SavepointError::Checkpoint`] if it
/// cannot be read.
pub fn open_savepoint(dir: &Path) -> Result<(CheckpointStore, OpenedCheckpoint), SavepointError> {
    if !dir.is_dir() {
        return Err(SavepointError::Missing {
            dir: dir.to_path_buf(),
        });
    }
    // `open` creates only a missing root, and the root exists.
    let store = CheckpointStore::open(dir)?;
    let (decision, opened) = store.latest_opened()?;
    // The directories of the files an incremental snapshot builds on hold no manifest of
    // their own: they belong to the savepoint's one checkpoint, not beside it.
    let referenced = opened
        .as_ref()
        .map(|o| o.manifest.referenced_checkpoints())
        .unwrap_or_default();
    let statuses: Vec<CheckpointStatus> = store
        .scan()?
        .into_iter()
        .filter(|s| !(s.state == CheckpointState::InProgress && referenced.contains(&s.id)))
        .collect();
    let id = savepoint_checkpoint(dir, &statuses)?;
    match opened {
        Some(opened) if decision.latest == Some(id) => Ok((store, opened)),
        _ => Err(SavepointError::NotComplete {
            dir: dir.to_path_buf(),
            checkpoint: id,
        }),
    }
}

/// Copies completed checkpoint `checkpoint` of `store` into a new savepoint in `target`
/// (created if missing; it must be empty): every snapshot file is verified against the
/// manifest, written durably (temp file, fsync, rename), verified again in the copy, and the
/// manifest is written last. A crash part-way leaves an incomplete savepoint, which
/// [`open_savepoint`] refuses; the job's own checkpoint is untouched.
///
/// # Errors
/// [`SavepointError::NotEmpty`] if `target` holds anything; [`SavepointError::NotComplete`]
/// or [`SavepointError::Checkpoint`] if the checkpoint cannot be read, the copy written or
/// verified.
pub fn write_savepoint(
    store: &CheckpointStore,
    checkpoint: CheckpointId,
    target: &Path,
) -> Result<Manifest, SavepointError> {
    let manifest = store.load_manifest(checkpoint).map_err(|e| match e {
        CheckpointError::Io { ref source, .. } if source.kind() == io::ErrorKind::NotFound => {
            SavepointError::NotComplete {
                dir: store.layout().root().to_path_buf(),
                checkpoint,
            }
        }
        other => SavepointError::Checkpoint(other),
    })?;
    let checkpoints = store.layout().root();
    if lies_within(target, checkpoints) {
        return Err(SavepointError::InsideCheckpoints {
            dir: target.to_path_buf(),
            checkpoints: checkpoints.to_path_buf(),
        });
    }
    match fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(SavepointError::NotEmpty {
                    dir: target.to_path_buf(),
                });
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(CheckpointError::io(target, e).into()),
    }
    let copy = CheckpointStore::open(target)?;
    copy.begin(checkpoint)?;
    for entry in &manifest.snapshots {
        // An incremental snapshot reads the files it builds on: they are copied too, into
        // their checkpoints' directories, so that the savepoint is self-contained.
        for link in &entry.base {
            let from = store.open_link(entry, link)?.path().to_path_buf();
            let bytes = fs::read(&from).map_err(|e| CheckpointError::io(&from, e))?;
            let dir = copy.layout().checkpoint_dir(link.checkpoint);
            fs::create_dir_all(&dir).map_err(|e| CheckpointError::io(&dir, e))?;
            write_atomic(
                &copy.layout().listed_file(link.checkpoint, &link.file),
                &bytes,
            )?;
            copy.open_link(entry, link)?;
        }
        // Verified before the copy (a damaged checkpoint never becomes a savepoint) and after.
        let from = store.open_snapshot(&manifest, entry)?.path().to_path_buf();
        let bytes = fs::read(&from).map_err(|e| CheckpointError::io(&from, e))?;
        let to = copy.layout().listed_file(checkpoint, &entry.file);
        write_atomic(&to, &bytes)?;
        copy.open_snapshot(&manifest, entry)?;
    }
    copy.commit(&manifest)?;
    Ok(manifest)
}

/// Whether `path` is `dir` or lies inside it, once both are made absolute with symbolic links
/// resolved (for the part of `path` that exists).
fn lies_within(path: &Path, dir: &Path) -> bool {
    let Ok(dir) = fs::canonicalize(dir) else {
        return false;
    };
    resolved(path).is_some_and(|path| path.starts_with(dir))
}

/// `path` made absolute: its longest existing prefix canonicalized, the rest appended.
fn resolved(path: &Path) -> Option<PathBuf> {
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(found) = fs::canonicalize(existing) {
            return Some(missing.iter().rev().fold(found, |p, c| p.join(c)));
        }
        missing.push(existing.file_name()?.to_owned());
        existing = match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
    }
}

#[cfg(test)]
mod tests;
