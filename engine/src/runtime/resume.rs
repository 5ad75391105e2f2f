//! Where a job resumes: its own newest checkpoint, else the savepoint it was started from;
//! and where each source task resumes, with the recorded positions reassigned when a source's
//! parallelism changed.

use crate::error::JobError;
use crate::graph::validate::ResolvedGraph;
use crate::graph::JobGraph;
use crate::operator::SourcePosition;
use crate::runtime::restore::{find_restore_point, restore_point, NewOperator, RestorePoint};
use snapflow_checkpoint::{open_savepoint, CheckpointStore};
use std::path::Path;

/// The checkpoint the job resumes from: the newest complete one of its own `store`, else, when
/// the store holds none, the savepoint `savepoint` (Flink's rule: a job that has checkpoints
/// of its own never goes back to the savepoint it started from, so a rerun after a crash
/// resumes where it was). The savepoint is opened read-only and verified in full.
///
/// # Errors
/// As [`find_restore_point`]; [`JobError::Savepoint`] for a missing, incomplete or damaged
/// savepoint.
pub(crate) fn choose_restore_point(
    store: Option<&CheckpointStore>,
    savepoint: Option<&Path>,
    operators: &[NewOperator<'_>],
    allow_non_restored_state: bool,
) -> Result<Option<RestorePoint>, JobError> {
    if let Some(store) = store {
        if let Some(point) = find_restore_point(store, operators, allow_non_restored_state)? {
            if let Some(dir) = savepoint {
                tracing::info!(
                    checkpoint = point.manifest.checkpoint.0,
                    savepoint = %dir.display(),
                    "the checkpoint directory has checkpoints: resuming from them, not from the savepoint"
                );
            }
            return Ok(Some(point));
        }
    }
    let Some(dir) = savepoint else {
        return Ok(None);
    };
    let (store, opened) = open_savepoint(dir)?;
    tracing::info!(checkpoint = opened.manifest.checkpoint.0, savepoint = %dir.display(), "starting from a savepoint");
    restore_point(&store, opened, true, operators, allow_non_restored_state).map(Some)
}

/// Checks every source's input against the positions `point` recorded for it, and plans
/// where each of its tasks resumes: the recorded positions, or, when the source's
/// parallelism changed, the source's own reassignment of them ([`Source::rescale`]).
///
/// [`Source::rescale`]: crate::Source::rescale
///
/// # Errors
/// [`JobError::InputChanged`] if an input changed; [`JobError::SourceCannotRescale`] if a
/// source cannot resume at its new parallelism, or its reassignment is not one position per
/// task.
pub(crate) fn plan_source_positions(
    point: &mut RestorePoint,
    graph: &JobGraph,
    resolved: &ResolvedGraph,
) -> Result<(), JobError> {
    let g = &graph.graph;
    let checkpoint = point.manifest.checkpoint;
    for n in g.node_indices().filter(|&n| g[n].ports == 0) {
        let node = &resolved.nodes[n.index()];
        let positions = recorded_positions(&point.manifest, &node.uid);
        g[n].factory
            .verify_restore(&positions)
            .map_err(|source| JobError::InputChanged {
                operator: node.name.to_string(),
                checkpoint,
                source,
            })?;
        let cannot = |source| JobError::SourceCannotRescale {
            operator: node.name.to_string(),
            uid: node.uid.to_string(),
            checkpoint,
            from: positions.len(),
            to: node.parallelism,
            source,
        };
        let planned = if positions.len() == node.parallelism {
            positions
        } else {
            let rescaled = g[n]
                .factory
                .rescale(&positions, node.parallelism)
                .map_err(cannot)?;
            if rescaled.len() != node.parallelism {
                return Err(cannot(
                    format!(
                        "the source reassigned its positions to {} tasks instead of {}",
                        rescaled.len(),
                        node.parallelism
                    )
                    .into(),
                ));
            }
            tracing::info!(
                source = %node.uid,
                from = positions.len(),
                to = node.parallelism,
                "source positions reassigned to a new parallelism"
            );
            rescaled
        };
        point.source_positions.insert(node.uid.to_string(), planned);
    }
    Ok(())
}

/// The positions the checkpoint recorded for source `uid`, by task index.
fn recorded_positions(manifest: &snapflow_checkpoint::Manifest, uid: &str) -> Vec<SourcePosition> {
    let mut offsets: Vec<_> = manifest
        .source_offsets
        .iter()
        .filter(|o| o.operator_uid == uid)
        .collect();
    offsets.sort_by_key(|o| o.task);
    offsets
        .into_iter()
        .map(|o| SourcePosition {
            offset: o.offset.clone(),
            description: o.description.clone(),
        })
        .collect()
}
