//! Savepoints the coordinator takes: when the job stops gracefully (Flink's
//! stop-with-savepoint), or of the next completed checkpoint while it runs.
//!
//! A savepoint is a completed checkpoint copied whole into a directory of the user's choosing
//! ([`write_savepoint`]): the checkpoint is committed and its output published first, so a
//! crash during the copy leaves the job resumable from its own checkpoint directory and an
//! incomplete savepoint that is refused when started from.

use crate::error::JobError;
use crossbeam_channel::Sender;
use snapflow_checkpoint::{write_savepoint, CheckpointId, CheckpointStore, SavepointError};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A savepoint that was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Savepoint {
    /// Its directory: start a job from it with `JobConfig::with_savepoint_restore`.
    pub dir: PathBuf,
    /// The checkpoint it holds.
    pub checkpoint: CheckpointId,
}

/// Where the outcome of a savepoint taken while the job runs goes.
type SavepointReply = Sender<Result<Savepoint, SavepointError>>;

/// What the user asked for, shared by the job's handle and its coordinator.
#[derive(Default)]
pub(crate) struct SavepointRequests {
    /// Write a savepoint here when the job stops (gracefully or at its end).
    on_stop: Mutex<Option<PathBuf>>,
    /// Savepoints of the next completed checkpoint, with where to send the outcome.
    next: Mutex<Vec<(PathBuf, SavepointReply)>>,
    /// The savepoint written when the job stopped.
    written: Mutex<Option<Savepoint>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SavepointRequests {
    /// Asks for a savepoint into `dir` when the job stops.
    pub(crate) fn on_stop(&self, dir: PathBuf) {
        *lock(&self.on_stop) = Some(dir);
    }

    /// Asks for a savepoint into `dir` of the next checkpoint that completes.
    pub(crate) fn of_next(&self, dir: PathBuf, reply: SavepointReply) {
        lock(&self.next).push((dir, reply));
    }

    /// The savepoint written when the job stopped, if one was.
    pub(crate) fn written(&self) -> Option<Savepoint> {
        lock(&self.written).clone()
    }

    /// After checkpoint `id` is committed and published: writes the savepoints asked of the
    /// next completed checkpoint, telling each asker the outcome. A failed savepoint does not
    /// fail the job, which goes on checkpointing.
    pub(crate) fn after_commit(&self, store: &CheckpointStore, id: CheckpointId) {
        let asked = std::mem::take(&mut *lock(&self.next));
        for (dir, reply) in asked {
            let outcome = write_savepoint(store, id, &dir).map(|_| Savepoint {
                dir: dir.clone(),
                checkpoint: id,
            });
            match &outcome {
                Ok(_) => {
                    tracing::info!(checkpoint = id.0, dir = %dir.display(), "savepoint written")
                }
                Err(e) => tracing::warn!(checkpoint = id.0, error = %e, "savepoint failed"),
            }
            // The asker may have stopped listening.
            let _ = reply.send(outcome);
        }
    }

    /// When the job ends at committed checkpoint `id` (a graceful stop, or its final
    /// checkpoint): writes the savepoint asked for on stop, if any.
    ///
    /// # Errors
    /// [`JobError::Savepoint`] if it cannot be written; the job's own checkpoint `id` stays
    /// complete, so the job still resumes from its checkpoint directory.
    pub(crate) fn at_stop(
        &self,
        store: &CheckpointStore,
        id: CheckpointId,
    ) -> Result<(), JobError> {
        let Some(dir) = lock(&self.on_stop).clone() else {
            return Ok(());
        };
        write_savepoint(store, id, &dir)?;
        tracing::info!(checkpoint = id.0, dir = %dir.display(), "stopped with a savepoint");
        *lock(&self.written) = Some(Savepoint {
            dir,
            checkpoint: id,
        });
        Ok(())
    }
}
