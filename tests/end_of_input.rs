//! End of input is the final checkpoint's barrier: what operators emit when they close is
//! still published, and the job ends once that checkpoint is committed.

mod common;

use common::bounded;
use snapflow::engine::{CheckpointEvent, OperatorLifecycle, UnaryOperator};
use snapflow::prelude::*;
use std::path::Path;
use std::time::Duration;

/// Passes records on and emits their sum when it closes, like a window flushed at the end.
struct SumOnClose {
    sum: u64,
}

impl UnaryOperator<u64, u64> for SumOnClose {
    fn process_batch(&mut self, batch: Vec<u64>, out: &mut Output<u64>) -> Result<(), BoxError> {
        for x in batch {
            self.sum += x;
            out.push(x);
        }
        Ok(())
    }
}

impl OperatorLifecycle<u64> for SumOnClose {
    fn close(&mut self, out: &mut Output<u64>) -> Result<(), BoxError> {
        out.push(1_000_000 + self.sum);
        Ok(())
    }
}

fn published_numbers(dir: &Path) -> Vec<u64> {
    let mut numbers = Vec::new();
    for chk in std::fs::read_dir(dir).unwrap() {
        let chk = chk.unwrap();
        if chk.file_name().to_string_lossy().starts_with('_') {
            continue;
        }
        for part in std::fs::read_dir(chk.path()).unwrap() {
            let text = std::fs::read_to_string(part.unwrap().path()).unwrap();
            numbers.extend(text.lines().map(|l| l.parse::<u64>().unwrap()));
        }
    }
    numbers.sort_unstable();
    numbers
}

#[test]
fn output_emitted_on_close_is_published() {
    for checkpoints in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let chk = dir.path().join("chk");
        let out_for_job = out.clone();
        let report = bounded("job emitting on close", move || {
            let job = Job::new("sum-on-close");
            job.source(GeneratorSource::new(1000, |i| i))
                .unary("sum", |_| SumOnClose { sum: 0 })
                .sink(FileSink::new(&out_for_job));
            let mut config = JobConfig::default().with_parallelism(2);
            if checkpoints {
                config = config.with_checkpointing(&chk, Duration::from_millis(5));
            }
            job.run(&config)
        })
        .expect("job succeeds");
        assert!(report.checkpoints.last().is_some_and(|c| c.is_final));

        // Each of the two tasks emits its own sum on close, after its share of 0..1000.
        let mut expected: Vec<u64> = (0..1000).collect();
        expected.push(1_000_000 + (0..500).sum::<u64>());
        expected.push(1_000_000 + (500..1000).sum::<u64>());
        expected.sort_unstable();
        assert_eq!(
            published_numbers(&out),
            expected,
            "checkpoints: {checkpoints}"
        );
    }
}

#[test]
fn a_listener_that_is_never_read_does_not_block_the_job() {
    let (events, _unread) = crossbeam_channel::bounded::<CheckpointEvent>(0);
    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().to_path_buf();
    let report = bounded("job with a full listener", move || {
        let job = Job::new("deaf-listener");
        job.source(GeneratorSource::new(100_000, |i| i))
            .sink(DiscardSink::new());
        let config = JobConfig::default()
            .with_checkpointing(&chk, Duration::from_millis(1))
            .with_checkpoint_listener(events);
        job.run(&config)
    })
    .expect("job succeeds");
    assert!(report.checkpoints.last().is_some_and(|c| c.is_final));
}
