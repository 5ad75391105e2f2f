//! Per-task counters, updated by the task's own thread once per batch (never per record) and
//! readable from any thread while the job runs: by the end-of-job report, the web view and
//! the Prometheus endpoint.

use crate::contract::stats::{CheckpointStats, StatsLog};
use crate::message::Timestamp;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The CPU time of a task's thread is sampled once every this many input batches (and
/// whenever the task is about to wait for input): the clock is a system call, too costly
/// for every small batch, and a second-by-second view needs no more.
const CPU_SAMPLE_EVERY: u64 = 64;

/// A chained operator's batch calls are timed once every this many (two clock reads around
/// the call): more often than [`CPU_SAMPLE_EVERY`], since its CPU time is an estimate from
/// these samples alone, and the reads cost well under 1% of even a small batch's work.
const CHAINED_CPU_SAMPLE_EVERY: u64 = 8;

/// Counters of one task. Relaxed atomics: they are statistics, not synchronization, and only
/// the task's own thread writes them.
#[derive(Debug, Default)]
pub(crate) struct TaskCounters {
    records_in: AtomicU64,
    records_out: AtomicU64,
    batches_in: AtomicU64,
    /// Time blocked sending into a full output channel.
    backpressure: WaitTime,
    /// Time waiting for input (or, in a rate-limited source, for its next turn).
    idle: WaitTime,
    /// CPU time of the task's thread, in nanoseconds, as last sampled; for a task chained to
    /// another, the estimate of its batch calls, which include the calls of the tasks
    /// chained after it.
    cpu_nanos: AtomicU64,
    /// The tasks chained directly after this one (empty when it is unchained): their CPU
    /// time is part of this task's measure, and is taken out of it when read.
    chained: OnceLock<Vec<Arc<TaskCounters>>>,
    /// The task's current combined input watermark, valid once `has_watermark` is set.
    watermark: AtomicU64,
    has_watermark: AtomicBool,
}

