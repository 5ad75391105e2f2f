//! Invalid jobs and configurations are rejected by `run` before anything starts.

mod common;

use common::bounded;
use snapflow::engine::BuildError;
use snapflow::prelude::*;
use std::time::Duration;

fn build_error(result: Result<impl std::fmt::Debug, JobError>) -> BuildError {
    match result {
        Err(JobError::Build(error)) => error,
        other => panic!("expected a build error, got {other:?}"),
    }
}

/// A valid job: numbers, doubled, discarded.
fn valid_job() -> Job {
    let job = Job::new("valid");
    job.source(GeneratorSource::new(100, |i| i))
        .map(|i: u64| i * 2)
        .name("double")
        .sink(DiscardSink::new());
    job
}

#[test]
fn valid_job_runs() {
    bounded("valid job", || {
        valid_job()
            .run(&JobConfig::default().with_parallelism(2))
            .unwrap()
    });
}

#[test]
fn parallelism_zero_is_rejected() {
    let error = build_error(valid_job().run(&JobConfig::default().with_parallelism(0)));
    assert!(
        matches!(error, BuildError::InvalidParallelism { parallelism: 0, .. }),
        "{error:?}"
    );

    let job = Job::new("zero");
    job.source(GeneratorSource::new(10, |i| i))
        .map(|i: u64| i)
        .name("nobody")
        .parallelism(0)
        .sink(DiscardSink::new());
    let error = build_error(job.run(&JobConfig::default()));
    assert!(
        matches!(
            error,
            BuildError::InvalidParallelism { ref operator, parallelism: 0, max_parallelism: 128 }
                if operator == "nobody"
        ),
        "{error:?}"
    );
}

#[test]
fn parallelism_above_max_parallelism_is_rejected() {
    let config = JobConfig::default()
        .with_max_parallelism(4)
        .with_parallelism(8);
    let error = build_error(valid_job().run(&config));
    assert!(
        matches!(
            error,
            BuildError::InvalidParallelism {
                parallelism: 8,
                max_parallelism: 4,
                ..
            }
        ),
        "{error:?}"
    );

    // The bound itself is allowed.
    bounded("job at max parallelism", || {
        valid_job()
            .run(
                &JobConfig::default()
                    .with_max_parallelism(4)
                    .with_parallelism(4),
            )
            .unwrap()
    });

    // One operator above it is rejected as well.
    let job = Job::new("wide");
    job.source(GeneratorSource::new(10, |i| i))
        .key_by(|i: &u64| *i)
        .reduce(|a, b| a + b)
        .name("wide-reduce")
        .parallelism(5)
        .sink(DiscardSink::new());
    let error = build_error(job.run(&JobConfig::default().with_max_parallelism(4)));
    assert!(
        matches!(
            error,
            BuildError::InvalidParallelism { ref operator, parallelism: 5, max_parallelism: 4 }
                if operator == "wide-reduce"
        ),
        "{error:?}"
    );
}

#[test]
fn unconsumed_stream_is_rejected() {
    let job = Job::new("dangling");
    let numbers = job.source(GeneratorSource::new(10, |i| i));
    numbers.clone().map(|i: u64| i + 1).name("dangling");
    numbers.sink(DiscardSink::new());
    let error = build_error(job.run(&JobConfig::default()));
    assert!(
        matches!(error, BuildError::UnconsumedStream { ref operator } if operator == "dangling"),
        "{error:?}"
    );

    let job = Job::new("lonely source");
    job.source(GeneratorSource::new(10, |i| i)).name("lonely");
    let error = build_error(job.run(&JobConfig::default()));
    assert!(
        matches!(error, BuildError::UnconsumedStream { ref operator } if operator == "lonely"),
        "{error:?}"
    );
}

#[test]
fn job_without_source_is_rejected() {
    let error = build_error(Job::new("empty").run(&JobConfig::default()));
    assert!(matches!(error, BuildError::NoSource), "{error:?}");
}

