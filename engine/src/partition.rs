//! How records of an edge are distributed over the downstream tasks.

/// The partitioning of an edge between two operators.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Partitioning {
    /// Task `i` sends to task `i`; both operators must have the same parallelism.
    Forward,
    /// By key: each key's records go to the task that owns the key's key group.
    Hash,
    /// Batches go round-robin to all downstream tasks.
    Rebalance,
    /// Every record goes to every downstream task.
    Broadcast,
}
