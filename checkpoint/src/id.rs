use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies one checkpoint of a job. Ids start at 1 and strictly increase within a job's
/// lifetime, also across restarts: a restored job continues numbering after the checkpoint it
/// restored from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CheckpointId(pub u64);

impl CheckpointId {
    /// The id that follows this one.
    pub fn next(self) -> CheckpointId {
        CheckpointId(self.0 + 1)
    }
}

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