impl TaskCounters {
    /// Counts one input batch of `n` records (a source's: one batch read).
    #[inline]
    pub(crate) fn batch_in(&self, n: u64) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
        let batches = self.batches_in.fetch_add(1, Ordering::Relaxed);
        if batches.is_multiple_of(CPU_SAMPLE_EVERY) {
            self.record_thread_cpu_time();
        }
    }

    /// Counts one input batch of an operator chained to another (which shares its thread);
    /// returns whether to sample this batch call's CPU time, once every
    /// [`CHAINED_CPU_SAMPLE_EVERY`] (not the first call, whose cold caches would be weighted
    /// as many calls).
    #[inline]
    pub(crate) fn chained_batch_in(&self, n: u64) -> bool {
        self.records_in.fetch_add(n, Ordering::Relaxed);
        let batches = self.batches_in.fetch_add(1, Ordering::Relaxed);
        (batches + 1).is_multiple_of(CHAINED_CPU_SAMPLE_EVERY)
    }

    /// Adds the CPU time of one sampled batch call of a chained operator, weighted by the
    /// batches it stands for: the operator's CPU time is estimated from its samples.
    pub(crate) fn add_sampled_cpu_time(&self, sample: Duration) {
        let estimate = nanos(sample).saturating_mul(CHAINED_CPU_SAMPLE_EVERY);
        self.cpu_nanos.fetch_add(estimate, Ordering::Relaxed);
    }

    pub(crate) fn add_out(&self, n: u64) {
        self.records_out.fetch_add(n, Ordering::Relaxed);
    }

    /// The task is about to block on a full output channel.
    pub(crate) fn begin_backpressure(&self) -> Instant {
        self.backpressure.begin()
    }

    /// The block that began at `began` is over.
    pub(crate) fn end_backpressure(&self, began: Instant) {
        self.backpressure.end(began);
    }

    /// Counts a wait of known length as idle time (a rate-limited source's sleep).
    pub(crate) fn add_idle(&self, waited: Duration) {
        self.idle.add(waited);
    }

    /// Records the task's combined input watermark as it advances.
    pub(crate) fn set_watermark(&self, watermark: Timestamp) {
        self.watermark.store(watermark.0, Ordering::Relaxed);
        self.has_watermark.store(true, Ordering::Relaxed);
    }

    pub(crate) fn records_in(&self) -> u64 {
        self.records_in.load(Ordering::Relaxed)
    }

    /// Records the CPU time the calling thread has used; called by the task's own thread (per
    /// [`CPU_SAMPLE_EVERY`] batches, before it waits, and as it ends). Does nothing where the
    /// kernel does not tell (see [`thread_cpu_time`]).
    pub(crate) fn record_thread_cpu_time(&self) {
        if let Some(cpu) = thread_cpu_time() {
            self.cpu_nanos.store(nanos(cpu), Ordering::Relaxed);
        }
    }

    /// Sets the tasks chained directly after this one (once, at launch).
    pub(crate) fn set_chained(&self, chained: Vec<Arc<TaskCounters>>) {
        let _ = self.chained.set(chained);
    }

    /// This task's CPU time alone: its measure less that of the tasks chained after it.
    fn own_cpu_nanos(&self) -> u64 {
        let measured = self.cpu_nanos.load(Ordering::Relaxed);
        let chained: u64 = self.chained.get().map_or(0, |c| {
            c.iter().map(|t| t.cpu_nanos.load(Ordering::Relaxed)).sum()
        });
        measured.saturating_sub(chained)
    }

    fn read(&self, index: usize) -> TaskMetrics {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TaskMetrics {
            index,
            records_in: load(&self.records_in),
            records_out: load(&self.records_out),
            batches_in: load(&self.batches_in),
            backpressure: self.backpressure.read(),
            idle: self.idle.read(),
            cpu_time: Duration::from_nanos(self.own_cpu_nanos()),
            watermark: self
                .has_watermark
                .load(Ordering::Relaxed)
                .then(|| Timestamp(load(&self.watermark))),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds since a process-wide origin, plus one (so that 0 can mean "none").
fn stamp(t: Instant) -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    nanos(t.saturating_duration_since(origin)) + 1
}

/// Time a task spent in one kind of wait, including a wait still going on, so that a task
/// blocked for minutes shows as blocked while it is, not only once it is released.
///
/// Only the task's thread writes, and only around a wait that may block (never per record).
/// Readers see a total that never goes backwards: a read in the instant between the task
/// ending a wait and adding it to the total could miss part of it, so each read is at least
/// the largest one before it (`reported`); the total then catches up, since it adds the
/// whole wait. A wait can never be counted twice: the task clears `since` before it adds to
/// `total`, and a reader loads `total` before `since` (acquire/release), so a reader that
/// sees the addition also sees the wait ended.
#[derive(Debug, Default)]
struct WaitTime {
    /// Finished waits, in nanoseconds.
    total: AtomicU64,
    /// When the wait going on began ([`stamp`]), or 0.
    since: AtomicU64,
    /// The largest value read so far.
    reported: AtomicU64,
}

impl WaitTime {
    fn begin(&self) -> Instant {
        let now = Instant::now();
        self.since.store(stamp(now), Ordering::Release);
        now
    }

    fn end(&self, began: Instant) {
        let waited = began.elapsed();
        self.since.store(0, Ordering::Release);
        self.total.fetch_add(nanos(waited), Ordering::Release);
    }

    fn add(&self, waited: Duration) {
        self.total.fetch_add(nanos(waited), Ordering::Release);
    }

    fn read(&self) -> Duration {
        let total = self.total.load(Ordering::Acquire);
        let since = self.since.load(Ordering::Acquire);
        let ongoing = match since {
            0 => 0,
            since => stamp(Instant::now()).saturating_sub(since),
        };
        let value = total.saturating_add(ongoing);
        let before = self.reported.fetch_max(value, Ordering::Relaxed);
        Duration::from_nanos(value.max(before))
    }
}

/// Measures how long a task waits for input: started just before the gate blocks, stopped
/// when the gate hands out the next event.
pub(crate) struct WaitClock(Option<Instant>);

impl WaitClock {
    pub(crate) fn new() -> Self {
        WaitClock(None)
    }

    /// The task is about to wait for input.
    pub(crate) fn start(&mut self, counters: &TaskCounters) {
        if self.0.is_none() {
            self.0 = Some(counters.idle.begin());
        }
    }

    /// The wait, if one was started, is over: count it as idle time.
    pub(crate) fn stop_idle(&mut self, counters: &TaskCounters) {
        if let Some(began) = self.0.take() {
            counters.idle.end(began);
        }
    }
}

/// The CPU time the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`). `None` where
/// the clock fails.
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through a valid, exclusive pointer to a
    // local; the clock id is a constant the kernel knows.
    #[allow(unsafe_code, reason = "clock_gettime is a libc call; SAFETY above")]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let subsec = u32::try_from(ts.tv_nsec).ok()?;
    Some(Duration::new(secs, subsec))
}

