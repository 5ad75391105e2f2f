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

#[cfg(test)]
mod tests {
    use super::*;
    use snapflow_checkpoint::{CheckpointState, Manifest};
    use std::sync::{Arc, Mutex};

    /// A store holding complete checkpoints 1..=n without state.
    fn store_with(n: u64) -> (tempfile::TempDir, CheckpointStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path().join("checkpoints")).unwrap();
        for id in 1..=n {
            store.begin(CheckpointId(id)).unwrap();
            store
                .commit(&Manifest {
                    checkpoint: CheckpointId(id),
                    job: "retention".into(),
                    graph_fingerprint: 0,
                    triggered_at_ms: 0,
                    completed_at_ms: 0,
                    snapshots: Vec::new(),
                    source_offsets: Vec::new(),
                    operators: Vec::new(),
                    is_final: false,
                })
                .unwrap();
        }
        (dir, store)
    }

    #[test]
    fn requests_are_served_in_order_and_drained_before_the_worker_is_dropped() {
        let (_dir, store) = store_with(5);
        let deleted = Arc::new(Mutex::new(Vec::new()));
        let seen = deleted.clone();
        let crashes =
            FailureInjector::new().on_retention_delete(move |id| seen.lock().unwrap().push(id));
        let worker = RetentionWorker::start(store.clone(), 2, crashes).unwrap();
        for id in 1..=5 {
            worker.request(CheckpointId(id));
        }
        drop(worker);
        assert_eq!(
            *deleted.lock().unwrap(),
            [1, 2, 3].map(CheckpointId),
            "oldest first, each once"
        );
        let left: Vec<_> = store
            .scan()
            .unwrap()
            .into_iter()
            .map(|s| (s.id, s.state))
            .collect();
        assert_eq!(
            left,
            [4, 5].map(|id| (CheckpointId(id), CheckpointState::Complete))
        );
    }
}
