//! The logical job graph: operators as nodes, typed edges between them.
//!
//! The builder appends to it; [`validate`] checks it and resolves defaults (parallelism, uids,
//! partitioning) into a [`ResolvedGraph`] that the runtime plans from. The graph itself is
//! never changed by running it, so a job can be launched again (a restart builds every task
//! afresh from the same recipes).

pub(crate) mod fingerprint;
pub(crate) mod validate;

use crate::error::BuildError;
use crate::partition::Partitioning;
use crate::runtime::factory::{EdgeFactory, NodeFactory};
use petgraph::graph::DiGraph;
use std::sync::Arc;

pub(crate) use validate::{resolve, ResolvedGraph};

/// What role a node plays; only sinks may have no consumer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Source,
    Operator,
    Sink,
}

/// One operator of the job.
pub(crate) struct NodeSpec {
    pub name: String,
    pub uid: Option<String>,
    pub parallelism: Option<usize>,
    pub kind: NodeKind,
    /// Number of input ports: 0 for sources, 2 for two-input operators, 1 otherwise.
    pub ports: usize,
    pub factory: Arc<dyn NodeFactory>,
    /// Whether the operator may run in one thread with its neighbours.
    pub chaining: Chaining,
}

/// How an operator may be chained (Flink's `ChainingStrategy`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Chaining {
    /// Chains with its upstream and downstream neighbours wherever the rules allow.
    #[default]
    Always,
    /// Starts a new chain: never chained to its upstream neighbour, but may head a chain.
    Head,
    /// Never chained, in either direction.
    Never,
}

/// One stream flowing from a node into an input port of another.
pub(crate) struct EdgeSpec {
    pub port: usize,
    /// `None`: forward where the parallelism matches, rebalance where it does not.
    pub partitioning: Option<Partitioning>,
    pub factory: Arc<dyn EdgeFactory>,
}

/// The graph under construction, shared by a [`Job`](crate::Job) and its streams.
#[derive(Default)]
pub(crate) struct JobGraph {
    pub graph: DiGraph<NodeSpec, EdgeSpec>,
    /// Mistakes noticed while building that the type system could not reject; `run` reports
    /// the first.
    pub errors: Vec<BuildError>,
}
