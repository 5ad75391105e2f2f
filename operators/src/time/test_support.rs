//! Set-ups the time and window operator tests share: the task an operator runs as, and
//! restoring a single-instance operator from one checkpoint the way a recovering job does.

use snapflow_engine::testing::OneInputHarness;
use snapflow_engine::{CheckpointId, Data, KeyGroupRange, OperatorId, TaskInfo};
use std::sync::Arc;

/// Instance `index` of `parallelism` of an operator named `name` (uid the same), with 128
/// key groups, whose first checkpoint is 1.
pub(crate) fn task(name: &str, index: usize, parallelism: usize) -> TaskInfo {
    TaskInfo {
        operator: OperatorId(0),
        name: Arc::from(name),
        uid: Arc::from(name),
        index,
        parallelism,
        max_parallelism: 128,
        first_checkpoint: CheckpointId(1),
    }
}

/// Restores `h` (a parallelism-1 instance owning all 128 key groups) from the single
/// `snapshot` it took at `checkpoint`, then opens it.
pub(crate) fn restore_and_open<I: Data, O: Data>(
    h: &mut OneInputHarness<I, O>,
    checkpoint: CheckpointId,
    snapshot: Vec<u8>,
) {
    h.restore_from(
        checkpoint,
        KeyGroupRange::for_task(0, 1, 128),
        vec![snapshot],
    )
    .unwrap();
    h.open().unwrap();
}