#[test]
fn forward_between_different_parallelisms_is_rejected() {
    let job = Job::new("forward");
    job.source(GeneratorSource::new(10, |i| i))
        .name("numbers")
        .parallelism(2)
        .forward()
        .map(|i: u64| i)
        .name("copy")
        .parallelism(3)
        .sink(DiscardSink::new());
    let error = build_error(job.run(&JobConfig::default()));
    assert!(
        matches!(
            error,
            BuildError::ForwardParallelismMismatch {
                ref from,
                from_parallelism: 2,
                ref to,
                to_parallelism: 3,
            } if from == "numbers" && to == "copy"
        ),
        "{error:?}"
    );

    // Without the explicit forward() the same job runs (rebalanced).
    bounded("rebalanced job", || {
        let job = Job::new("rebalanced");
        job.source(GeneratorSource::new(10, |i| i))
            .parallelism(2)
            .map(|i: u64| i)
            .parallelism(3)
            .sink(DiscardSink::new());
        job.run(&JobConfig::default()).unwrap()
    });
}

#[test]
fn duplicate_uid_is_rejected() {
    let job = Job::new("uids");
    job.source(GeneratorSource::new(10, |i| i))
        .uid("numbers")
        .map(|i: u64| i)
        .uid("same")
        .filter(|i| i % 2 == 0)
        .uid("same")
        .sink(DiscardSink::new())
        .uid("sink");
    let error = build_error(job.run(&JobConfig::default()));
    assert!(
        matches!(error, BuildError::DuplicateUid { ref uid } if uid == "same"),
        "{error:?}"
    );

    // A sink's uid counts too.
    let job = Job::new("sink uids");
    job.source(GeneratorSource::new(10, |i| i))
        .uid("twice")
        .sink(DiscardSink::new())
        .uid("twice");
    let error = build_error(job.run(&JobConfig::default()));
    assert!(
        matches!(error, BuildError::DuplicateUid { ref uid } if uid == "twice"),
        "{error:?}"
    );
}

#[test]
fn stream_of_another_job_is_rejected() {
    // union
    let job = Job::new("one");
    let other = Job::new("two");
    let mine = job.source(GeneratorSource::new(10, |i| i));
    let theirs = other.source(GeneratorSource::new(10, |i| i));
    mine.union(theirs).sink(DiscardSink::new());
    let error = build_error(job.run(&JobConfig::default()));
    assert!(
        matches!(error, BuildError::ForeignStream { ref operator } if operator == "union"),
        "{error:?}"
    );
    // The error is kept: running again reports it again.
    let error = build_error(job.run(&JobConfig::default()));
    assert!(
        matches!(error, BuildError::ForeignStream { .. }),
        "{error:?}"
    );

    // binary
    let job = Job::new("one");
    let other = Job::new("two");
    let mine = job.source(GeneratorSource::new(10, |i| i));
    let theirs = other.source(GeneratorSource::new(10, |i| i.to_string()));
    mine.binary(theirs, "pair", |_| Pair)
        .sink(DiscardSink::new());
    let error = build_error(job.run(&JobConfig::default()));
    assert!(
        matches!(error, BuildError::ForeignStream { ref operator } if operator == "pair"),
        "{error:?}"
    );

    // keyed connect
    let job = Job::new("one");
    let other = Job::new("two");
    let mine = job
        .source(GeneratorSource::new(10, |i| i))
        .key_by(|i: &u64| *i);
    let theirs = other
        .source(GeneratorSource::new(10, |i| i))
        .key_by(|i: &u64| *i);
    mine.connect(theirs)
        .process(
            |_: &u64, _: Either<u64, u64>, _: &mut ValueState<u64>, _: &mut Output<u64>| Ok(()),
        )
        .sink(DiscardSink::new());
    let error = build_error(job.run(&JobConfig::default()));
    assert!(
        matches!(error, BuildError::ForeignStream { .. }),
        "{error:?}"
    );
}

/// Drops everything.
struct Pair;

impl snapflow::engine::BinaryOperator<u64, String, u64> for Pair {
    fn process_first(&mut self, _: Vec<u64>, _: &mut Output<u64>) -> Result<(), BoxError> {
        Ok(())
    }

    fn process_second(&mut self, _: Vec<String>, _: &mut Output<u64>) -> Result<(), BoxError> {
        Ok(())
    }
}

