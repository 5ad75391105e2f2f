//! A job resumes only from the input it read: after a kill, an input that was appended to,
//! truncated or replaced is refused with an error saying what changed, the committed output is
//! left as it was, and once the original input is back the rerun finishes with exactly the
//! sequential result. Inputs that are not regular files are refused without hanging.

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

use fixture::{committed_sorted, config, dirs, killed_run, run, text, Dirs};
use snapflow::operators::source::InputError;
use snapflow::prelude::*;
use std::error::Error as _;

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
    killed_run(&d, 2);
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
    killed_run(&d, 2);
    let before = committed_sorted(&d.out);
    std::fs::write(&d.input, &original[..original.len() / 3]).unwrap();
    assert!(matches!(refusal(&d), InputError::Truncated { .. }));
    resumes_exactly_with(&d, &original, &before);
}

#[test]
fn an_input_replaced_by_another_of_the_same_size_is_refused() {
    let original = text(6);
    let d = dirs(&original);
    killed_run(&d, 2);
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
