//! Sources of Nexmark events, each with its own watermarks (Flink's per-split watermarks with
//! 4 s of bounded out-of-orderness): [`NexmarkSource`] generates the events, [`NexmarkFileSource`]
//! reads the JSON-lines file the Flink peer reads. Both give the same events for the same
//! event numbers.

mod file;
mod generated;

pub use file::{NexmarkFileError, NexmarkFileSource};
pub use generated::NexmarkSource;

use snapflow_engine::Timestamp;

/// The watermark of a split whose largest event time so far is `max_seen`.
fn split_watermark(max_seen: Option<u64>) -> Option<Timestamp> {
    max_seen.map(|t| Timestamp(crate::event::watermark_after(t)))
}

/// Instance `index` of `parallelism` of a source task named `name`, for the sources' tests.
#[cfg(test)]
fn test_task(name: &str, index: usize, parallelism: usize) -> snapflow_engine::TaskInfo {
    use std::sync::Arc;
    snapflow_engine::TaskInfo {
        operator: snapflow_engine::OperatorId(0),
        name: Arc::from(name),
        uid: Arc::from(name),
        index,
        parallelism,
        max_parallelism: 128,
        first_checkpoint: snapflow_engine::CheckpointId(1),
    }
}
