//! The physical plan as a value: which tasks a job runs, the channels between them, and what
//! each task restores from.
//!
//! [`plan`] is pure: it looks at the graph's shape (ports, edges), the resolved parallelism and
//! partitioning, the configuration and the manifest of the checkpoint the job resumes from,
//! never at the type-erased recipes, so it is tested without threads or a disk.
//! [`launch`](crate::runtime::plan::launch) then creates the typed channels and spawns a
//! thread per planned task.

use crate::config::JobConfig;
use crate::coordinator::pending::TaskKey;
use crate::graph::{Chaining, JobGraph, ResolvedGraph};
use crate::partition::Partitioning;
use petgraph::visit::EdgeRef;
use snapflow_checkpoint::{CheckpointId, KeyGroupRange, Manifest};
use std::sync::Arc;

/// The graph's shape: what planning needs of the logical graph besides what `resolve` decided.
#[derive(Clone, Debug, Default)]
pub(crate) struct GraphShape {
    /// Each node's number of input ports, by node index: 0 for sources.
    pub ports: Vec<usize>,
    /// The edges, by edge index.
    pub edges: Vec<EdgeShape>,
    /// Each node's chaining setting, by node index.
    pub chaining: Vec<Chaining>,
}

/// One edge of the graph: from node `from` into input port `port` of node `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EdgeShape {
    pub from: usize,
    pub to: usize,
    pub port: usize,
}

impl GraphShape {
    /// The shape of `graph`.
    pub(crate) fn of(graph: &JobGraph) -> GraphShape {
        let g = &graph.graph;
        GraphShape {
            ports: g.node_weights().map(|n| n.ports).collect(),
            chaining: g.node_weights().map(|n| n.chaining).collect(),
            edges: g
                .edge_references()
                .map(|e| EdgeShape {
                    from: e.source().index(),
                    to: e.target().index(),
                    port: e.weight().port,
                })
                .collect(),
        }
    }
}

/// Every task and channel of a job, decided before any of them exists.
#[derive(Clone, Debug)]
pub(crate) struct PhysicalPlan {
    /// The tasks, node by node and by index within a node.
    pub tasks: Vec<PlannedTask>,
    /// The channels, edge by edge, then by sending task, then by receiving task. A chained
    /// edge has none: its tasks call each other directly.
    pub channels: Vec<PlannedChannel>,
    /// The threads: each a chain of tasks (positions in `tasks`), its head first, then the
    /// tasks chained to it in the order their edges lead to them. An unchained task is a
    /// chain of one.
    pub chains: Vec<Vec<usize>>,
    /// Whether each edge is chained, by edge index.
    pub chained: Vec<bool>,
    /// The id of the first checkpoint this run takes.
    pub first_checkpoint: CheckpointId,
    /// Whether the checkpoint resumed from is the job's final one: nothing is left to run.
    pub finished: bool,
    /// Where each node's tasks start in `tasks`, by node index.
    node_offsets: Vec<usize>,
    /// Each edge's partitioning, by edge index.
    partitionings: Vec<Partitioning>,
}

/// One task: a parallel instance of an operator (later, of a chain of operators).
#[derive(Clone, Debug)]
pub(crate) struct PlannedTask {
    /// (node index, task index).
    pub key: TaskKey,
    pub name: Arc<str>,
    pub uid: Arc<str>,
    pub index: usize,
    pub parallelism: usize,
    /// Number of input ports: 0 for a source.
    pub ports: usize,
    /// Records per second for this task when the job is rate-limited; sources only.
    pub source_rate: Option<f64>,
    /// What the task's state comes from.
    pub restore: PlannedRestore,
}

impl PlannedTask {
    /// Whether the task reads a source.
    pub(crate) fn is_source(&self) -> bool {
        self.ports == 0
    }
}

/// Where a task's state comes from when the job starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PlannedRestore {
    /// The job starts from the beginning.
    Fresh,
    /// A source resumes at the position planned for its task index before the job starts:
    /// the one the old task of the same index recorded, or its share of the old positions
    /// when the source's parallelism changed (see `runtime/resume.rs`).
    Position {
        /// The old task's index.
        task: u32,
    },
    /// An operator reads the old tasks' snapshots of its uid and keeps its key groups.
    ///
    /// Every old snapshot of the operator is listed, not only those whose key groups overlap:
    /// the manifest does not record the old parallelism (a task with no state writes no
    /// snapshot, so the count does not tell it), and operator state that is not keyed is
    /// read whole by every task.
    State {
        /// The key groups the new task owns.
        key_groups: KeyGroupRange,
        /// The old task indices whose snapshots it reads, ascending.
        snapshots: Vec<u32>,
    },
}

