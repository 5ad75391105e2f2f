//! What a task restores from when the job resumes from a checkpoint.

use crate::contract::restored::RestoredState;
use crate::error::{BoxError, JobError};
use crate::operator::SourcePosition;
use snapflow_checkpoint::{CheckpointStore, KeyGroupRange, Manifest, OpenedCheckpoint};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The checkpoint a job resumes from, shared by all its tasks: its files were opened and
/// verified once, and every restoring task reads the same maps.
pub(crate) struct RestorePoint {
    pub manifest: Manifest,
    /// Where each task of each source resumes, by source uid and new task index: the
    /// recorded positions, reassigned when the source's parallelism changed (filled in by
    /// [`prepare`](crate::runtime::prepare::prepare)).
    pub source_positions: HashMap<String, Vec<SourcePosition>>,
    /// Whether the checkpoint is a savepoint, not one of this job's own: then no snapshot of
    /// the job may build on its files (its first snapshots are full), so that the job's
    /// checkpoint directory never depends on the savepoint's.
    pub from_savepoint: bool,
    /// Every file the checkpoint's snapshots read, opened and verified once.
    pub opened: OpenedCheckpoint,
}

impl RestoredState {
    /// The state of operator `uid` in `point`, keeping `key_groups`.
    ///
    /// # Errors
    /// A snapshot file cannot be opened or mapped.
    pub(crate) fn load(
        point: &Arc<RestorePoint>,
        uid: &str,
        key_groups: KeyGroupRange,
    ) -> Result<RestoredState, BoxError> {
        let snapshots = point
            .manifest
            .snapshots_of(uid)
            .map(|entry| {
                point.opened.chain_of(entry).ok_or_else(|| {
                    format!(
                        "the snapshot of '{uid}' task {} was not opened with its checkpoint \
                         (engine bug)",
                        entry.task
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RestoredState::mapped(
            point.manifest.checkpoint,
            key_groups,
            snapshots,
        ))
    }
}

/// An operator of the job about to run, as the state mapping sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewOperator<'a> {
    /// Its uid.
    pub uid: &'a str,
    /// Whether it is a source (its state is its position, not a snapshot).
    pub is_source: bool,
}

/// What the checkpoint holds, by operator uid: every operator it names, and which of them
/// have snapshots and which recorded source positions.
#[derive(Clone, Debug, Default)]
pub(crate) struct CheckpointOperators<'a> {
    /// Every uid of the graph that wrote the checkpoint.
    pub uids: BTreeSet<&'a str>,
    /// The uids with at least one snapshot.
    pub with_snapshots: BTreeSet<&'a str>,
    /// The uids with recorded source positions.
    pub with_positions: BTreeSet<&'a str>,
}

impl<'a> CheckpointOperators<'a> {
    fn of(manifest: &'a Manifest) -> Self {
        let with_snapshots: BTreeSet<&str> = manifest
            .snapshots
            .iter()
            .map(|e| e.operator_uid.as_str())
            .collect();
        let with_positions: BTreeSet<&str> = manifest
            .source_offsets
            .iter()
            .map(|o| o.operator_uid.as_str())
            .collect();
        let uids = manifest
            .operators
            .iter()
            .map(String::as_str)
            .chain(with_snapshots.iter().copied())
            .chain(with_positions.iter().copied())
            .collect();
        CheckpointOperators {
            uids,
            with_snapshots,
            with_positions,
        }
    }
}

/// How the checkpoint's state maps onto the new job's operators.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StateMapping {
    /// Operators of the new job the checkpoint does not know: they start empty.
    pub added: Vec<String>,
    /// Operators of the checkpoint whose state no operator of the new job takes (allowed only
    /// with `allow_non_restored_state`): their state is skipped.
    pub dropped: Vec<String>,
}

/// Why the checkpoint's state cannot be mapped onto the new job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MappingRefusal {
    /// New sources, which would re-read their whole input while the rest resumes.
    NewSources(Vec<String>),
    /// State no operator of the new job takes, and dropping it is not allowed.
    StateDropped {
        /// Operators of the new job the checkpoint does not know.
        added: Vec<String>,
        /// Operators whose state would be dropped.
        removed: Vec<String>,
    },
}

