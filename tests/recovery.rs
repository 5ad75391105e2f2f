//! Recovery: a task killed at any operator of either example job, or a whole run that fails,
//! resumes from the latest checkpoint, and the committed output equals the sequential result:
//! nothing lost, nothing twice. A changed job graph and a corrupt latest checkpoint are refused.

mod common;
#[path = "../examples/support/corpus.rs"]
mod corpus;
#[path = "../examples/support/ledger_job.rs"]
mod ledger_job;
#[path = "../examples/support/ledger_model.rs"]
mod ledger_model;
#[path = "../examples/support/output.rs"]
mod output;
#[path = "../examples/support/wordcount_job.rs"]
mod wordcount_job;

use common::bounded;
use snapflow::engine::{FailureInjector, RestartStrategy};
use snapflow::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

fn config(checkpoints: &Path) -> JobConfig {
    JobConfig::default()
        .with_parallelism(2)
        .with_batch_size(64)
        .with_checkpointing(checkpoints, Duration::from_millis(1))
}

/// A restarting config with paced sources (about 0.1 s of input per run), so that every task
/// still receives input after the first checkpoint completes, which is when its kill fires.
fn restarting(checkpoints: &Path, injector: FailureInjector) -> JobConfig {
    config(checkpoints)
        .with_max_rate(Some(300_000))
        .with_restart_strategy(RestartStrategy::FixedDelay {
            attempts: 2,
            delay: Duration::ZERO,
        })
        .with_failure_injector(injector)
}

struct Dirs {
    _root: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
    dead: PathBuf,
    checkpoints: PathBuf,
}

fn dirs(input_text: &str) -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input.txt");
    std::fs::write(&input, input_text).unwrap();
    Dirs {
        input,
        out: root.path().join("out"),
        dead: root.path().join("dead"),
        checkpoints: root.path().join("checkpoints"),
        _root: root,
    }
}

fn wordcount_text() -> String {
    let corpus = corpus::Corpus::new(2000, 10, 3);
    (0..30_000).map(|i| corpus.line(i) + "\n").collect()
}

/// The sequential word count: the n-th occurrence of a word yields (word, n).
fn wordcount_expected(text: &str) -> Vec<String> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut lines: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            let n = counts.entry(w).or_insert(0);
            *n += 1;
            format!("{w}\t{n}")
        })
        .collect();
    lines.sort();
    lines
}

fn committed_sorted(dir: &Path) -> Vec<String> {
    let mut lines = output::committed_lines(dir).unwrap();
    lines.sort();
    lines
}

fn run_wordcount(d: &Dirs, config: JobConfig) -> Result<JobReport, JobError> {
    let (input, out) = (d.input.clone(), d.out.clone());
    bounded("word count", move || {
        wordcount_job::build(&input, Some(&out), Arc::new(AtomicU64::new(0))).run(&config)
    })
}

#[test]
fn wordcount_survives_a_task_kill_at_every_operator() {
    let text = wordcount_text();
    let expected = wordcount_expected(&text);
    for (operator, task) in [
        ("read", 0),
        ("tokenize", 1),
        ("count", 0),
        ("count", 1),
        ("write", 1),
    ] {
        let d = dirs(&text);
        let injector = FailureInjector::new().fail_task_after_checkpoint(operator, task, 1);
        let report = run_wordcount(&d, restarting(&d.checkpoints, injector.clone()))
            .unwrap_or_else(|e| panic!("{operator}#{task}: {e}"));
        assert_eq!(injector.fired(), 1, "{operator}#{task}: the kill happened");
        assert_eq!(report.restarts, 1, "{operator}#{task}");
        assert!(
            report.restored_from.is_some(),
            "{operator}#{task}: resumed from a checkpoint"
        );
        assert!(
            committed_sorted(&d.out) == expected,
            "{operator}#{task}: output differs from the sequential count"
        );
    }
}

fn ledger_text() -> String {
    ledger_model::workload(20_000, 300, 11)
}

/// The committed ledger output checked against the sequential reference: every account's
/// versions are 1..k, its latest balance is the reference's, and the dead letters match.
fn check_ledger(d: &Dirs, text: &str, context: &str) {
    let reference = ledger_model::reference(text);
    let mut versions: HashMap<String, Vec<(u64, i128)>> = HashMap::new();
    for line in output::committed_lines(&d.out).unwrap() {
        let f: Vec<&str> = line.split('\t').collect();
        versions
            .entry(f[0].to_owned())
            .or_default()
            .push((f[2].parse().unwrap(), f[1].parse().unwrap()));
    }
    let mut latest = HashMap::new();
    for (account, mut seen) in versions {
        seen.sort();
        let numbers: Vec<u64> = seen.iter().map(|(v, _)| *v).collect();
        assert_eq!(
            numbers,
            (1..=seen.len() as u64).collect::<Vec<_>>(),
            "{context}: versions of {account}"
        );
        latest.insert(account, (seen.last().unwrap().1, seen.len() as u64));
    }
    assert!(
        latest == reference.balances,
        "{context}: balances differ from the sequential ledger"
    );
    let mut dead = output::committed_lines(&d.dead).unwrap();
    dead.sort();
    let mut expected_dead: Vec<String> = reference
        .malformed
        .iter()
        .map(|l| format!("malformed\t{l}"))
        .chain(
            reference
                .duplicates
                .iter()
                .map(|l| format!("duplicate\t{l}")),
        )
        .collect();
    expected_dead.sort();
    assert!(dead == expected_dead, "{context}: dead letters differ");
}

