//! What the web view shows of a job besides its counters: the graph as planned, and the
//! job's state. Plain data, built once at launch.

use crate::contract::stats::StatsLog;
use crate::partition::Partitioning;
use crate::shared::Shared;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

/// One operator of the job graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OperatorView {
    /// Its node index: what edges refer to.
    pub id: usize,
    pub name: String,
    pub uid: String,
    pub parallelism: usize,
    /// `source`, `operator` or `sink`.
    pub kind: &'static str,
}

/// One edge of the job graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EdgeView {
    pub from: usize,
    pub to: usize,
    /// The input of `to` it feeds (0 or 1).
    pub port: usize,
    pub partitioning: Partitioning,
}

/// The job as the web view describes it.
#[derive(Clone, Debug)]
pub(crate) struct JobView {
    pub name: String,
    pub operators: Vec<OperatorView>,
    pub edges: Vec<EdgeView>,
    /// The checkpoint interval, if the job takes periodic checkpoints.
    pub checkpoint_interval: Option<Duration>,
    pub started_at: SystemTime,
}

/// What a job is doing, as far as the web view can tell.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum JobState {
    Running,
    /// A graceful stop was asked for: a last checkpoint, then the job stops.
    Stopping,
    /// Cancelled, or a task failed: every task is stopping.
    Cancelling,
    /// The final checkpoint is committed.
    Finished,
}

impl JobState {
    /// The state of a job from its shared flags and its checkpoints.
    pub(crate) fn of(shared: &Shared, stats: &StatsLog) -> JobState {
        if stats.last().is_some_and(|c| c.is_final) {
            JobState::Finished
        } else if shared.stop.load(Ordering::Relaxed) {
            JobState::Cancelling
        } else if shared.stop_requested.load(Ordering::Relaxed) {
            JobState::Stopping
        } else {
            JobState::Running
        }
    }

    /// Its name in the API, as in Flink's REST API.
    pub(crate) fn name(self) -> &'static str {
        match self {
            JobState::Running => "RUNNING",
            JobState::Stopping => "STOPPING",
            JobState::Cancelling => "CANCELLING",
            JobState::Finished => "FINISHED",
        }
    }
}

/// The name of a partitioning in the API and on the page.
pub(crate) fn partitioning_name(p: Partitioning) -> &'static str {
    match p {
        Partitioning::Forward => "FORWARD",
        Partitioning::Hash => "HASH",
        Partitioning::Rebalance => "REBALANCE",
        Partitioning::Broadcast => "BROADCAST",
    }
}
