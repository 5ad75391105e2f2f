//! A fault a test or chaos experiment plants in the exactly-once sink's committer, to crash
//! at the places where a two-phase sink can lose or repeat output.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Where in a commit the fault strikes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CommitPoint {
    /// The checkpoint is complete (its manifest durable) and nothing of it is in Kafka yet.
    BeforeTransaction,
    /// The checkpoint's records and marker are produced in an open transaction that is not
    /// committed: the middle of the commit.
    BeforeCommit,
    /// The transaction is committed; the engine does not know.
    AfterCommit,
}

/// What the fault does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// The commit returns an error without cleaning up: the producer is kept alive, unused,
    /// by the fault (until the fault is dropped), so that its transaction stays open on the
    /// broker as after a crash of the process (dropping it could end the transaction); the
    /// job restarts under its restart strategy.
    Fail,
    /// The process aborts at once (for a driver that restarts the job's process).
    Abort,
}

/// Crashes the committer once, at `point` of its `nth` commit that has records to write
/// (counted from 1 across restarts of the job in this process).
pub struct CommitFault {
    point: CommitPoint,
    nth: u64,
    action: FaultAction,
    commits: AtomicU64,
    fired: AtomicBool,
    /// The producer of the commit the fault failed ([`FaultAction::Fail`]).
    kept: Mutex<Vec<Box<dyn Any + Send>>>,
}

impl std::fmt::Debug for CommitFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitFault")
            .field("point", &self.point)
            .field("nth", &self.nth)
            .field("action", &self.action)
            .field("fired", &self.fired())
            .finish()
    }
}

impl CommitFault {
    /// A fault at `point` of the `nth` commit.
    pub fn new(point: CommitPoint, nth: u64, action: FaultAction) -> Self {
        Self {
            point,
            nth,
            action,
            commits: AtomicU64::new(0),
            fired: AtomicBool::new(false),
            kept: Mutex::new(Vec::new()),
        }
    }

    /// Keeps the producer of a commit the fault failed alive, its transaction open.
    pub(crate) fn keep(&self, producer: Box<dyn Any + Send>) {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(producer);
    }

    /// Whether the fault has struck.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Counts a commit with records; call before its [`check`](Self::check)s.
    pub(crate) fn begin_commit(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether the fault strikes now, at `point`: `Err` for [`FaultAction::Fail`], no return
    /// for [`FaultAction::Abort`].
    pub(crate) fn check(&self, point: CommitPoint) -> Result<(), String> {
        if point != self.point || self.commits.load(Ordering::SeqCst) != self.nth {
            return Ok(());
        }
        if self.fired.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        match self.action {
            FaultAction::Fail => Err(format!("injected crash of the Kafka commit at {point:?}")),
            FaultAction::Abort => {
                eprintln!("injected crash: aborting the process at {point:?} of a Kafka commit");
                std::process::abort()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_strikes_once_at_its_point_of_its_commit() {
        let fault = CommitFault::new(CommitPoint::BeforeCommit, 2, FaultAction::Fail);
        fault.begin_commit();
        assert!(fault.check(CommitPoint::BeforeCommit).is_ok());
        fault.begin_commit();
        assert!(fault.check(CommitPoint::BeforeTransaction).is_ok());
        assert!(fault.check(CommitPoint::BeforeCommit).is_err());
        assert!(fault.fired());
        assert!(fault.check(CommitPoint::BeforeCommit).is_ok());
    }
}
