//! Retention off the coordinator's path: one worker thread per job deletes old checkpoints,
//! in order, while the coordinator goes on triggering and committing.
//!
//! The coordinator only asks ([`RetentionWorker::request`]) after each commit; the worker runs
//! [`CheckpointStore::retain_with`], whose decision is the pure
//! [`retention_plan`](snapflow_checkpoint::retention_plan) less every checkpoint a kept one
//! builds on, taken from what is on disk when the worker runs, never from a stale list.
//! That keeps it safe against a coordinator that has moved on:
//! - the newest complete checkpoint on disk is never deleted, nor what it builds on; a task's
//!   next snapshot builds only on the newest checkpoint completed (the coordinator publishes
//!   it before triggering the next one), so nothing a checkpoint in flight may build on goes;
//! - in-progress directories newer than the newest complete one (a checkpoint in flight) are
//!   kept;
//! - a savepoint copies the checkpoint just committed, the newest complete one, and its
//!   chain: never anything the worker may delete.
//!
//! Requests that pile up while a pass runs are folded into one pass. When the job ends the
//! worker is drained and joined (on drop), so whoever reads the checkpoint directory after the
//! job returns sees retention's final state.

use crate::error_chain::ErrorChain;
use crate::inject::{CrashPoint, FailureInjector};
use crossbeam_channel::{unbounded, Receiver, Sender};
use snapflow_checkpoint::{CheckpointId, CheckpointStore};
use std::io;
use std::thread::JoinHandle;

/// The job's retention worker; dropping it drains its requests and joins it.
pub(crate) struct RetentionWorker {
    /// `None` once dropped: the worker's loop ends when the channel disconnects.
    requests: Option<Sender<CheckpointId>>,
    thread: Option<JoinHandle<()>>,
}

impl RetentionWorker {
    /// Starts the worker for `store`, keeping `keep` complete checkpoints. `crashes` aborts
    /// the process inside a delete ([`CrashPoint::RetentionDelete`]) and runs the test hooks.
    ///
    /// # Errors
    /// The OS error if the thread cannot be spawned.
    pub(crate) fn start(
        store: CheckpointStore,
        keep: usize,
        crashes: FailureInjector,
    ) -> io::Result<RetentionWorker> {
        let (tx, rx) = unbounded();
        let thread = std::thread::Builder::new()
            .name("snapflow-retention".into())
            .spawn(move || run(&store, keep, &crashes, &rx))?;
        Ok(RetentionWorker {
            requests: Some(tx),
            thread: Some(thread),
        })
    }

    /// Asks for a retention pass now that checkpoint `committed` is committed. Never waits.
    pub(crate) fn request(&self, committed: CheckpointId) {
        if let Some(requests) = &self.requests {
            // The worker only ends once this sender is dropped (or it panicked, which the
            // join reports): nothing to do about a lost request but go on.
            let _ = requests.send(committed);
        }
    }
}

impl Drop for RetentionWorker {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the retention worker panicked; old checkpoints may be left");
            }
        }
    }
}

/// The worker's loop: one pass per batch of requests, in order, until the coordinator is
/// gone and every request is served.
fn run(
    store: &CheckpointStore,
    keep: usize,
    crashes: &FailureInjector,
    requests: &Receiver<CheckpointId>,
) {
    while let Ok(mut committed) = requests.recv() {
        // A pass decides from the disk as it is, so one pass serves every request so far.
        committed = requests.try_iter().fold(committed, CheckpointId::max);
        let deleting = |id: CheckpointId| {
            if crashes.crash_due(CrashPoint::RetentionDelete) {
                eprintln!("injected crash while deleting checkpoint {id}");
                std::process::abort();
            }
            crashes.retention_deleting(id);
        };
        match store.retain_with(keep, deleting) {
            Ok(deleted) if !deleted.is_empty() => {
                tracing::debug!(
                    checkpoint = committed.0,
                    ?deleted,
                    "old checkpoints deleted"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(checkpoint = committed.0, error = %ErrorChain(&e), "could not delete old checkpoints");
            }
        }
    }
}
