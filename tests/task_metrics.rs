//! What the per-task metrics measure: time blocked on a full channel is the sender's
//! backpressure, time waiting for input is idle time, and every task's thread reports CPU
//! time. The waits are driven by the test (a sink that takes a batch only when the test says
//! so) or by a rate limit that makes the tasks wait whatever the machine's speed.

mod common;

use common::{bounded, TIMEOUT};
use crossbeam_channel::{Receiver, Sender};
use snapflow::engine::{Sink, SinkWriter};
use snapflow::prelude::*;
use std::time::{Duration, Instant};

/// A sink that holds each batch until the test sends a token (or hangs up), and says when it
/// has a batch in hand.
struct TokenSink {
    tokens: Receiver<()>,
    holding: Sender<usize>,
}

struct TokenWriter {
    tokens: Receiver<()>,
    holding: Sender<usize>,
}

impl Sink<u64> for TokenSink {
    fn create_writer(&self, _: &TaskInfo) -> Result<Box<dyn SinkWriter<u64>>, BoxError> {
        Ok(Box::new(TokenWriter {
            tokens: self.tokens.clone(),
            holding: self.holding.clone(),
        }))
    }
}

impl SinkWriter<u64> for TokenWriter {
    fn write_batch(&mut self, batch: Vec<u64>) -> Result<(), BoxError> {
        let _ = self.holding.send(batch.len());
        // A closed token channel lets everything through: the test is done.
        let _ = self.tokens.recv();
        Ok(())
    }
}

/// Polls `read` until it exceeds `than`; the bound only marks a failure.
fn until_above(what: &str, than: Duration, read: impl Fn() -> Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = read();
        if now > than {
            return now;
        }
        assert!(started.elapsed() < TIMEOUT, "{what} stayed at {now:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_sender_blocked_on_a_full_channel_counts_backpressure_while_it_is_blocked() {
    let (tokens_tx, tokens) = crossbeam_channel::bounded::<()>(0);
    let (holding, holding_rx) = crossbeam_channel::unbounded();
    let job = Job::new("backpressure");
    job.source(GeneratorSource::new(100_000, |i| i))
        .name("numbers")
        .sink(TokenSink { tokens, holding })
        // A channel between the two, as chaining would call the sink directly.
        .disable_chaining();
    let config = JobConfig::default()
        .with_batch_size(10)
        .with_channel_capacity(1);
    let handle = job.launch(&config).expect("launch");
    let metrics = handle.metrics();
    let backpressure = || metrics.operator("numbers").expect("numbers").backpressure;
    // The sink holds its first batch and takes no other: the one-batch channel fills and the
    // source blocks for good. Its backpressure shows, and grows, while it is blocked.
    holding_rx
        .recv_timeout(TIMEOUT)
        .expect("the sink has a batch");
    let first = until_above("backpressure", Duration::ZERO, backpressure);
    until_above("backpressure while blocked", first, backpressure);
    let sink_idle = report_idle(&metrics, 1);
    drop(tokens_tx);
    let report = bounded("join", move || handle.join()).expect("the job finishes");
    let numbers = report.operator("numbers").expect("numbers");
    assert!(numbers.backpressure > first);
    assert_eq!(
        numbers.tasks[0].backpressure, numbers.backpressure,
        "one task: its operator's sum is its own"
    );
    let sink = &report.operators[1];
    assert_eq!(sink.backpressure, Duration::ZERO, "a sink sends nothing");
    assert!(sink.idle >= sink_idle, "reads never go back");
    assert_eq!(sink.records_in, 100_000);
    assert_eq!(sink.batches_in, 10_000, "10-record batches");
}

fn report_idle(metrics: &snapflow::engine::JobMetrics, operator: usize) -> Duration {
    metrics.snapshot()[operator].idle
}

#[test]
fn rate_limited_tasks_count_idle_time_and_every_thread_cpu_time() {
    let job = Job::new("idle");
    job.source(GeneratorSource::new(2_000, |i| i))
        .name("numbers")
        .map(|i: u64| i + 1)
        .name("plus-one")
        .sink(CollectSink::new());
    // 2000 records at 4000/s: the source waits for its turns, the others for records. Each
    // operator on a thread of its own, so that each waits for input itself.
    let config = JobConfig::default()
        .with_max_rate(Some(4_000))
        .with_chaining(false);
    let handle = job.launch(&config).expect("launch");
    let report = bounded("join", move || handle.join()).expect("the job finishes");
    for op in &report.operators {
        assert!(
            op.idle > Duration::ZERO,
            "{} was never idle: {op:?}",
            op.name
        );
        assert!(
            op.cpu_time > Duration::ZERO,
            "{} used no CPU: {op:?}",
            op.name
        );
        assert_eq!(op.records_in, 2_000, "{op:?}");
    }
}

#[test]
fn chained_operators_report_their_own_records_and_a_share_of_the_cpu_time() {
    let job = Job::new("chained");
    job.source(GeneratorSource::new(200_000, |i| i))
        .name("numbers")
        .map(|i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .name("mix")
        .filter(|i: &u64| i.is_multiple_of(2))
        .name("even")
        .sink(CollectSink::new());
    // One thread runs all four (the default: chaining on, forward edges, parallelism 1).
    let config = JobConfig::default().with_batch_size(64);
    let handle = job.launch(&config).expect("launch");
    let report = bounded("join", move || handle.join()).expect("the job finishes");
    let even = report.operator("even").expect("even").records_out;
    assert!(even > 0 && even < 200_000, "{even}");
    // The thread's time is split between them: the sink's share is its own timed calls.
    let sink = &report.operators[3];
    assert!(sink.cpu_time > Duration::ZERO, "{sink:?}");
    let total: Duration = report.operators.iter().map(|op| op.cpu_time).sum();
    assert!(total > sink.cpu_time, "{:?}", report.operators);
    assert_eq!(report.operator("mix").expect("mix").records_in, 200_000);
    assert_eq!(report.operator("even").expect("even").records_in, 200_000);
    assert_eq!(report.operators[3].records_in, even);
}
