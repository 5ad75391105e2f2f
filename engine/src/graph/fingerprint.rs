//! A fingerprint of the job graph's shape, recorded in every checkpoint manifest for
//! information (tools can tell whether two checkpoints come from the same graph). It decides
//! nothing: a restore matches state to operators by uid (`runtime::restore::map_state`).

use crate::graph::{JobGraph, NodeKind, ResolvedGraph};
use petgraph::visit::EdgeRef;
use snapflow_checkpoint::key_hash;
use std::fmt::Write;

/// Hashes the operators' uids and roles and the edges between them. Parallelism is left out
/// on purpose: state is organised by key group so that it can be restored at another one.
pub(crate) fn fingerprint(graph: &JobGraph, resolved: &ResolvedGraph) -> u64 {
    let g = &graph.graph;
    let mut shape = String::new();
    for n in g.node_indices() {
        let kind = match g[n].kind {
            NodeKind::Source => "source",
            NodeKind::Operator => "operator",
            NodeKind::Sink => "sink",
        };
        let _ = writeln!(
            shape,
            "node {} {kind} {}",
            resolved.nodes[n.index()].uid,
            g[n].ports
        );
    }
    for e in g.edge_references() {
        let _ = writeln!(
            shape,
            "edge {} -> {} port {} {:?}",
            resolved.nodes[e.source().index()].uid,
            resolved.nodes[e.target().index()].uid,
            e.weight().port,
            resolved.edges[e.id().index()],
        );
    }
    key_hash(shape.as_str())
}
