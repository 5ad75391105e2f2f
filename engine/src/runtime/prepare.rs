//! What happens before a job's first thread starts: take its directories, find the
//! checkpoint to resume from, and check the sources' inputs and the sinks' outputs against it.
//!
//! A job that cannot resume exactly once does not start: every refusal comes before any task
//! runs, and before any output is published, except that when a job has several sinks, one
//! refused by its own check may come after another one published what the restored checkpoint
//! had pre-committed for it (which is its due).

use crate::config::{CheckpointConfig, JobConfig};
use crate::contract::restored::RestoredState;
use crate::error::JobError;
use crate::graph::fingerprint::fingerprint;
use crate::graph::validate::ResolvedGraph;
use crate::graph::JobGraph;
use crate::operator::Committer;
use crate::ownership::claim::{claim_all, ClaimedDirs};
use crate::ownership::DirRole;
use crate::runtime::restore::{NewOperator, RestorePoint};
use crate::runtime::resume::{choose_restore_point, plan_source_positions};
use petgraph::graph::NodeIndex;
use snapflow_checkpoint::{CheckpointId, CheckpointStore, KeyGroupRange};
use std::sync::Arc;

/// A job ready to start: its directories held, and where it resumes from.
pub(crate) struct Prepared {
    /// The locks on the job's directories, held until the job ends.
    pub claims: ClaimedDirs,
    /// The checkpoint configuration and store, when checkpointing is on.
    pub checkpoints: Option<(CheckpointConfig, CheckpointStore)>,
    /// The checkpoint to resume from.
    pub restore: Option<Arc<RestorePoint>>,
    /// The id of the first checkpoint this run takes.
    pub first_checkpoint: CheckpointId,
    /// The job graph's fingerprint.
    pub graph_fingerprint: u64,
    /// Every operator's uid, by node index.
    pub operator_uids: Vec<String>,
    /// The sinks' committers, opened: the same instances must publish the checkpoints.
    pub committers: Vec<Arc<dyn Committer>>,
}

/// Claims the job's directories, finds its restore point, verifies each source's input and
/// opens each sink's committer against it.
pub(crate) fn prepare(
    job: &str,
    graph: &JobGraph,
    resolved: &ResolvedGraph,
    config: &JobConfig,
) -> Result<Prepared, JobError> {
    let g = &graph.graph;
    // Asked for once per sink: a committer may hold a connection that `open` makes.
    let committers: Vec<(NodeIndex, Arc<dyn Committer>)> = g
        .node_indices()
        .filter_map(|n| g[n].factory.committer().map(|c| (n, c)))
        .collect();
    let mut dirs = Vec::new();
    if let Some(c) = &config.checkpoint {
        dirs.push((c.dir.clone(), DirRole::Checkpoints));
    }
    for (n, committer) in &committers {
        let operator = resolved.nodes[n.index()].name.to_string();
        for dir in committer.directories() {
            dirs.push((
                dir,
                DirRole::Output {
                    operator: operator.clone(),
                },
            ));
        }
    }
    let claims = claim_all(job, &dirs)?;

    let graph_fingerprint = fingerprint(graph, resolved);
    let operator_uids: Vec<String> = resolved.nodes.iter().map(|n| n.uid.to_string()).collect();
    // Resume from the latest complete checkpoint, if there is one: rerunning a job with the
    // same checkpoint directory is all it takes. Else from the savepoint, if one is given.
    let store = match &config.checkpoint {
        Some(c) => Some((c.clone(), CheckpointStore::open(&c.dir)?)),
        None => None,
    };
    let operators: Vec<NewOperator<'_>> = g
        .node_indices()
        .map(|n| NewOperator {
            uid: &resolved.nodes[n.index()].uid,
            is_source: g[n].ports == 0,
        })
        .collect();
    let mut restore = choose_restore_point(
        store.as_ref().map(|(_, s)| s),
        config.savepoint_restore.as_deref(),
        &operators,
        config.allow_non_restored_state,
    )?;
    // After every existing directory, so an id in flight when the last run died is never
    // reused; and after the restored checkpoint, which may come from a savepoint.
    let mut first_checkpoint = match &store {
        Some((_, s)) => s.next_id()?,
        None => CheckpointId(1),
    };
    if let Some(point) = &mut restore {
        first_checkpoint = first_checkpoint.max(point.manifest.checkpoint.next());
        plan_source_positions(point, graph, resolved)?;
    }
    let restore = restore.map(Arc::new);
    let checkpoints = store;

    // Sinks check their output against the checkpoint and resolve what an earlier run left
    // staged, before any writer stages anything new.
    for (n, committer) in &committers {
        let uid = &resolved.nodes[n.index()].uid;
        let state = match &restore {
            // A sink the checkpoint does not know starts fresh.
            Some(point) if !knows(&point.manifest, uid) => None,
            Some(point) => Some(
                RestoredState::load(
                    point,
                    uid,
                    KeyGroupRange::for_task(0, 1, config.max_parallelism),
                )
                .map_err(|source| JobError::SinkOpenFailed { source })?,
            ),
            None => None,
        };
        committer
            .open(state.as_ref())
            .map_err(|source| JobError::SinkOpenFailed { source })?;
    }
    Ok(Prepared {
        claims,
        checkpoints,
        restore,
        first_checkpoint,
        graph_fingerprint,
        operator_uids,
        committers: committers.into_iter().map(|(_, c)| c).collect(),
    })
}

/// Whether the checkpoint of `manifest` names the operator `uid`.
fn knows(manifest: &snapflow_checkpoint::Manifest, uid: &str) -> bool {
    manifest.operators.iter().any(|o| o == uid) || manifest.snapshots_of(uid).next().is_some()
}
