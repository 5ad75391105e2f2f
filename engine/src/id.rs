//! Identifiers of operators and tasks.

use std::fmt;

/// An operator's position in the job graph, in the order the builder created it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperatorId(pub u32);

/// One parallel instance of an operator: operator `operator`, instance `index`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    /// The operator this task runs.
    pub operator: OperatorId,
    /// Which of the operator's parallel instances, `0..parallelism`.
    pub index: u32,
}

impl fmt::Display for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op{}", self.0)
    }
}