/// What one task has done so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskMetrics {
    /// The task's index within its operator.
    pub index: usize,
    /// Records the task received (a source: records it read).
    pub records_in: u64,
    /// Records the task sent downstream (once per consuming edge and, for broadcast edges,
    /// once per receiving task).
    pub records_out: u64,
    /// Input batches the task handled (a source: batches it read).
    pub batches_in: u64,
    /// Time the task was blocked sending into a full channel: backpressure from downstream.
    pub backpressure: Duration,
    /// Time the task waited for input (a rate-limited source: for its next turn).
    pub idle: Duration,
    /// CPU time of the task's thread, sampled every few batches and when the task ends; zero
    /// where the clock is unavailable. For a chain of tasks on one thread, the thread's time
    /// is split: a chained task's own share is estimated from every 8th of its batch calls
    /// (timed, less the estimate of the tasks chained after it), and the chain's head gets
    /// the rest.
    pub cpu_time: Duration,
    /// The task's current combined input watermark, once one arrived.
    pub watermark: Option<Timestamp>,
}

/// What one operator has done so far, summed over its tasks.
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
    /// Input batches its tasks handled.
    pub batches_in: u64,
    /// Time its tasks were blocked on full output channels, summed.
    pub backpressure: Duration,
    /// Time its tasks waited for input, summed.
    pub idle: Duration,
    /// CPU time its tasks' threads used, summed (sampled while they run, exact once they
    /// ended; zero where the clock is unavailable). Divided by the records, it says what an
    /// operator costs.
    pub cpu_time: Duration,
    /// The operator's watermark: the lowest of its tasks', once every task has one.
    pub watermark: Option<Timestamp>,
    /// Each task's own metrics, by index.
    pub tasks: Vec<TaskMetrics>,
}

/// An operator as the metrics describe it, before any count.
#[derive(Clone, Debug)]
pub(crate) struct OperatorInfo {
    pub name: String,
    pub uid: String,
    pub parallelism: usize,
}

/// Live counters of a running job; cheap to clone and to read from another thread.
#[derive(Clone, Debug)]
pub struct JobMetrics {
    pub(crate) operators: Arc<Vec<(OperatorInfo, Vec<Arc<TaskCounters>>)>>,
    pub(crate) checkpoints: StatsLog,
}

impl JobMetrics {
    /// The current counts of every operator, in graph order.
    pub fn snapshot(&self) -> Vec<OperatorMetrics> {
        self.operators
            .iter()
            .map(|(info, counters)| {
                let tasks: Vec<TaskMetrics> = counters
                    .iter()
                    .enumerate()
                    .map(|(i, c)| c.read(i))
                    .collect();
                summed(info, tasks)
            })
            .collect()
    }

    /// The current counts of the operator named `name`, if there is one.
    pub fn operator(&self, name: &str) -> Option<OperatorMetrics> {
        self.snapshot().into_iter().find(|m| m.name == name)
    }

    /// The newest completed checkpoint of this attempt, if any.
    pub fn last_checkpoint(&self) -> Option<CheckpointStats> {
        self.checkpoints.last()
    }

    /// How many checkpoints completed and how many were aborted so far.
    pub fn checkpoint_counts(&self) -> (u64, u64) {
        (
            self.checkpoints.completed_count(),
            self.checkpoints.aborted_count(),
        )
    }
}

