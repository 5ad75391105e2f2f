//! A task that fails or panics stops the whole job, and `run` names it; cancelling stops a job.
//!
//! Panicking tests print the panic to stderr through the default hook; that is expected.

mod common;

use common::{bounded, TIMEOUT};
use snapflow::checkpoint::{key_group_of_hash, key_hash, task_for_key_group};
use snapflow::engine::{
    JobReport, OperatorLifecycle, ReadStatus, Sink, SinkWriter, Source, SourceReader, TaskError,
    UnaryOperator,
};
use snapflow::prelude::*;

/// Enough records that the job is still running when the failure happens.
const RECORDS: u64 = 1_000_000;

fn expect_task_failed(result: Result<JobReport, JobError>) -> (String, usize, usize, TaskError) {
    match result {
        Err(JobError::TaskFailed {
            operator,
            index,
            parallelism,
            source,
            ..
        }) => (operator, index, parallelism, source),
        other => panic!("expected a task failure, got {other:?}"),
    }
}

#[test]
fn panicking_map_fails_the_job_naming_the_operator() {
    let result = bounded("job with a panicking map", || {
        let job = Job::new("explode");
        job.source(GeneratorSource::new(RECORDS, |i| i))
            .map(|i: u64| {
                if i == 777_777 {
                    panic!("cannot handle record {i}");
                }
                i
            })
            .name("exploder")
            .sink(DiscardSink::new());
        job.run(&JobConfig::default().with_parallelism(2))
    });
    let (operator, index, parallelism, error) = expect_task_failed(result);
    assert_eq!(operator, "exploder");
    // Record 777_777 is in the second half of the generator, read by source task 1, which
    // forwards to map task 1.
    assert_eq!((index, parallelism), (1, 2));
    match error {
        TaskError::Panicked(message) => assert_eq!(message, "cannot handle record 777777"),
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[test]
fn process_returning_an_error_fails_the_job() {
    const BAD: u64 = 654_321;
    let result = bounded("job with a failing process", || {
        let job = Job::new("validate");
        job.source(GeneratorSource::new(RECORDS, |i| i))
            .key_by(|i: &u64| i % 1000)
            .process(
                |_: &u64, i: u64, seen: &mut ValueState<u64>, out: &mut Output<u64>| {
                    if i == BAD {
                        return Err(format!("record {i} is invalid").into());
                    }
                    seen.set(seen.get().copied().unwrap_or(0) + 1);
                    out.push(i);
                    Ok(())
                },
            )
            .name("validator")
            .sink(DiscardSink::new());
        job.run(&JobConfig::default().with_parallelism(2))
    });
    let (operator, index, parallelism, error) = expect_task_failed(result);
    assert_eq!(operator, "validator");
    let owner = task_for_key_group(key_group_of_hash(key_hash(&(BAD % 1000)), 128), 2, 128);
    assert_eq!((index, parallelism), (owner as usize, 2));
    match error {
        TaskError::Failed(e) => assert_eq!(e.to_string(), "record 654321 is invalid"),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A sink that panics when it is handed `bad`.
struct FragileSink {
    bad: u64,
}

struct FragileWriter {
    bad: u64,
}

impl Sink<u64> for FragileSink {
    fn name(&self) -> String {
        "fragile".to_owned()
    }

    fn create_writer(&self, _: &TaskInfo) -> Result<Box<dyn SinkWriter<u64>>, BoxError> {
        Ok(Box::new(FragileWriter { bad: self.bad }))
    }
}

impl SinkWriter<u64> for FragileWriter {
    fn write_batch(&mut self, batch: Vec<u64>) -> Result<(), BoxError> {
        if batch.contains(&self.bad) {
            panic!("sink cannot store {}", self.bad);
        }
        Ok(())
    }
}

#[test]
fn panicking_sink_fails_the_job() {
    let result = bounded("job with a panicking sink", || {
        let job = Job::new("fragile");
        job.source(GeneratorSource::new(RECORDS, |i| i))
            .map(|i: u64| i + 1)
            .sink(FragileSink { bad: 123_456 });
        job.run(&JobConfig::default().with_parallelism(2))
    });
    let (operator, index, _, error) = expect_task_failed(result);
    assert_eq!((operator.as_str(), index), ("fragile", 0));
    match error {
        TaskError::Panicked(message) => assert_eq!(message, "sink cannot store 123456"),
        other => panic!("expected a panic, got {other:?}"),
    }
}

/// Task 0 reads practically forever; task 1 fails after `good` records.
struct FlakySource {
    good: u64,
}

struct FlakyReader {
    next: u64,
    fail_at: Option<u64>,
}

impl Source for FlakySource {
    type Out = u64;

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<u64>>, BoxError> {
        Ok(Box::new(FlakyReader {
            next: 0,
            fail_at: (task.index == 1).then_some(self.good),
        }))
    }
}

impl SourceReader<u64> for FlakyReader {
    fn read_batch(&mut self, batch: &mut Vec<u64>, max: usize) -> Result<ReadStatus, BoxError> {
        if self.fail_at.is_some_and(|at| self.next >= at) {
            return Err("disk on fire".into());
        }
        let end = self.next + max as u64;
        batch.extend(self.next..end);
        self.next = end;
        Ok(ReadStatus::More)
    }
}

#[test]
fn source_read_error_fails_the_job_and_stops_the_other_sources() {
    let result = bounded("job with a failing source", || {
        let job = Job::new("flaky");
        job.source(FlakySource { good: 10_000 })
            .name("flaky")
            .map(|i: u64| i * 2)
            .sink(DiscardSink::new());
        job.run(&JobConfig::default().with_parallelism(2))
    });
    let (operator, index, parallelism, error) = expect_task_failed(result);
    assert_eq!((operator.as_str(), index, parallelism), ("flaky", 1, 2));
    match error {
        TaskError::Failed(e) => assert_eq!(e.to_string(), "disk on fire"),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Fails (without panicking) on one record.
struct Checker {
    bad: u64,
}

impl UnaryOperator<u64, u64> for Checker {
    fn process_batch(&mut self, batch: Vec<u64>, out: &mut Output<u64>) -> Result<(), BoxError> {
        for i in batch {
            if i == self.bad {
                return Err(format!("check failed on {i}").into());
            }
            out.push(i);
        }
        Ok(())
    }
}

impl OperatorLifecycle<u64> for Checker {}

#[test]
fn failure_in_one_branch_of_a_fan_out_stops_the_other_branch() {
    let result = bounded("fan-out job with a failing branch", || {
        let job = Job::new("fan-out");
        // Practically endless: the job can only end because the failure stops everything.
        let numbers = job.source(GeneratorSource::new(u64::MAX, |i| i));
        numbers
            .clone()
            .map(|i: u64| i.wrapping_mul(3))
            .name("healthy")
            .parallelism(3)
            .sink(DiscardSink::new())
            .name("healthy-sink");
        numbers
            .unary("checker", |_| Checker { bad: 50_000 })
            .sink(DiscardSink::new())
            .name("checked-sink");
        job.run(&JobConfig::default().with_parallelism(2))
    });
    let (operator, index, _, error) = expect_task_failed(result);
    assert_eq!((operator.as_str(), index), ("checker", 0));
    match error {
        TaskError::Failed(e) => assert_eq!(e.to_string(), "check failed on 50000"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn failing_sink_in_one_branch_stops_a_longer_branch() {
    let result = bounded("fan-out job with a failing sink", || {
        let job = Job::new("fan-out-sink");
        let numbers = job.source(GeneratorSource::new(u64::MAX, |i| i));
        numbers
            .clone()
            .map(|i: u64| i + 1)
            .filter(|i| i % 2 == 0)
            .key_by(|i: &u64| i % 17)
            .reduce(|a, b| a.max(b))
            .sink(DiscardSink::new());
        numbers.sink(FragileSink { bad: 4_321 });
        job.run(&JobConfig::default().with_parallelism(2))
    });
    let (operator, _, _, error) = expect_task_failed(result);
    assert_eq!(operator, "fragile");
    assert!(
        matches!(error, TaskError::Panicked(ref m) if m == "sink cannot store 4321"),
        "{error:?}"
    );
}

/// Fails in `open`, before any record.
struct CannotOpen;

impl UnaryOperator<u64, u64> for CannotOpen {
    fn process_batch(&mut self, batch: Vec<u64>, out: &mut Output<u64>) -> Result<(), BoxError> {
        out.push_batch(batch);
        Ok(())
    }
}

impl OperatorLifecycle<u64> for CannotOpen {
    fn open(&mut self) -> Result<(), BoxError> {
        Err("no connection".into())
    }
}

#[test]
fn operator_failing_to_open_fails_the_job() {
    let result = bounded("job with an operator that cannot open", || {
        let job = Job::new("open");
        job.source(GeneratorSource::new(u64::MAX, |i| i))
            .unary("lookup", |_| CannotOpen)
            .sink(DiscardSink::new());
        job.run(&JobConfig::default().with_parallelism(2))
    });
    let (operator, _, _, error) = expect_task_failed(result);
    assert_eq!(operator, "lookup");
    assert!(
        matches!(error, TaskError::Failed(ref e) if e.to_string() == "no connection"),
        "{error:?}"
    );
}

/// Signals once, on the first record it sees.
fn signal_first_record(
    tx: crossbeam_channel::Sender<()>,
) -> impl Fn(u64) -> u64 + Send + Sync + 'static {
    move |i| {
        let _ = tx.try_send(());
        i
    }
}

#[test]
fn cancel_stops_an_endless_job() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let job = Job::new("endless");
    job.source(GeneratorSource::new(u64::MAX, |i| i))
        .map(signal_first_record(tx))
        .sink(DiscardSink::new());
    let handle = job
        .launch(&JobConfig::default().with_parallelism(2))
        .unwrap();
    rx.recv_timeout(TIMEOUT).expect("the job processes records");
    handle.cancel();
    let result = bounded("cancelled job", move || handle.join());
    assert!(
        matches!(result, Err(JobError::Cancelled)),
        "expected a cancelled job, got {result:?}"
    );
}

#[test]
fn cancel_right_after_launch_stops_the_job() {
    let job = Job::new("endless");
    let numbers = job.source(GeneratorSource::new(u64::MAX, |i| i));
    numbers.clone().sink(DiscardSink::new());
    numbers
        .key_by(|i: &u64| i % 10)
        .reduce(|a: u64, b| a.wrapping_add(b))
        .sink(DiscardSink::new());
    let handle = job
        .launch(&JobConfig::default().with_parallelism(3))
        .unwrap();
    handle.cancel();
    let result = bounded("cancelled job", move || handle.join());
    assert!(
        matches!(result, Err(JobError::Cancelled)),
        "expected a cancelled job, got {result:?}"
    );
}

#[test]
fn dropping_the_handle_stops_the_job() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let job = Job::new("endless");
    job.source(GeneratorSource::new(u64::MAX, |i| i))
        .map(signal_first_record(tx))
        .sink(DiscardSink::new());
    let handle = job
        .launch(&JobConfig::default().with_parallelism(2))
        .unwrap();
    rx.recv_timeout(TIMEOUT).expect("the job processes records");
    bounded("dropping the handle", move || drop(handle));
}

#[test]
fn cancel_stops_an_operator_that_keeps_emitting() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let job = Job::new("exploding");
    // One input record, practically endless output: only the flat_map task is busy, and the
    // source has already ended.
    job.source(CollectionSource::new(vec![u64::MAX]))
        .flat_map(|n: u64| 0..n)
        .map(signal_first_record(tx))
        .sink(DiscardSink::new());
    let handle = job.launch(&JobConfig::default()).unwrap();
    rx.recv_timeout(TIMEOUT).expect("the job processes records");
    handle.cancel();
    let result = bounded("cancelled job", move || handle.join());
    assert!(
        matches!(result, Err(JobError::Cancelled)),
        "expected a cancelled job, got {result:?}"
    );
}

#[test]
fn failure_stops_an_operator_in_another_branch_that_keeps_emitting() {
    let result = bounded("fan-out job with a busy branch", || {
        let job = Job::new("busy-branch");
        let numbers = job.source(GeneratorSource::new(1000, |i| i));
        // Every record explodes into practically endless output.
        numbers
            .clone()
            .flat_map(|n: u64| n..u64::MAX)
            // On a thread of its own: chained, it would keep the source's thread (and so the
            // checker, chained there too) busy with its first record.
            .disable_chaining()
            .sink(DiscardSink::new());
        numbers
            .unary("checker", |_| Checker { bad: 500 })
            .sink(DiscardSink::new());
        job.run(&JobConfig::default())
    });
    let (operator, _, _, error) = expect_task_failed(result);
    assert_eq!(operator, "checker");
    assert!(
        matches!(error, TaskError::Failed(ref e) if e.to_string() == "check failed on 500"),
        "{error:?}"
    );
}