/// One channel: from a task into an input port of another, for one edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PlannedChannel {
    /// The edge's index in the graph.
    pub edge: usize,
    pub from: TaskKey,
    pub to: TaskKey,
    pub port: usize,
    pub partitioning: Partitioning,
}

impl PhysicalPlan {
    /// Where task `key` is in [`tasks`](PhysicalPlan::tasks).
    pub(crate) fn position(&self, key: TaskKey) -> usize {
        self.node_offsets[key.0] + key.1
    }

    /// For each task of the edge's sending node, the receiving tasks it has a channel to, in
    /// channel order.
    pub(crate) fn targets(&self, edge: usize, upstream: usize) -> Vec<Vec<usize>> {
        let mut targets = vec![Vec::new(); upstream];
        for c in self.channels.iter().filter(|c| c.edge == edge) {
            targets[c.from.1].push(c.to.1);
        }
        targets
    }

    /// How edge `edge` routes records.
    pub(crate) fn partitioning(&self, edge: usize) -> Partitioning {
        self.partitionings[edge]
    }
}

/// Expands the graph into tasks and channels: one task per (node, index), one channel per
/// (sending task, receiving task) pair of an edge, task `i` to task `i` alone on a forward
/// edge; and decides what each task restores from `restore`, the manifest of the checkpoint
/// the job resumes from.
pub(crate) fn plan(
    shape: &GraphShape,
    resolved: &ResolvedGraph,
    config: &JobConfig,
    restore: Option<&Manifest>,
    first_checkpoint: CheckpointId,
) -> PhysicalPlan {
    let source_tasks: usize = shape
        .ports
        .iter()
        .zip(&resolved.nodes)
        .filter(|(&ports, _)| ports == 0)
        .map(|(_, node)| node.parallelism)
        .sum();
    let source_rate = config.max_rate.map(|r| r as f64 / source_tasks as f64);
    let mut tasks = Vec::new();
    let mut node_offsets = Vec::with_capacity(resolved.nodes.len());
    for (n, (node, &ports)) in resolved.nodes.iter().zip(&shape.ports).enumerate() {
        node_offsets.push(tasks.len());
        for index in 0..node.parallelism {
            tasks.push(PlannedTask {
                key: (n, index),
                name: node.name.clone(),
                uid: node.uid.clone(),
                index,
                parallelism: node.parallelism,
                ports,
                source_rate: source_rate.filter(|_| ports == 0),
                restore: restore.map_or(PlannedRestore::Fresh, |manifest| {
                    restore_of(
                        manifest,
                        &node.uid,
                        ports == 0,
                        index,
                        node.parallelism,
                        config,
                    )
                }),
            });
        }
    }
    let chained = chained_edges(shape, resolved, config);
    let mut channels = Vec::new();
    for (e, edge) in shape.edges.iter().enumerate() {
        if chained[e] {
            continue;
        }
        let partitioning = resolved.edges[e];
        let downstream = resolved.nodes[edge.to].parallelism;
        for u in 0..resolved.nodes[edge.from].parallelism {
            let targets = match partitioning {
                Partitioning::Forward => u..u + 1,
                _ => 0..downstream,
            };
            channels.extend(targets.map(|d| PlannedChannel {
                edge: e,
                from: (edge.from, u),
                to: (edge.to, d),
                port: edge.port,
                partitioning,
            }));
        }
    }
    let chains = chains(shape, &chained, &node_offsets, tasks.len());
    PhysicalPlan {
        tasks,
        channels,
        chains,
        chained,
        first_checkpoint,
        finished: restore.is_some_and(|m| m.is_final),
        node_offsets,
        partitionings: resolved.edges.clone(),
    }
}