impl snapflow::engine::OperatorLifecycle<u64> for Pair {}

#[test]
fn out_of_range_configuration_is_rejected() {
    let error = build_error(valid_job().run(&JobConfig::default().with_max_rate(Some(0))));
    assert!(
        matches!(error, BuildError::InvalidConfig(_)),
        "max rate 0: {error:?}"
    );
}

/// Every size and interval setting is checked against its range before anything starts,
/// huge values included (which would otherwise abort on an allocation or panic on overflow);
/// the error names the setting and its bounds.
#[test]
fn settings_out_of_range_name_the_setting_and_its_bounds() {
    let day = 86_400_000;
    let checkpointing =
        |interval| JobConfig::default().with_checkpointing("unused-checkpoints", interval);
    let cases = [
        (
            "batch size",
            JobConfig::default().with_batch_size(0),
            0,
            1,
            1 << 20,
        ),
        (
            "batch size",
            JobConfig::default().with_batch_size(1_000_000_000_000),
            1_000_000_000_000,
            1,
            1 << 20,
        ),
        (
            "batch size",
            JobConfig::default().with_batch_size(usize::MAX),
            usize::MAX as u128,
            1,
            1 << 20,
        ),
        (
            "channel capacity",
            JobConfig::default().with_channel_capacity(0),
            0,
            1,
            1 << 16,
        ),
        (
            "channel capacity",
            JobConfig::default().with_channel_capacity(usize::MAX),
            usize::MAX as u128,
            1,
            1 << 16,
        ),
        (
            "max parallelism",
            JobConfig::default().with_max_parallelism(0),
            0,
            1,
            1 << 15,
        ),
        (
            "max parallelism",
            JobConfig::default().with_max_parallelism(u32::MAX),
            u128::from(u32::MAX),
            1,
            1 << 15,
        ),
        (
            "checkpoint interval (ms)",
            checkpointing(Duration::ZERO),
            0,
            1,
            day,
        ),
        (
            "checkpoint interval (ms)",
            checkpointing(Duration::from_micros(500)),
            0,
            1,
            day,
        ),
        (
            "checkpoint interval (ms)",
            checkpointing(Duration::MAX),
            Duration::MAX.as_millis(),
            1,
            day,
        ),
        (
            "checkpoint timeout (ms)",
            checkpointing(Duration::from_secs(1)).with_checkpoint_timeout(Duration::ZERO),
            0,
            1,
            day,
        ),
        (
            "checkpoint timeout (ms)",
            checkpointing(Duration::from_secs(1)).with_checkpoint_timeout(Duration::MAX),
            Duration::MAX.as_millis(),
            1,
            day,
        ),
    ];
    for (setting, config, value, min, max) in cases {
        let error = build_error(valid_job().run(&config));
        match &error {
            BuildError::SettingOutOfRange {
                setting: s,
                value: v,
                min: lo,
                max: hi,
            } => assert_eq!((*s, *v, *lo, *hi), (setting, value, min, max), "{setting}"),
            other => panic!("{setting} {value}: {other:?}"),
        }
        let message = error.to_string();
        for part in [setting.to_owned(), min.to_string(), max.to_string()] {
            assert!(message.contains(&part), "{message:?} lacks {part:?}");
        }
    }
    assert!(
        !std::path::Path::new("unused-checkpoints").exists(),
        "nothing may run"
    );
}

/// The bounds themselves are accepted.
#[test]
fn settings_at_their_bounds_are_accepted() {
    let configs = [
        JobConfig::default().with_batch_size(1),
        JobConfig::default().with_batch_size(JobConfig::MAX_BATCH_SIZE),
        JobConfig::default().with_channel_capacity(1),
        JobConfig::default().with_channel_capacity(JobConfig::MAX_CHANNEL_CAPACITY),
        JobConfig::default().with_max_parallelism(JobConfig::MAX_KEY_GROUPS),
    ];
    for config in configs {
        let config = config.with_parallelism(2);
        bounded("job at a bound", move || valid_job().run(&config).unwrap());
    }
}
