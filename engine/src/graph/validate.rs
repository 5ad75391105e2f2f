//! Checks a job graph and fills in defaults. Pure: no threads, no channels.

use crate::config::JobConfig;
use crate::error::BuildError;
use crate::graph::{JobGraph, NodeKind};
use crate::partition::Partitioning;
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::HashSet;
use std::sync::Arc;

/// A node with every default decided.
#[derive(Clone, Debug)]
pub(crate) struct ResolvedNode {
    pub name: Arc<str>,
    pub uid: Arc<str>,
    pub parallelism: usize,
}

/// The graph's nodes and edges, indexed like the graph, with every default decided.
#[derive(Debug)]
pub(crate) struct ResolvedGraph {
    pub nodes: Vec<ResolvedNode>,
    pub edges: Vec<Partitioning>,
}

/// Validates `graph` under `config`.
pub(crate) fn resolve(graph: &JobGraph, config: &JobConfig) -> Result<ResolvedGraph, BuildError> {
    config.validate()?;
    if let Some(error) = graph.errors.first() {
        return Err(error.clone());
    }
    let g = &graph.graph;
    if !g.node_weights().any(|n| n.kind == NodeKind::Source) {
        return Err(BuildError::NoSource);
    }
    let mut nodes = Vec::with_capacity(g.node_count());
    let mut uids = HashSet::new();
    for index in g.node_indices() {
        let node = &g[index];
        let parallelism = node.parallelism.unwrap_or(config.parallelism);
        if parallelism == 0 || parallelism > config.max_parallelism as usize {
            return Err(BuildError::InvalidParallelism {
                operator: node.name.clone(),
                parallelism,
                max_parallelism: config.max_parallelism,
            });
        }
        if node.kind != NodeKind::Sink
            && g.edges_directed(index, Direction::Outgoing)
                .next()
                .is_none()
        {
            return Err(BuildError::UnconsumedStream {
                operator: node.name.clone(),
            });
        }
        // The default uid follows from the build order, so the same builder program yields the
        // same uids run after run; `uid()` pins it across changes to the program.
        let uid = node
            .uid
            .clone()
            .unwrap_or_else(|| format!("{}-{}", index.index(), node.name));
        if !uids.insert(uid.clone()) {
            return Err(BuildError::DuplicateUid { uid });
        }
        nodes.push(ResolvedNode {
            name: node.name.as_str().into(),
            uid: uid.into(),
            parallelism,
        });
    }
    let mut edges = Vec::with_capacity(g.edge_count());
    for edge in g.edge_references() {
        let (from, to) = (&nodes[edge.source().index()], &nodes[edge.target().index()]);
        let same = from.parallelism == to.parallelism;
        let partitioning = match edge.weight().partitioning {
            None if same => Partitioning::Forward,
            None => Partitioning::Rebalance,
            Some(Partitioning::Forward) if !same => {
                return Err(BuildError::ForwardParallelismMismatch {
                    from: from.name.to_string(),
                    from_parallelism: from.parallelism,
                    to: to.name.to_string(),
                    to_parallelism: to.parallelism,
                })
            }
            Some(p) => p,
        };
        edges.push(partitioning);
    }
    Ok(ResolvedGraph { nodes, edges })
}