/// Matches the checkpoint's state to the new job's operators by uid (Flink's rule).
///
/// An operator the checkpoint does not know starts empty, unless it is a source: a source
/// without a position would read its input again from the start while the rest of the job
/// resumes, so it is refused. State that no operator takes (snapshots of an operator that is
/// gone or became a source, positions of a source that is gone or no longer a source) is
/// refused unless `allow_non_restored_state`, and then skipped. An operator of the checkpoint
/// without state may disappear freely.
pub(crate) fn map_state(
    checkpoint: &CheckpointOperators<'_>,
    operators: &[NewOperator<'_>],
    allow_non_restored_state: bool,
) -> Result<StateMapping, MappingRefusal> {
    let new_sources: Vec<String> = operators
        .iter()
        .filter(|op| op.is_source && !checkpoint.with_positions.contains(op.uid))
        .map(|op| op.uid.to_owned())
        .collect();
    if !new_sources.is_empty() {
        return Err(MappingRefusal::NewSources(new_sources));
    }
    let added: Vec<String> = operators
        .iter()
        .filter(|op| !checkpoint.uids.contains(op.uid))
        .map(|op| op.uid.to_owned())
        .collect();
    let taken = |uid: &str, as_source: bool| {
        operators
            .iter()
            .any(|op| op.uid == uid && op.is_source == as_source)
    };
    let mut dropped: Vec<String> = Vec::new();
    for &uid in &checkpoint.uids {
        let snapshots_dropped = checkpoint.with_snapshots.contains(uid) && !taken(uid, false);
        let positions_dropped = checkpoint.with_positions.contains(uid) && !taken(uid, true);
        if snapshots_dropped || positions_dropped {
            dropped.push(uid.to_owned());
        }
    }
    if !dropped.is_empty() && !allow_non_restored_state {
        return Err(MappingRefusal::StateDropped {
            added,
            removed: dropped,
        });
    }
    Ok(StateMapping { added, dropped })
}

/// Decides where a job resumes from its own checkpoints: the newest complete checkpoint in
/// `store`, if any.
///
/// Refuses (rather than falls back) when a checkpoint newer than that one is corrupt, since
/// its output may already be published, and when the checkpoint's state does not map onto
/// this job's operators (see [`map_state`]). A directory with only incomplete checkpoints
/// means nothing was ever committed, and so nothing published: the job starts from the
/// beginning.
pub(crate) fn find_restore_point(
    store: &CheckpointStore,
    operators: &[NewOperator<'_>],
    allow_non_restored_state: bool,
) -> Result<Option<RestorePoint>, JobError> {
    let dir = store.layout().root().to_path_buf();
    let (decision, opened) = store.latest_opened()?;
    if let Some((checkpoint, reason)) = decision.newer_corrupt.last() {
        return Err(JobError::CorruptCheckpoint {
            dir,
            checkpoint: *checkpoint,
            reason: reason.clone(),
        });
    }
    let Some(opened) = opened else {
        return Ok(None);
    };
    restore_point(store, opened, false, operators, allow_non_restored_state).map(Some)
}

/// The restore point of `opened` in `store` (a job's checkpoint directory, or a savepoint
/// when `from_savepoint`), once its state maps onto this job's operators (see
/// [`map_state`]); the sources' positions are filled in later.
///
/// # Errors
/// [`JobError::NewSource`] or [`JobError::GraphMismatch`], naming the directory.
pub(crate) fn restore_point(
    store: &CheckpointStore,
    opened: OpenedCheckpoint,
    from_savepoint: bool,
    operators: &[NewOperator<'_>],
    allow_non_restored_state: bool,
) -> Result<RestorePoint, JobError> {
    let dir = store.layout().root().to_path_buf();
    let manifest = opened.manifest.clone();
    let checkpoint = manifest.checkpoint;
    let mapping = map_state(
        &CheckpointOperators::of(&manifest),
        operators,
        allow_non_restored_state,
    )
    .map_err(|refusal| match refusal {
        MappingRefusal::NewSources(sources) => JobError::NewSource {
            dir: dir.clone(),
            checkpoint,
            sources,
        },
        MappingRefusal::StateDropped { added, removed } => JobError::GraphMismatch {
            dir: dir.clone(),
            checkpoint,
            added,
            removed,
        },
    })?;
    for uid in &mapping.dropped {
        tracing::warn!(
            operator = %uid,
            %checkpoint,
            "operator '{uid}' is not in this job: its state in checkpoint {checkpoint} is dropped (non-restored state allowed)"
        );
    }
    Ok(RestorePoint {
        manifest,
        from_savepoint,
        opened,
        source_positions: HashMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint of `(uid, snapshots, positions)` operators.
    fn checkpoint<'a>(ops: &[(&'a str, bool, bool)]) -> CheckpointOperators<'a> {
        CheckpointOperators {
            uids: ops.iter().map(|o| o.0).collect(),
            with_snapshots: ops.iter().filter(|o| o.1).map(|o| o.0).collect(),
            with_positions: ops.iter().filter(|o| o.2).map(|o| o.0).collect(),
        }
    }

    /// A new job of `(uid, is_source)` operators.
    fn job<'a>(ops: &[(&'a str, bool)]) -> Vec<NewOperator<'a>> {
        ops.iter()
            .map(|&(uid, is_source)| NewOperator { uid, is_source })
            .collect()
    }

    fn wordcount<'a>() -> CheckpointOperators<'a> {
        checkpoint(&[
            ("read", false, true),
            ("tokenize", false, false),
            ("count", true, false),
            ("write", true, false),
        ])
    }

    #[test]
    fn the_same_job_maps_everything() {
        let new = job(&[
            ("read", true),
            ("tokenize", false),
            ("count", false),
            ("write", false),
        ]);
        assert_eq!(
            map_state(&wordcount(), &new, false),
            Ok(StateMapping::default())
        );
    }

    #[test]
    fn a_new_operator_starts_empty() {
        let new = job(&[
            ("read", true),
            ("keep", false),
            ("tokenize", false),
            ("count", false),
            ("write", false),
        ]);
        assert_eq!(
            map_state(&wordcount(), &new, false),
            Ok(StateMapping {
                added: vec!["keep".into()],
                dropped: vec![],
            })
        );
    }

    #[test]
    fn a_stateless_operator_may_go() {
        let new = job(&[("read", true), ("count", false), ("write", false)]);
        assert_eq!(
            map_state(&wordcount(), &new, false),
            Ok(StateMapping::default())
        );
    }

    #[test]
    fn dropping_state_is_refused_unless_allowed() {
        let new = job(&[("read", true), ("shout", false), ("write", false)]);
        assert_eq!(
            map_state(&wordcount(), &new, false),
            Err(MappingRefusal::StateDropped {
                added: vec!["shout".into()],
                removed: vec!["count".into()],
            })
        );
        assert_eq!(
            map_state(&wordcount(), &new, true),
            Ok(StateMapping {
                added: vec!["shout".into()],
                dropped: vec!["count".into()],
            })
        );
    }

    #[test]
    fn a_new_source_is_refused_even_when_dropping_state_is_allowed() {
        let new = job(&[
            ("read", true),
            ("read2", true),
            ("tokenize", false),
            ("count", false),
            ("write", false),
        ]);
        for allow in [false, true] {
            assert_eq!(
                map_state(&wordcount(), &new, allow),
                Err(MappingRefusal::NewSources(vec!["read2".into()]))
            );
        }
    }

    #[test]
    fn a_removed_source_drops_its_positions() {
        let old = checkpoint(&[
            ("a", false, true),
            ("b", false, true),
            ("sink", true, false),
        ]);
        let new = job(&[("a", true), ("sink", false)]);
        assert_eq!(
            map_state(&old, &new, false),
            Err(MappingRefusal::StateDropped {
                added: vec![],
                removed: vec!["b".into()],
            })
        );
    }

    #[test]
    fn state_that_changes_role_is_not_taken() {
        // "count" became a source: a source has no position there, and its snapshots go.
        let new = job(&[("read", true), ("count", true), ("write", false)]);
        assert_eq!(
            map_state(&wordcount(), &new, true),
            Err(MappingRefusal::NewSources(vec!["count".into()]))
        );
        // "read" is no longer a source: its positions go.
        let old = checkpoint(&[
            ("src", false, true),
            ("read", false, true),
            ("write", true, false),
        ]);
        let new = job(&[("src", true), ("read", false), ("write", false)]);
        assert_eq!(
            map_state(&old, &new, true),
            Ok(StateMapping {
                added: vec![],
                dropped: vec!["read".into()],
            })
        );
    }
}
