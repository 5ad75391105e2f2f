//! Failure injection: make a chosen task fail at a chosen point, to test recovery.

use snapflow_checkpoint::CheckpointId;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Failures to inject into a job, for tests and chaos experiments. Each fault fires once per
/// injector, also across restarts of the job, so a restarted job can finish.
#[derive(Clone, Debug, Default)]
pub struct FailureInjector {
    faults: Vec<Arc<Fault>>,
    crashes: Vec<Arc<Crash>>,
    retention_hooks: Vec<RetentionHook>,
}

/// A function called inside retention's delete of a checkpoint.
#[derive(Clone)]
struct RetentionHook(Arc<dyn Fn(CheckpointId) + Send + Sync>);

impl fmt::Debug for RetentionHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RetentionHook")
    }
}

/// A moment of the checkpoint machinery at which [`FailureInjector::abort_process_at`] can
/// abort the whole process, as a `kill -9` there would (for the chaos driver).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// In the middle of writing a snapshot file: half its payload is on disk.
    SnapshotWrite,
    /// In retention's delete of an old checkpoint: its manifest is gone, its files are not.
    RetentionDelete,
}

#[derive(Debug)]
struct Crash {
    point: CrashPoint,
    nth: u64,
    seen: AtomicU64,
}

#[derive(Debug)]
struct Fault {
    operator: String,
    task: usize,
    after_records: u64,
    /// Fire only once this checkpoint (of the current attempt) has completed.
    after_checkpoint: u64,
    fired: AtomicBool,
}

impl FailureInjector {
    /// An injector with no faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes task `task` of the operator named `operator` panic once it has received
    /// `after_records` records (a source: read them), counted from the start of the attempt.
    pub fn fail_task(
        mut self,
        operator: impl Into<String>,
        task: usize,
        after_records: u64,
    ) -> Self {
        self.faults.push(Arc::new(Fault {
            operator: operator.into(),
            task,
            after_records,
            after_checkpoint: 0,
            fired: AtomicBool::new(false),
        }));
        self
    }

    /// Makes task `task` of the operator named `operator` panic at its first batch after
    /// checkpoint `checkpoint` has completed, so that the job resumes from a real checkpoint.
    pub fn fail_task_after_checkpoint(
        mut self,
        operator: impl Into<String>,
        task: usize,
        checkpoint: u64,
    ) -> Self {
        self.faults.push(Arc::new(Fault {
            operator: operator.into(),
            task,
            after_records: 0,
            after_checkpoint: checkpoint,
            fired: AtomicBool::new(false),
        }));
        self
    }

    /// Aborts the process (`std::process::abort`, no unwinding, no cleanup) the `nth` time
    /// (from 1) the job reaches `point`: a crash at a precise moment of a snapshot write or of
    /// retention, which a `kill -9` from outside would hit only by luck.
    pub fn abort_process_at(mut self, point: CrashPoint, nth: u64) -> Self {
        self.crashes.push(Arc::new(Crash {
            point,
            nth,
            seen: AtomicU64::new(0),
        }));
        self
    }

    /// Calls `hook(id)` each time retention deletes checkpoint `id`, on retention's own
    /// thread, once the checkpoint's manifest is removed and before its files are (where
    /// [`CrashPoint::RetentionDelete`] crashes). For tests: a hook that blocks holds retention
    /// in the middle of a delete while the job goes on.
    pub fn on_retention_delete(
        mut self,
        hook: impl Fn(CheckpointId) + Send + Sync + 'static,
    ) -> Self {
        self.retention_hooks.push(RetentionHook(Arc::new(hook)));
        self
    }

    /// Runs the hooks of [`on_retention_delete`](Self::on_retention_delete) for `id`.
    pub(crate) fn retention_deleting(&self, id: CheckpointId) {
        for hook in &self.retention_hooks {
            (hook.0)(id);
        }
    }

    /// Whether the process is to crash now, at `point`: counts one occurrence of it.
    pub(crate) fn crash_due(&self, point: CrashPoint) -> bool {
        self.crashes
            .iter()
            .filter(|c| c.point == point)
            .any(|c| c.seen.fetch_add(1, Ordering::Relaxed) + 1 == c.nth)
    }

    /// How many faults have fired.
    pub fn fired(&self) -> usize {
        self.faults
            .iter()
            .filter(|f| f.fired.load(Ordering::Relaxed))
            .count()
    }

    /// The faults aimed at one task.
    pub(crate) fn for_task(&self, operator: &str, task: usize) -> TaskFaults {
        TaskFaults(
            self.faults
                .iter()
                .filter(|f| f.operator == operator && f.task == task)
                .cloned()
                .collect(),
        )
    }
}

/// The faults of one task, checked once per batch.
#[derive(Clone, Debug, Default)]
pub(crate) struct TaskFaults(Vec<Arc<Fault>>);

impl TaskFaults {
    /// Panics if a fault is due after `records` records, with checkpoint `completed` the
    /// newest completed one, and has not fired yet.
    #[inline]
    pub(crate) fn check(&self, records: u64, completed: u64) {
        for fault in &self.0 {
            let due = records >= fault.after_records && completed >= fault.after_checkpoint;
            if due && !fault.fired.swap(true, Ordering::Relaxed) {
                panic!(
                    "injected failure of '{}' task {} after {records} records",
                    fault.operator, fault.task
                );
            }
        }
    }
}
