//! Pure decisions about checkpoints on disk: which one to restore, which ones to delete.
//!
//! Nothing here does I/O. [`CheckpointStore::scan`](crate::CheckpointStore::scan) turns the
//! directory into [`CheckpointStatus`]es; these functions decide, and the store acts.

use crate::CheckpointId;

/// What a checkpoint directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointState {
    /// The manifest decodes, names this checkpoint, and every snapshot file it lists verifies.
    Complete,
    /// A directory without a manifest: in flight, or aborted. Normal after a crash.
    InProgress,
    /// The manifest is unreadable, or a snapshot file it names is missing or corrupt. Never
    /// restored and never deleted automatically: it is evidence, and a human decides.
    Corrupt {
        /// What is wrong, naming the file.
        reason: String,
    },
}

/// The state of one checkpoint directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointStatus {
    /// The checkpoint.
    pub id: CheckpointId,
    /// What its directory holds.
    pub state: CheckpointState,
}

/// Which checkpoint to restore, and what was passed over to get there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatestDecision {
    /// The newest complete checkpoint, if any.
    pub latest: Option<CheckpointId>,
    /// Corrupt checkpoints newer than `latest` (all corrupt ones if there is no `latest`),
    /// oldest first, with their reasons.
    ///
    /// If one of them had been committed before it was damaged, sinks may already have
    /// published its output; restoring `latest` then replays that output. A caller that must
    /// not publish twice should refuse to start and report these instead.
    pub newer_corrupt: Vec<(CheckpointId, String)>,
}

/// Picks the newest complete checkpoint and reports the corrupt ones newer than it.
/// `statuses` may be in any order.
pub fn decide_latest(statuses: &[CheckpointStatus]) -> LatestDecision {
    let latest = newest_complete(statuses);
    let mut newer_corrupt: Vec<(CheckpointId, String)> = statuses
        .iter()
        .filter(|s| latest.is_none_or(|latest| s.id > latest))
        .filter_map(|s| match &s.state {
            CheckpointState::Corrupt { reason } => Some((s.id, reason.clone())),
            _ => None,
        })
        .collect();
    newer_corrupt.sort_by_key(|(id, _)| *id);
    LatestDecision {
        latest,
        newer_corrupt,
    }
}

/// The checkpoints to delete, oldest first, when keeping the `keep` newest complete ones.
///
/// - Complete checkpoints other than the `keep` newest complete ones are deleted. `keep` is
///   treated as at least 1: the newest complete checkpoint is never deleted.
/// - In-progress directories older than the newest complete checkpoint are deleted (aborted
///   debris); newer ones are kept, since they may be in flight.
/// - Corrupt checkpoints are never deleted.
pub fn retention_plan(statuses: &[CheckpointStatus], keep: usize) -> Vec<CheckpointId> {
    let Some(newest) = newest_complete(statuses) else {
        return Vec::new();
    };
    let mut complete: Vec<CheckpointId> = statuses
        .iter()
        .filter(|s| s.state == CheckpointState::Complete)
        .map(|s| s.id)
        .collect();
    complete.sort_unstable_by(|a, b| b.cmp(a));
    complete.dedup();
    let mut delete: Vec<CheckpointId> = complete.split_off(keep.max(1).min(complete.len()));
    delete.extend(
        statuses
            .iter()
            .filter(|s| s.state == CheckpointState::InProgress && s.id < newest)
            .map(|s| s.id),
    );
    delete.sort_unstable();
    delete.dedup();
    delete
}

fn newest_complete(statuses: &[CheckpointStatus]) -> Option<CheckpointId> {
    statuses
        .iter()
        .filter(|s| s.state == CheckpointState::Complete)
        .map(|s| s.id)
        .max()
}

#[cfg(test)]
mod tests;
