//! A job resumes only from the input it read: after a kill, an input that was appended to,
//! truncated or replaced is refused with an error saying what changed, the committed output is
//! left as it was, and once the original input is back the rerun finishes with exactly the
//! sequential result. Inputs that are not regular files are refused without hanging.

mod common;
#[path = "../examples/support/corpus.rs"]
mod corpus;
#[path = "../examples/support/output.rs"]
mod output;
#[path = "../examples/support/rng.rs"]
mod rng;
#[path = "../examples/support/wordcount_job.rs"]
mod wordcount_job;

use common::bounded;
use snapflow::engine::FailureInjector;
use snapflow::operators::source::InputError;
use snapflow::prelude::*;
use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

struct Dirs {
    _root: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
    checkpoints: PathBuf,
}

fn dirs(text: &str) -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input.txt");
    std::fs::write(&input, text).unwrap();
    Dirs {
        input,
        out: root.path().join("out"),
        checkpoints: root.path().join("checkpoints"),
        _root: root,
    }
}

fn text(seed: u64) -> String {
    let corpus = corpus::Corpus::new(2000, 10, seed);
    (0..30_000).map(|i| corpus.line(i) + "\n").collect()
}

fn config(d: &Dirs) -> JobConfig {
    JobConfig::default()
        .with_parallelism(2)
        .with_batch_size(64)
        // About 1.5 s of input: the kill after the first checkpoints must come before the
        // input ends, also on a loaded machine where a checkpoint takes tens of milliseconds.
        .with_max_rate(Some(20_000))
        .with_checkpointing(&d.checkpoints, Duration::from_millis(1))
}

fn run(d: &Dirs, config: JobConfig) -> Result<JobReport, JobError> {
    let (input, out) = (d.input.clone(), d.out.clone());
    bounded("word count", move || {
        wordcount_job::build(&input, Some(&out), Arc::new(AtomicU64::new(0))).run(&config)
    })
}

fn committed_sorted(dir: &Path) -> Vec<String> {
    let mut lines = output::committed_lines(dir).unwrap();
    lines.sort();
    lines
}

/// Runs the job until a task is killed after checkpoint 2 completed.
fn killed_run(d: &Dirs) {
    let injector = FailureInjector::new().fail_task_after_checkpoint("count", 0, 2);
    let result = run(d, config(d).with_failure_injector(injector.clone()));
    assert!(
        matches!(result, Err(JobError::TaskFailed { .. })),
        "{result:?}"
    );
    assert_eq!(injector.fired(), 1);
}

/// Reruns the job and returns why it refused to resume.
fn refusal(d: &Dirs) -> InputError {
    match run(d, config(d)) {
        Err(JobError::InputChanged { source, .. }) => match source.downcast::<InputError>() {
            Ok(e) => *e,
            Err(other) => panic!("not an input error: {other}"),
        },
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// After a refusal: nothing was published, and with the original input back the job ends
/// with exactly the sequential result.
fn resumes_exactly_with(d: &Dirs, original: &str, committed_before: &[String]) {
    assert_eq!(
        committed_sorted(&d.out),
        committed_before,
        "the refusal published nothing"
    );
    std::fs::write(&d.input, original).unwrap();
    let report = run(d, config(d)).expect("the rerun with the original input");
    assert!(
        report.restored_from.is_some(),
        "it resumed from a checkpoint"
    );
    assert!(
        committed_sorted(&d.out) == wordcount_job::expected_output(original),
        "the output differs from the sequential count"
    );
}

#[test]
fn an_input_appended_to_after_a_kill_is_refused() {
    let original = text(3);
    let d = dirs(&original);
    killed_run(&d);
    let before = committed_sorted(&d.out);
    std::fs::write(&d.input, format!("{original}{}", text(4))).unwrap();
    match refusal(&d) {
        InputError::Grew { recorded, now, .. } => {
            assert_eq!(recorded, original.len() as u64);
            assert!(now > recorded);
        }
        other => panic!("expected Grew, got {other}"),
    }
    resumes_exactly_with(&d, &original, &before);
}

#[test]
fn an_input_truncated_after_a_kill_is_refused() {
    let original = text(5);
    let d = dirs(&original);
    killed_run(&d);
    let before = committed_sorted(&d.out);
    std::fs::write(&d.input, &original[..original.len() / 3]).unwrap();
    assert!(matches!(refusal(&d), InputError::Truncated { .. }));
    resumes_exactly_with(&d, &original, &before);
}

#[test]
fn an_input_replaced_by_another_of_the_same_size_is_refused() {
    let original = text(6);
    let d = dirs(&original);
    killed_run(&d);
    let before = committed_sorted(&d.out);
    let mut other = text(7);
    other.truncate(original.len());
    while other.len() < original.len() {
        other.push('\n');
    }
    std::fs::write(&d.input, &other).unwrap();
    assert!(matches!(refusal(&d), InputError::Replaced { .. }));
    resumes_exactly_with(&d, &original, &before);
}

#[test]
fn a_finished_job_refuses_an_input_that_grew_since() {
    let original = text(8);
    let d = dirs(&original);
    run(&d, config(&d)).expect("the first run");
    let before = committed_sorted(&d.out);
    std::fs::write(&d.input, format!("{original}more words\n")).unwrap();
    assert!(matches!(refusal(&d), InputError::Grew { .. }));
    assert_eq!(committed_sorted(&d.out), before);
}

fn failure_chain(error: &JobError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[test]
#[cfg(unix)]
fn a_fifo_or_a_directory_as_input_is_refused_without_hanging() {
    let d = dirs("");
    std::fs::remove_file(&d.input).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&d.input)
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    let error = run(&d, config(&d)).expect_err("a FIFO is refused");
    let chain = failure_chain(&error);
    assert!(chain.contains("FIFO"), "{chain}");
    assert!(chain.contains("input.txt"), "{chain}");

    std::fs::remove_file(&d.input).unwrap();
    std::fs::create_dir(&d.input).unwrap();
    let chain = failure_chain(&run(&d, config(&d)).expect_err("a directory is refused"));
    assert!(chain.contains("a directory, not a regular file"), "{chain}");
}
