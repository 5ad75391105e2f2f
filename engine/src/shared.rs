//! State every task of a job shares with its handle, its coordinator and its web UI.

use crate::coordinator::savepoint::SavepointRequests;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

/// State every task of a job shares.
#[derive(Default)]
pub(crate) struct Shared {
    /// Asks the sources to stop (cancel, or another task failed).
    pub stop: Arc<AtomicBool>,
    /// Numbers failures in the order they happened.
    pub failures: AtomicU64,
    /// The job was cancelled by its owner rather than by a failure.
    pub cancelled: AtomicBool,
    /// A graceful stop was asked for.
    pub stop_requested: Arc<AtomicBool>,
    /// Savepoints asked for (see [`JobStopper::stop_with_savepoint`](crate::JobStopper::stop_with_savepoint)).
    pub savepoints: Arc<SavepointRequests>,
}
