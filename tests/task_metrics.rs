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

/// A sink that takes each batch only once the test sends a token, and says when it has one.
struct TokenSink {
    tokens: Receiver<()>,
    took: Sender<usize>,
}

struct TokenWriter {
    tokens: Receiver<()>,
    took: Sender<usize>,
}

impl Sink<u64> for TokenSink {
    fn create_writer(&self, _: &TaskInfo) -> Result<Box<dyn SinkWriter<u64>>, BoxError> {
        Ok(Box::new(TokenWriter {
            tokens: self.tokens.clone(),
            took: self.took.clone(),
        }))
    }
}

impl SinkWriter<u64> for TokenWriter {
    fn write_batch(&mut self, batch: Vec<u64>) -> Result<(), BoxError> {
        // A closed token channel lets everything through: the test is done.
        let _ = self.tokens.recv();
        let _ = self.took.send(batch.len());
        Ok(())
    }
}

#[test]
fn a_sender_blocked_on_a_full_channel_counts_backpressure() {
    let (tokens_tx, tokens) = crossbeam_channel::bounded(0);
    let (took, took_rx) = crossbeam_channel::unbounded();
    let job = Job::new("backpressure");
    job.source(GeneratorSource::new(100_000, |i| i))
        .name("numbers")
        .sink(TokenSink { tokens, took });
    let config = JobConfig::default()
        .with_batch_size(10)
        .with_channel_capacity(1);
    let handle = job.launch(&config).expect("launch");
    let metrics = handle.metrics();
    let backpressure = || metrics.operator("numbers").expect("numbers").backpressure;
    // The sink holds each batch until it gets a token, so the one-batch channel fills and
    // the source blocks; each token frees it once. Hand out tokens until a block is counted
    // (the source is far faster than this loop, so that is at once; the bound is a failure).
    let started = Instant::now();
    while backpressure() == Duration::ZERO {
        assert!(started.elapsed() < TIMEOUT, "no backpressure counted");
        tokens_tx.send(()).expect("the sink takes a token");
        took_rx
            .recv_timeout(TIMEOUT)
            .expect("the sink took a batch");
    }
    drop(tokens_tx);
    let report = bounded("join", move || handle.join()).expect("the job finishes");
    let numbers = report.operator("numbers").expect("numbers");
    assert!(numbers.backpressure > Duration::ZERO);
    assert_eq!(
        numbers.tasks[0].backpressure, numbers.backpressure,
        "one task: its operator's sum is its own"
    );
    let sink = &report.operators[1];
    assert_eq!(sink.backpressure, Duration::ZERO, "a sink sends nothing");
    assert_eq!(sink.records_in, 100_000);
    assert_eq!(sink.batches_in, 10_000, "10-record batches");
}

#[test]
fn rate_limited_tasks_count_idle_time_and_every_thread_cpu_time() {
    let job = Job::new("idle");
    job.source(GeneratorSource::new(2_000, |i| i))
        .name("numbers")
        .map(|i: u64| i + 1)
        .name("plus-one")
        .sink(CollectSink::new());
    // 2000 records at 4000/s: the source waits for its turns, the others for records.
    let config = JobConfig::default().with_max_rate(Some(4_000));
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