/// An operator's metrics from its tasks'.
fn summed(info: &OperatorInfo, tasks: Vec<TaskMetrics>) -> OperatorMetrics {
    let watermark = tasks
        .iter()
        .map(|t| t.watermark)
        .collect::<Option<Vec<_>>>()
        .and_then(|w| w.into_iter().min());
    OperatorMetrics {
        name: info.name.clone(),
        uid: info.uid.clone(),
        parallelism: info.parallelism,
        records_in: tasks.iter().map(|t| t.records_in).sum(),
        records_out: tasks.iter().map(|t| t.records_out).sum(),
        batches_in: tasks.iter().map(|t| t.batches_in).sum(),
        backpressure: tasks.iter().map(|t| t.backpressure).sum(),
        idle: tasks.iter().map(|t| t.idle).sum(),
        cpu_time: tasks.iter().map(|t| t.cpu_time).sum(),
        watermark,
        tasks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> OperatorInfo {
        OperatorInfo {
            name: "count".into(),
            uid: "1-count".into(),
            parallelism: 2,
        }
    }

    #[test]
    fn operator_metrics_sum_their_tasks() {
        let (a, b) = (TaskCounters::default(), TaskCounters::default());
        a.batch_in(10);
        a.batch_in(5);
        b.batch_in(7);
        a.add_out(3);
        b.add_out(4);
        a.backpressure.add(Duration::from_millis(2));
        b.backpressure.add(Duration::from_millis(3));
        b.add_idle(Duration::from_millis(9));
        let m = summed(&info(), vec![a.read(0), b.read(1)]);
        assert_eq!((m.records_in, m.records_out, m.batches_in), (22, 7, 3));
        assert_eq!(m.backpressure, Duration::from_millis(5));
        assert_eq!(m.idle, Duration::from_millis(9));
        assert_eq!(m.tasks[1].records_in, 7);
        assert_eq!(m.tasks[1].index, 1);
    }

    #[test]
    fn an_operators_watermark_is_its_slowest_tasks_once_all_have_one() {
        let (a, b) = (TaskCounters::default(), TaskCounters::default());
        a.set_watermark(Timestamp(50));
        assert_eq!(summed(&info(), vec![a.read(0), b.read(1)]).watermark, None);
        b.set_watermark(Timestamp(20));
        assert_eq!(
            summed(&info(), vec![a.read(0), b.read(1)]).watermark,
            Some(Timestamp(20))
        );
    }

    #[test]
    fn a_chain_splits_its_threads_cpu_time_among_its_operators() {
        let head = TaskCounters::default();
        let (member, last) = (
            Arc::new(TaskCounters::default()),
            Arc::new(TaskCounters::default()),
        );
        head.cpu_nanos.store(10_000, Ordering::Relaxed); // the thread's time
        member.add_sampled_cpu_time(Duration::from_nanos(800)); // 6400, with `last`'s
        last.add_sampled_cpu_time(Duration::from_nanos(200)); // 1600
        head.set_chained(vec![member.clone()]);
        member.set_chained(vec![last.clone()]);
        let own = |c: &TaskCounters| c.read(0).cpu_time.as_nanos();
        assert_eq!((own(&head), own(&member), own(&last)), (3600, 4800, 1600));
        // An estimate above the measure it is taken from counts as nothing, never negative.
        last.add_sampled_cpu_time(Duration::from_nanos(800));
        assert_eq!(own(&member), 0);
    }

    #[test]
    fn a_chained_operator_times_one_batch_call_in_8_but_not_the_first() {
        let counters = TaskCounters::default();
        let sampled: Vec<u64> = (1..=30).filter(|_| counters.chained_batch_in(10)).collect();
        assert_eq!(sampled, [8, 16, 24]);
        assert_eq!(counters.records_in(), 300);
    }

    #[test]
    fn the_first_batch_samples_the_threads_cpu_time() {
        let counters = TaskCounters::default();
        // Burn a little CPU so that the clock cannot read zero.
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        counters.batch_in(1);
        assert!(counters.read(0).cpu_time > Duration::ZERO);
    }

    #[test]
    fn a_wait_clock_counts_only_started_waits() {
        let counters = TaskCounters::default();
        let mut clock = WaitClock::new();
        clock.stop_idle(&counters);
        assert_eq!(counters.read(0).idle, Duration::ZERO);
        clock.start(&counters);
        std::thread::yield_now();
        clock.stop_idle(&counters);
        let first = counters.read(0).idle;
        assert!(first > Duration::ZERO);
        clock.stop_idle(&counters);
        assert_eq!(counters.read(0).idle, first, "a wait is counted once");
    }

    #[test]
    fn a_wait_going_on_is_counted_while_it_lasts_and_reads_never_go_back() {
        let wait = WaitTime::default();
        wait.add(Duration::from_millis(5));
        assert_eq!(wait.read(), Duration::from_millis(5));
        let began = wait.begin();
        // The clock moves on (a spin, not a sleep: nothing is awaited).
        while began.elapsed() < Duration::from_micros(50) {
            std::hint::spin_loop();
        }
        let during = wait.read();
        assert!(
            during >= Duration::from_millis(5) + Duration::from_micros(50),
            "{during:?}"
        );
        assert!(wait.read() >= during, "reads never go back");
        wait.end(began);
        let after = wait.read();
        assert!(after >= during, "{after:?} < {during:?}");
        assert_eq!(wait.since.load(Ordering::Relaxed), 0, "no wait going on");
        assert_eq!(wait.read(), after, "a finished wait stops growing");
    }
}
