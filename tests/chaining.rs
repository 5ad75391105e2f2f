//! Operator chaining end to end: a checkpoint taken with chaining restores into a job without
//! it and the reverse (state is keyed by operator uid and task, never by chain), each checked
//! against the sequential count; a failure inside a chained operator names that operator;
//! watermarks and processing-time timers reach a chained operator in order; and the report
//! still counts every chained operator's records.

mod common;
#[path = "../examples/support/corpus.rs"]
mod corpus;
#[path = "support/killed_wordcount.rs"]
mod fixture;
#[path = "../examples/support/output.rs"]
mod output;
#[path = "../examples/support/rng.rs"]
mod rng;
#[path = "../examples/support/wordcount_job.rs"]
mod wordcount_job;

use common::bounded;
use fixture::{committed_sorted, config, dirs, run, text};
use snapflow::engine::{BoxError, FailureInjector, OperatorLifecycle, Timestamp, UnaryOperator};
use snapflow::operators::time::WatermarkStrategy;
use snapflow::prelude::*;

/// Kills `tokenize` (chained to `read` when chaining is on) after checkpoint 2 with chaining
/// `killed_with`, then resumes with chaining `resumed_with` and checks the output.
fn kill_then_resume(killed_with: bool, resumed_with: bool) {
    let original = text(7);
    let d = dirs(&original);
    let injector = FailureInjector::new().fail_task_after_checkpoint("tokenize", 0, 2);
    let killed = run(
        &d,
        config(&d)
            .with_chaining(killed_with)
            .with_failure_injector(injector.clone()),
    );
    match killed {
        // The failure names the chained operator, not the head of its chain.
        Err(JobError::TaskFailed { operator, .. }) => assert_eq!(operator, "tokenize"),
        other => panic!("expected tokenize to fail, got {other:?}"),
    }
    assert_eq!(
        injector.fired(),
        1,
        "the kill happened before the input ended"
    );

    let report = run(&d, config(&d).with_chaining(resumed_with)).expect("the job resumes");
    assert!(
        report.restored_from.is_some(),
        "it resumed from a checkpoint"
    );
    assert!(
        committed_sorted(&d.out) == wordcount_job::expected_output(&original),
        "the output differs from the sequential count"
    );
}

#[test]
fn a_checkpoint_taken_with_chaining_restores_without_it() {
    kill_then_resume(true, false);
}

#[test]
fn a_checkpoint_taken_without_chaining_restores_with_it() {
    kill_then_resume(false, true);
}

/// Emits `MARK` once when its processing-time timer (due as soon as it opens) fires.
const MARK: u64 = u64::MAX;

/// Checks that no record arrives behind a watermark at or past its timestamp, and holds each
/// record back until a watermark passes it: an event-time timer per record, firing in order.
/// Also registers one processing-time timer, due at once.
#[derive(Default)]
struct HoldUntilWatermark {
    pending: Vec<u64>,
    watermark: Option<u64>,
    timer: Option<u64>,
    fired: bool,
}

impl UnaryOperator<u64, u64> for HoldUntilWatermark {
    fn process_batch(&mut self, batch: Vec<u64>, _out: &mut Output<u64>) -> Result<(), BoxError> {
        for t in batch {
            if self.watermark.is_some_and(|w| t <= w) {
                return Err(
                    format!("record {t} arrived behind watermark {:?}", self.watermark).into(),
                );
            }
            self.pending.push(t);
        }
        Ok(())
    }
}

impl OperatorLifecycle<u64> for HoldUntilWatermark {
    fn open(&mut self) -> Result<(), BoxError> {
        self.timer = Some(0);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        out: &mut Output<u64>,
    ) -> Result<(), BoxError> {
        if self.watermark.is_some_and(|w| watermark.0 < w) {
            return Err("the watermark went back".into());
        }
        self.watermark = Some(watermark.0);
        let (due, later): (Vec<u64>, Vec<u64>) =
            self.pending.drain(..).partition(|&t| t <= watermark.0);
        self.pending = later;
        out.extend(due);
        Ok(())
    }

    fn next_processing_time(&self) -> Option<u64> {
        self.timer
    }

    fn on_processing_time(&mut self, out: &mut Output<u64>) -> Result<(), BoxError> {
        if self.fired {
            return Err("the processing-time timer fired twice".into());
        }
        self.fired = true;
        self.timer = None;
        out.push(MARK);
        Ok(())
    }

    fn close(&mut self, _out: &mut Output<u64>) -> Result<(), BoxError> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err(format!("{} records never passed by a watermark", self.pending.len()).into())
        }
    }
}

#[test]
fn watermarks_and_timers_pass_through_a_chain_in_order() {
    let n = 50_000u64;
    for chaining in [true, false] {
        let sink = CollectSink::new();
        let results = sink.results();
        let report = bounded("watermark chain", move || {
            let job = Job::new("watermark chain");
            let strategy = WatermarkStrategy::for_monotonous_timestamps()
                .with_timestamp_assigner(|t: &u64| *t)
                .with_emit_interval(16);
            job.source(GeneratorSource::new(n, |i| i))
                .name("generate")
                .assign_timestamps_and_watermarks(strategy)
                .name("watermarks")
                .unary("hold", |_| HoldUntilWatermark::default())
                .sink(sink)
                .name("collect");
            let config = JobConfig::default()
                .with_batch_size(64)
                .with_chaining(chaining);
            job.run(&config).expect("the job runs")
        });
        let got = results.take();
        let (marks, records): (Vec<u64>, Vec<u64>) = got.into_iter().partition(|&t| t == MARK);
        assert_eq!(marks.len(), 1, "chaining {chaining}: the timer fired once");
        assert_eq!(
            records,
            (0..n).collect::<Vec<_>>(),
            "chaining {chaining}: every record, in event-time order"
        );
        // Per-operator counts survive chaining: each operator counts its own records.
        for (name, records_in, records_out) in [
            ("generate", n, n),
            ("watermarks", n, n),
            ("hold", n, n + 1),
            ("collect", n + 1, 0),
        ] {
            let m = report
                .operators
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("{name} is in the report"));
            assert_eq!(m.records_in, records_in, "chaining {chaining}: {name} in");
            assert_eq!(
                m.records_out, records_out,
                "chaining {chaining}: {name} out"
            );
        }
    }
}
