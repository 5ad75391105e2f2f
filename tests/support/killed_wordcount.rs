#![allow(dead_code)] // Each test uses only some of these.
//! The word count job run into a scratch directory and killed after a checkpoint: the set-up
//! of the tests that change something between a kill and the rerun (input, output directory,
//! job graph). Needs `common`, `corpus`, `output` and `wordcount_job` as sibling modules.

use super::common::bounded;
use super::{corpus, output, wordcount_job};
use snapflow::engine::FailureInjector;
use snapflow::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// A scratch directory with the job's input file, output and checkpoint directories.
pub(crate) struct Dirs {
    /// Removed with its contents when dropped.
    #[allow(dead_code)] // Read by some tests only.
    pub root: tempfile::TempDir,
    pub input: PathBuf,
    pub out: PathBuf,
    pub checkpoints: PathBuf,
}

/// Fresh directories with `text` as the input.
pub(crate) fn dirs(text: &str) -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input.txt");
    std::fs::write(&input, text).unwrap();
    Dirs {
        input,
        out: root.path().join("out"),
        checkpoints: root.path().join("checkpoints"),
        root,
    }
}

/// 30 000 lines of a seeded Zipf corpus.
pub(crate) fn text(seed: u64) -> String {
    let corpus = corpus::Corpus::new(2000, 10, seed);
    (0..30_000).map(|i| corpus.line(i) + "\n").collect()
}

/// Parallelism 2, a checkpoint every millisecond, and about 1.5 s of input: the kill after
/// the first checkpoints must come before the input ends, also on a loaded machine where a
/// checkpoint takes tens of milliseconds.
pub(crate) fn config(d: &Dirs) -> JobConfig {
    JobConfig::default()
        .with_parallelism(2)
        .with_batch_size(64)
        .with_max_rate(Some(20_000))
        .with_checkpointing(&d.checkpoints, Duration::from_millis(1))
}

/// Runs the word count job over the directories with `config`.
pub(crate) fn run(d: &Dirs, config: JobConfig) -> Result<JobReport, JobError> {
    let (input, out) = (d.input.clone(), d.out.clone());
    bounded("word count", move || {
        wordcount_job::build(&input, Some(&out), Arc::new(AtomicU64::new(0))).run(&config)
    })
}

/// The committed output lines, sorted.
pub(crate) fn committed_sorted(dir: &Path) -> Vec<String> {
    let mut lines = output::committed_lines(dir).unwrap();
    lines.sort();
    lines
}

/// Runs the job until a task of `count` is killed after checkpoint `after` completed.
pub(crate) fn killed_run(d: &Dirs, after: u64) {
    let injector = FailureInjector::new().fail_task_after_checkpoint("count", 0, after);
    let result = run(d, config(d).with_failure_injector(injector.clone()));
    assert!(
        matches!(result, Err(JobError::TaskFailed { .. })),
        "{result:?}"
    );
    assert_eq!(
        injector.fired(),
        1,
        "the kill happened before the input ended"
    );
}