#[test]
fn ledger_survives_a_task_kill_at_every_operator() {
    let text = ledger_text();
    let operators = [
        "read",
        "parse",
        "malformed",
        "transfers",
        "dedup",
        "duplicates",
        "union",
        "write-dead-letters",
        "entries",
        "balance",
        "write-balances",
    ];
    for (i, operator) in operators.into_iter().enumerate() {
        let d = dirs(&text);
        let task = i % 2;
        let injector = FailureInjector::new().fail_task_after_checkpoint(operator, task, 1);
        let config = restarting(&d.checkpoints, injector.clone());
        let (input, out, dead) = (d.input.clone(), d.out.clone(), d.dead.clone());
        let report = bounded("ledger", move || {
            ledger_job::build(&input, &out, &dead).run(&config)
        })
        .unwrap_or_else(|e| panic!("{operator}#{task}: {e}"));
        assert_eq!(injector.fired(), 1, "{operator}#{task}: the kill happened");
        assert_eq!(report.restarts, 1, "{operator}#{task}");
        check_ledger(&d, &text, &format!("{operator}#{task}"));
    }
}

#[test]
fn a_failed_run_resumes_when_run_again() {
    let text = wordcount_text();
    let d = dirs(&text);
    let injector = FailureInjector::new().fail_task_after_checkpoint("count", 1, 2);
    let failed = run_wordcount(&d, config(&d.checkpoints).with_failure_injector(injector));
    match failed {
        Err(JobError::TaskFailed { operator, .. }) => assert_eq!(operator, "count"),
        other => panic!("expected the injected failure, got {other:?}"),
    }
    let published_before = committed_sorted(&d.out);
    let report = run_wordcount(&d, config(&d.checkpoints)).expect("the second run resumes");
    assert!(report.restored_from.is_some_and(|id| id.0 >= 2));
    let all = committed_sorted(&d.out);
    assert!(
        all == wordcount_expected(&text),
        "output after resuming differs"
    );
    assert!(published_before
        .iter()
        .all(|l| all.binary_search(l).is_ok()));

    // Run again: the job had finished, so nothing changes.
    let again = run_wordcount(&d, config(&d.checkpoints)).expect("a finished job reruns");
    assert!(again.checkpoints.is_empty());
    assert!(committed_sorted(&d.out) == all);
}

#[test]
fn a_different_job_graph_is_refused() {
    let text = wordcount_text();
    let d = dirs(&text);
    let injector = FailureInjector::new().fail_task_after_checkpoint("count", 0, 1);
    assert!(run_wordcount(&d, config(&d.checkpoints).with_failure_injector(injector)).is_err());
    let (input, out, checkpoints) = (d.input.clone(), d.out.clone(), d.checkpoints.clone());
    let result = bounded("changed job", move || {
        let job = Job::new("wordcount");
        job.source(TextFileSource::new(&input))
            .name("read")
            .uid("read")
            .map(|line: String| line.to_uppercase())
            .uid("shout")
            .sink(FileSink::new(&out))
            .uid("write");
        job.run(&config(&checkpoints))
    });
    match result {
        Err(JobError::GraphMismatch { added, removed, .. }) => {
            assert_eq!(added, ["shout"]);
            assert_eq!(removed, ["tokenize", "count"]);
        }
        other => panic!("expected a graph mismatch, got {other:?}"),
    }
}

#[test]
fn a_corrupt_latest_checkpoint_is_refused() {
    let text = wordcount_text();
    let d = dirs(&text);
    let injector = FailureInjector::new().fail_task_after_checkpoint("count", 0, 2);
    assert!(run_wordcount(&d, config(&d.checkpoints).with_failure_injector(injector)).is_err());
    let store = snapflow::checkpoint::CheckpointStore::open(&d.checkpoints).unwrap();
    let (decision, manifest) = store.latest().unwrap();
    let manifest = manifest.expect("a complete checkpoint");
    let entry = manifest
        .snapshots_of("count")
        .next()
        .expect("a snapshot of the counts");
    let file = store.layout().listed_file(manifest.checkpoint, &entry.file);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&file, bytes).unwrap();

    match run_wordcount(&d, config(&d.checkpoints)) {
        Err(JobError::CorruptCheckpoint {
            checkpoint, reason, ..
        }) => {
            assert_eq!(Some(checkpoint), decision.latest);
            assert!(reason.contains(&entry.file), "{reason}");
        }
        other => panic!("expected a corrupt checkpoint error, got {other:?}"),
    }
}
