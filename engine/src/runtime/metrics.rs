//! Per-task record counters, updated once per batch and readable while the job runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counters of one task. Relaxed atomics: they are statistics, not synchronization.
#[derive(Debug, Default)]
pub(crate) struct TaskCounters {
    records_in: AtomicU64,
    records_out: AtomicU64,
    /// CPU time of the task's thread, in nanoseconds, recorded when the task ends.
    cpu_nanos: AtomicU64,
}

impl TaskCounters {
    pub(crate) fn add_in(&self, n: u64) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_out(&self, n: u64) {
        self.records_out.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn records_in(&self) -> u64 {
        self.records_in.load(Ordering::Relaxed)
    }

    /// Records the CPU time the calling thread has used; called by the task's thread as it
    /// ends. Does nothing where the kernel does not tell (see [`thread_cpu_time`]).
    pub(crate) fn record_thread_cpu_time(&self) {
        if let Some(cpu) = thread_cpu_time() {
            self.cpu_nanos
                .store(cpu.as_nanos() as u64, Ordering::Relaxed);
        }
    }
}

/// The CPU time the calling thread has used so far: the first field of Linux's
/// `/proc/thread-self/schedstat` (nanoseconds on a CPU). `None` elsewhere.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Records counted for one operator, summed over its tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorMetrics {
    /// The operator's name.
    pub name: String,
    /// The operator's uid.
    pub uid: String,
    /// How many tasks ran it.
    pub parallelism: usize,
    /// Records its tasks received.
    pub records_in: u64,
    /// Records its tasks sent downstream (counting a record once per consuming edge and, for
    /// broadcast edges, once per receiving task).
    pub records_out: u64,
    /// CPU time its tasks' threads used, summed; known once they have ended, and only on
    /// Linux (zero otherwise). Divided by the records, it says what an operator costs.
    pub cpu_time: Duration,
}

/// Live counters of a running job; cheap to clone and to read from another thread.
#[derive(Clone, Debug)]
pub struct JobMetrics {
    pub(crate) operators: Arc<Vec<(OperatorMetrics, Vec<Arc<TaskCounters>>)>>,
}

impl JobMetrics {
    /// The current counts of every operator, in graph order.
    pub fn snapshot(&self) -> Vec<OperatorMetrics> {
        self.operators
            .iter()
            .map(|(meta, tasks)| {
                let sum = |f: fn(&TaskCounters) -> &AtomicU64| {
                    tasks.iter().map(|t| f(t).load(Ordering::Relaxed)).sum()
                };
                OperatorMetrics {
                    records_in: sum(|t| &t.records_in),
                    records_out: sum(|t| &t.records_out),
                    cpu_time: Duration::from_nanos(sum(|t| &t.cpu_nanos)),
                    ..meta.clone()
                }
            })
            .collect()
    }

    /// The current counts of the operator named `name`, if there is one.
    pub fn operator(&self, name: &str) -> Option<OperatorMetrics> {
        self.snapshot().into_iter().find(|m| m.name == name)
    }
}