/// Which edges are chained (Flink's rules): the job allows chaining; the edge is forward
/// between nodes of equal parallelism; the downstream node has one input port and this one
/// edge into it (so it has no other input to align) and may chain to its upstream neighbour;
/// and the upstream node may chain at all.
pub(crate) fn chained_edges(
    shape: &GraphShape,
    resolved: &ResolvedGraph,
    config: &JobConfig,
) -> Vec<bool> {
    shape
        .edges
        .iter()
        .enumerate()
        .map(|(e, edge)| {
            let inputs = shape.edges.iter().filter(|x| x.to == edge.to).count();
            config.chaining
                && resolved.edges[e] == Partitioning::Forward
                && resolved.nodes[edge.from].parallelism == resolved.nodes[edge.to].parallelism
                && shape.ports[edge.to] == 1
                && inputs == 1
                && shape.chaining[edge.to] == Chaining::Always
                && shape.chaining[edge.from] != Chaining::Never
        })
        .collect()
}

/// Groups the tasks into chains: task `i` of a node heads a chain unless its node's one input
/// edge is chained; a chained edge adds task `i` of its downstream node to the chain of task
/// `i` of its upstream node.
fn chains(
    shape: &GraphShape,
    chained: &[bool],
    node_offsets: &[usize],
    task_count: usize,
) -> Vec<Vec<usize>> {
    let is_member = |node: usize| {
        shape
            .edges
            .iter()
            .zip(chained)
            .any(|(edge, &c)| c && edge.to == node)
    };
    let mut chains = Vec::new();
    for (node, &offset) in node_offsets.iter().enumerate() {
        if is_member(node) {
            continue;
        }
        let parallelism = node_offsets.get(node + 1).unwrap_or(&task_count) - offset;
        for index in 0..parallelism {
            // Breadth first from the head: each member follows the member it is chained to.
            let mut nodes = vec![node];
            let mut at = 0;
            while at < nodes.len() {
                let from = nodes[at];
                for (edge, _) in shape
                    .edges
                    .iter()
                    .zip(chained)
                    .filter(|(e, &c)| c && e.from == from)
                {
                    nodes.push(edge.to);
                }
                at += 1;
            }
            chains.push(nodes.iter().map(|&n| node_offsets[n] + index).collect());
        }
    }
    chains
}

fn restore_of(
    manifest: &Manifest,
    uid: &str,
    is_source: bool,
    index: usize,
    parallelism: usize,
    config: &JobConfig,
) -> PlannedRestore {
    if is_source {
        return PlannedRestore::Position { task: index as u32 };
    }
    let mut snapshots: Vec<u32> = manifest.snapshots_of(uid).map(|e| e.task).collect();
    snapshots.sort_unstable();
    PlannedRestore::State {
        key_groups: KeyGroupRange::for_task(
            index as u32,
            parallelism as u32,
            config.max_parallelism,
        ),
        snapshots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::validate::ResolvedNode;
    use snapflow_checkpoint::{SnapshotEntry, SourceOffset};

    /// A graph of `(uid, ports, parallelism)` nodes and `(from, to, port, partitioning)` edges.
    fn graph(
        nodes: &[(&str, usize, usize)],
        edges: &[(usize, usize, usize, Partitioning)],
    ) -> (GraphShape, ResolvedGraph) {
        let shape = GraphShape {
            ports: nodes.iter().map(|n| n.1).collect(),
            edges: edges
                .iter()
                .map(|&(from, to, port, _)| EdgeShape { from, to, port })
                .collect(),
            chaining: vec![Chaining::Always; nodes.len()],
        };
        let resolved = ResolvedGraph {
            nodes: nodes
                .iter()
                .map(|&(uid, _, parallelism)| ResolvedNode {
                    name: uid.into(),
                    uid: uid.into(),
                    parallelism,
                })
                .collect(),
            edges: edges.iter().map(|e| e.3).collect(),
        };
        (shape, resolved)
    }

    /// source(p) -> map(p) forward -> count(q) hash -> sink(1) rebalance.
    fn pipeline(p: usize, q: usize) -> (GraphShape, ResolvedGraph) {
        graph(
            &[
                ("source", 0, p),
                ("map", 1, p),
                ("count", 1, q),
                ("sink", 1, 1),
            ],
            &[
                (0, 1, 0, Partitioning::Forward),
                (1, 2, 0, Partitioning::Hash),
                (2, 3, 0, Partitioning::Rebalance),
            ],
        )
    }

    /// The plan of a fresh start without chaining: a task per thread, a channel per edge.
    fn fresh(shape: &GraphShape, resolved: &ResolvedGraph) -> PhysicalPlan {
        plan(
            shape,
            resolved,
            &JobConfig::default().with_chaining(false),
            None,
            CheckpointId(1),
        )
    }

    /// The plan of a fresh start with chaining (the default).
    fn chained(shape: &GraphShape, resolved: &ResolvedGraph) -> PhysicalPlan {
        plan(
            shape,
            resolved,
            &JobConfig::default(),
            None,
            CheckpointId(1),
        )
    }

    #[test]
    fn forward_edges_at_equal_parallelism_chain_and_others_do_not() {
        // source(2) -> map(2) forward: chained; map -> count(3) hash: not (records move
        // between tasks); count -> sink(1) rebalance: not.
        let (shape, resolved) = pipeline(2, 3);
        let plan = chained(&shape, &resolved);
        assert_eq!(plan.chained, [true, false, false]);
        // Positions: source 0-1, map 2-3, count 4-6, sink 7.
        assert_eq!(
            plan.chains,
            [vec![0, 2], vec![1, 3], vec![4], vec![5], vec![6], vec![7]]
        );
        assert!(plan.channels.iter().all(|c| c.edge != 0));
        assert_eq!(plan.channels.len(), 2 * 3 + 3);
        // Every task is in exactly one chain.
        let mut all: Vec<usize> = plan.chains.concat();
        all.sort_unstable();
        assert_eq!(all, (0..plan.tasks.len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_forward_edge_between_different_parallelisms_does_not_chain() {
        let (shape, resolved) = graph(
            &[("source", 0, 2), ("map", 1, 1)],
            &[(0, 1, 0, Partitioning::Forward)],
        );
        assert_eq!(chained(&shape, &resolved).chained, [false]);
    }

    #[test]
    fn a_whole_forward_pipeline_is_one_chain_per_index() {
        // Word count's shape after the keyed count: count -> map -> sink, all forward.
        let (shape, resolved) = graph(
            &[("count", 1, 2), ("format", 1, 2), ("sink", 1, 2)],
            &[
                (0, 1, 0, Partitioning::Forward),
                (1, 2, 0, Partitioning::Forward),
            ],
        );
        let plan = chained(&shape, &resolved);
        assert_eq!(plan.chains, [vec![0, 2, 4], vec![1, 3, 5]]);
        assert!(plan.channels.is_empty());
    }

    #[test]
    fn two_input_operators_and_operators_with_two_inputs_are_never_members() {
        // a(1) -> join port 0, b(1) -> join port 1 (both forward, equal parallelism);
        // join -> sink forward: the join heads a chain with the sink.
        let (shape, resolved) = graph(
            &[("a", 0, 1), ("b", 0, 1), ("join", 2, 1), ("sink", 1, 1)],
            &[
                (0, 2, 0, Partitioning::Forward),
                (1, 2, 1, Partitioning::Forward),
                (2, 3, 0, Partitioning::Forward),
            ],
        );
        let plan = chained(&shape, &resolved);
        assert_eq!(plan.chained, [false, false, true]);
        assert_eq!(plan.chains, [vec![0], vec![1], vec![2, 3]]);
        // A one-port operator fed by two edges (a union) is not a member either.
        let (shape, resolved) = graph(
            &[("a", 0, 1), ("b", 0, 1), ("union", 1, 1)],
            &[
                (0, 2, 0, Partitioning::Forward),
                (1, 2, 0, Partitioning::Forward),
            ],
        );
        assert_eq!(chained(&shape, &resolved).chained, [false, false]);
    }

    #[test]
    fn one_operator_may_chain_to_several_consumers() {
        // A splitter with a main and a side consumer, both forward: one chain, a tree.
        let (shape, resolved) = graph(
            &[("source", 0, 1), ("main", 1, 1), ("side", 1, 1)],
            &[
                (0, 1, 0, Partitioning::Forward),
                (0, 2, 0, Partitioning::Forward),
            ],
        );
        let plan = chained(&shape, &resolved);
        assert_eq!(plan.chains, [vec![0, 1, 2]]);
    }

    #[test]
    fn the_builder_switches_and_the_job_switch_break_chains() {
        let (mut shape, resolved) = graph(
            &[("source", 0, 1), ("a", 1, 1), ("b", 1, 1), ("c", 1, 1)],
            &[
                (0, 1, 0, Partitioning::Forward),
                (1, 2, 0, Partitioning::Forward),
                (2, 3, 0, Partitioning::Forward),
            ],
        );
        assert_eq!(chained(&shape, &resolved).chains, [vec![0, 1, 2, 3]]);
        // `start_new_chain` on b: a | b -> c.
        shape.chaining[2] = Chaining::Head;
        let plan = chained(&shape, &resolved);
        assert_eq!(plan.chained, [true, false, true]);
        assert_eq!(plan.chains, [vec![0, 1], vec![2, 3]]);
        // `disable_chaining` on b: b chains with neither neighbour.
        shape.chaining[2] = Chaining::Never;
        let plan = chained(&shape, &resolved);
        assert_eq!(plan.chained, [true, false, false]);
        assert_eq!(plan.chains, [vec![0, 1], vec![2], vec![3]]);
        // The job-wide switch: nothing chains.
        shape.chaining[2] = Chaining::Always;
        let plan = fresh(&shape, &resolved);
        assert_eq!(plan.chained, [false, false, false]);
        assert_eq!(plan.chains, [vec![0], vec![1], vec![2], vec![3]]);
        assert_eq!(plan.channels.len(), 3);
    }

    #[test]
    fn chaining_changes_threads_never_what_a_task_restores() {
        let (shape, resolved) = pipeline(2, 2);
        let m = manifest(
            &[("count", 0), ("count", 1)],
            &[("source", 0), ("source", 1)],
            false,
        );
        let with = plan(
            &shape,
            &resolved,
            &JobConfig::default(),
            Some(&m),
            CheckpointId(8),
        );
        let without = plan(
            &shape,
            &resolved,
            &JobConfig::default().with_chaining(false),
            Some(&m),
            CheckpointId(8),
        );
        assert_ne!(with.chains, without.chains);
        let restores = |p: &PhysicalPlan| {
            p.tasks
                .iter()
                .map(|t| (t.key, t.uid.clone(), t.restore.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(restores(&with), restores(&without));
    }

    fn manifest(snapshots: &[(&str, u32)], sources: &[(&str, u32)], is_final: bool) -> Manifest {
        Manifest {
            checkpoint: CheckpointId(7),
            job: "job".into(),
            graph_fingerprint: 0,
            triggered_at_ms: 0,
            completed_at_ms: 0,
            snapshots: snapshots
                .iter()
                .map(|&(uid, task)| SnapshotEntry {
                    operator_uid: uid.into(),
                    task,
                    file: format!("{uid}-{task}"),
                    bytes: 0,
                    checksum: 0,
                    base: Vec::new(),
                })
                .collect(),
            source_offsets: sources
                .iter()
                .map(|&(uid, task)| SourceOffset {
                    operator_uid: uid.into(),
                    task,
                    offset: Vec::new(),
                    description: String::new(),
                })
                .collect(),
            operators: Vec::new(),
            is_final,
        }
    }

    #[test]
    fn one_task_per_node_and_index_in_node_order() {
        let (shape, resolved) = pipeline(3, 2);
        let plan = fresh(&shape, &resolved);
        let keys: Vec<TaskKey> = plan.tasks.iter().map(|t| t.key).collect();
        assert_eq!(
            keys,
            [
                (0, 0),
                (0, 1),
                (0, 2),
                (1, 0),
                (1, 1),
                (1, 2),
                (2, 0),
                (2, 1),
                (3, 0)
            ]
        );
        for (at, task) in plan.tasks.iter().enumerate() {
            assert_eq!(plan.position(task.key), at);
            assert_eq!(task.index, task.key.1);
            assert_eq!(task.parallelism, resolved.nodes[task.key.0].parallelism);
            assert_eq!(task.is_source(), task.key.0 == 0);
            assert_eq!(task.restore, PlannedRestore::Fresh);
        }
        assert_eq!(plan.first_checkpoint, CheckpointId(1));
        assert!(!plan.finished);
    }

    #[test]
    fn forward_edges_pair_equal_indices_and_others_connect_every_pair() {
        let (shape, resolved) = pipeline(3, 2);
        let plan = fresh(&shape, &resolved);
        let of = |edge| plan.channels.iter().filter(move |c| c.edge == edge);
        assert_eq!(of(0).count(), 3);
        assert!(of(0).all(|c| c.from.1 == c.to.1 && c.partitioning == Partitioning::Forward));
        assert_eq!(of(1).count(), 3 * 2);
        assert_eq!(of(2).count(), 2);
        assert_eq!(plan.targets(0, 3), [vec![0], vec![1], vec![2]]);
        assert_eq!(plan.targets(1, 3), [vec![0, 1], vec![0, 1], vec![0, 1]]);
        assert_eq!(plan.targets(2, 2), [vec![0], vec![0]]);
        assert_eq!(plan.partitioning(1), Partitioning::Hash);
        assert_eq!(plan.channels.len(), 3 + 6 + 2);
    }

    #[test]
    fn channels_go_into_the_edges_port() {
        let (shape, resolved) = graph(
            &[("left", 0, 2), ("right", 0, 1), ("join", 2, 2)],
            &[
                (0, 2, 0, Partitioning::Hash),
                (1, 2, 1, Partitioning::Broadcast),
            ],
        );
        let plan = fresh(&shape, &resolved);
        assert_eq!(plan.channels.len(), 2 * 2 + 2);
        assert!(plan
            .channels
            .iter()
            .all(|c| c.port == c.edge && c.to.0 == 2 && c.from.0 == c.edge));
        assert_eq!(plan.tasks.iter().filter(|t| t.is_source()).count(), 3);
    }

    #[test]
    fn a_rate_limit_is_shared_by_the_source_tasks() {
        let (shape, resolved) = pipeline(4, 1);
        let config = JobConfig::default().with_max_rate(Some(1000));
        let plan = plan(&shape, &resolved, &config, None, CheckpointId(1));
        for task in &plan.tasks {
            let rate = task.is_source().then_some(250.0);
            assert_eq!(task.source_rate, rate, "{:?}", task.key);
        }
    }

    #[test]
    fn sources_resume_from_the_same_index() {
        let (shape, resolved) = pipeline(2, 2);
        let m = manifest(&[], &[("source", 0), ("source", 1)], false);
        let plan = plan(
            &shape,
            &resolved,
            &JobConfig::default(),
            Some(&m),
            CheckpointId(8),
        );
        for task in plan.tasks.iter().filter(|t| t.is_source()) {
            let task_index = task.index as u32;
            assert_eq!(task.restore, PlannedRestore::Position { task: task_index });
        }
        assert_eq!(plan.first_checkpoint, CheckpointId(8));
    }

    #[test]
    fn keyed_state_is_split_by_key_group_at_a_new_parallelism() {
        // `count` ran with 2 tasks and resumes with 3; `map` wrote no snapshot.
        let (shape, resolved) = pipeline(1, 3);
        let m = manifest(&[("count", 1), ("count", 0), ("sink", 0)], &[], false);
        let config = JobConfig::default().with_max_parallelism(12);
        let plan = plan(&shape, &resolved, &config, Some(&m), CheckpointId(8));
        let restore = |key| plan.tasks[plan.position(key)].restore.clone();
        for (index, groups) in [(0, 0..4), (1, 4..8), (2, 8..12)] {
            assert_eq!(
                restore((2, index)),
                PlannedRestore::State {
                    key_groups: KeyGroupRange { groups },
                    snapshots: vec![0, 1],
                }
            );
        }
        assert_eq!(
            restore((1, 0)),
            PlannedRestore::State {
                key_groups: KeyGroupRange { groups: 0..12 },
                snapshots: Vec::new(),
            }
        );
        assert!(matches!(
            restore((3, 0)),
            PlannedRestore::State { snapshots, .. } if snapshots == [0]
        ));
    }

    #[test]
    fn a_final_checkpoint_leaves_nothing_to_run() {
        let (shape, resolved) = pipeline(1, 1);
        let m = manifest(&[], &[("source", 0)], true);
        assert!(
            plan(
                &shape,
                &resolved,
                &JobConfig::default(),
                Some(&m),
                CheckpointId(8)
            )
            .finished
        );
    }
}
