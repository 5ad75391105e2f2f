//! Recovery: a task killed at any operator of either example job, or a whole run that fails,
//! resumes from the latest checkpoint, and the committed output equals the sequential result:
//! nothing lost, nothing twice. A changed job graph dropping state and a corrupt latest
//! checkpoint are refused.

mod common;
#[path = "../examples/support/corpus.rs"]
mod corpus;
#[path = "../examples/support/ledger_job.rs"]
mod ledger_job;
#[path = "../examples/support/ledger_model.rs"]
mod ledger_model;
#[path = "../examples/support/output.rs"]
mod output;
#[path = "../examples/support/rng.rs"]
mod rng;
#[path = "../examples/support/wordcount_job.rs"]
mod wordcount_job;

use common::bounded;
use snapflow::engine::{FailureInjector, KeyGroupRange, RestartStrategy, RestoredState};
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

/// A restarting config with paced sources (about 0.1 s of input per run), so that checkpoints
/// complete before the kills and the restarts usually resume from one (the gated test below
/// makes sure of it).
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
    let expected = wordcount_job::expected_output(&text);
    // Each task of read and tokenize gets about 15 000 lines, of count and write about
    // 150 000 words: the kills land half-way through a task's input.
    let kills = [
        ("read", 0, 7_000),
        ("tokenize", 1, 7_000),
        ("count", 0, 70_000),
        ("count", 1, 70_000),
        ("write", 1, 70_000),
    ];
    for (operator, task, after) in kills {
        let d = dirs(&text);
        let injector = FailureInjector::new().fail_task(operator, task, after);
        let report = run_wordcount(&d, restarting(&d.checkpoints, injector.clone()))
            .unwrap_or_else(|e| panic!("{operator}#{task}: {e}"));
        assert_eq!(injector.fired(), 1, "{operator}#{task}: the kill happened");
        assert_eq!(report.restarts, 1, "{operator}#{task}");
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
    assert!(
        dead == reference.dead_letters(),
        "{context}: dead letters differ"
    );
}

#[test]
fn ledger_survives_a_task_kill_at_every_operator() {
    let text = ledger_text();
    // Kills about half-way through each task's input.
    let operators = [
        ("read", 5_000),
        ("dedup", 5_000),
        ("balance", 5_000),
        ("write", 5_000),
    ];
    assert_eq!(operators.map(|(name, _)| name), ledger_job::OPERATORS);
    for (i, (operator, after)) in operators.into_iter().enumerate() {
        let d = dirs(&text);
        let task = i % ledger_job::tasks(operator, 2);
        let injector = FailureInjector::new().fail_task(operator, task, after);
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

const RECORDS: u64 = 200_000;

/// A keyed running count over a generator gated at half of each task's share; the second run
/// has the gate open (dropped) from the start. Same graph, same uids.
fn gated_count_job(out: &Path) -> (Job, common::Gate) {
    let (source, gate) = common::gated(GeneratorSource::new(RECORDS, |i| i), |task| {
        common::share(RECORDS, task.index, task.parallelism).start + RECORDS / 4
    });
    let job = Job::new("gated-count");
    job.source(source)
        .uid("source")
        .key_by(|i: &u64| i % 1000)
        .process(
            |key: &u64, _: u64, n: &mut ValueState<u64>, out: &mut Output<String>| {
                let next = n.get().copied().unwrap_or(0) + 1;
                n.set(next);
                out.push(format!("{key}\t{next}"));
                Ok(())
            },
        )
        .uid("count")
        .name("count")
        .sink(FileSink::new(out))
        .uid("write");
    (job, gate)
}

#[test]
fn a_failed_run_resumes_from_its_checkpoint_when_run_again() {
    let d = dirs("");
    let (events_tx, events) = crossbeam_channel::unbounded();
    // Before the gate count task 0 receives at most ~60 000 records (its keys' share of the
    // 100 000 before the gate), after it ~100 000: the kill can only come after the gate.
    let injector = FailureInjector::new().fail_task("count", 0, 75_000);
    let first = config(&d.checkpoints)
        .with_checkpoint_listener(events_tx)
        .with_failure_injector(injector.clone());
    let (job, mut gate) = gated_count_job(&d.out);
    let handle = job.launch(&first).unwrap();
    drop(first);
    gate.wait_reached(2);
    // Both sources wait at the gate. Of the checkpoints completing from now on, the second was
    // triggered after the first completed, so after the gate was reached: a checkpoint of the
    // gated state, which the second run must resume from (or from a later one).
    let _ = events.try_iter().count();
    let mut completed = Vec::new();
    while completed.len() < 2 {
        if let snapflow::engine::CheckpointEvent::Completed(stats) = common::next_event(&events) {
            completed.push(stats.id);
        }
    }
    let completed = completed[1];
    // Past the gate, the count task is killed.
    gate.open();
    match bounded("failing run", move || handle.join()) {
        Err(JobError::TaskFailed { operator, .. }) => assert_eq!(operator, "count"),
        other => panic!("expected the injected failure, got {other:?}"),
    }
    assert_eq!(injector.fired(), 1);

    let out = d.out.clone();
    let checkpoints = d.checkpoints.clone();
    let report = bounded("second run", move || {
        let (job, gate) = gated_count_job(&out);
        drop(gate); // open from the start
        job.run(&config(&checkpoints))
    })
    .expect("the second run resumes");
    assert!(
        report.restored_from.is_some_and(|id| id >= completed),
        "{:?}",
        report.restored_from
    );

    let mut expected: Vec<String> = Vec::new();
    let mut counts: HashMap<u64, u64> = HashMap::new();
    for i in 0..RECORDS {
        let n = counts.entry(i % 1000).or_insert(0);
        *n += 1;
        expected.push(format!("{}\t{n}", i % 1000));
    }
    expected.sort();
    assert!(
        committed_sorted(&d.out) == expected,
        "output after resuming differs"
    );

    // Run again: the job had finished, so nothing changes.
    let (out, checkpoints) = (d.out.clone(), d.checkpoints.clone());
    let again = bounded("third run", move || {
        let (job, gate) = gated_count_job(&out);
        drop(gate);
        job.run(&config(&checkpoints))
    })
    .expect("a finished job reruns");
    assert!(again.checkpoints.is_empty());
    assert!(committed_sorted(&d.out) == expected);
}

#[test]
fn a_job_dropping_stateful_operators_is_refused() {
    let text = wordcount_text();
    let d = dirs(&text);
    run_wordcount(&d, config(&d.checkpoints)).expect("the first run");
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
        // "tokenize" had no state: only the counts would be lost.
        Err(e @ JobError::GraphMismatch { .. }) => {
            let message = e.to_string();
            let JobError::GraphMismatch { added, removed, .. } = e else {
                unreachable!()
            };
            assert_eq!(added, ["shout"]);
            assert_eq!(removed, ["count"]);
            assert!(message.contains("allow_non_restored_state"), "{message}");
        }
        other => panic!("expected a graph mismatch, got {other:?}"),
    }
}

#[test]
fn a_corrupt_latest_checkpoint_is_refused() {
    let text = wordcount_text();
    let d = dirs(&text);
    run_wordcount(&d, config(&d.checkpoints)).expect("the first run");
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

/// The ledger's two outputs commit one after the other. A crash between the two commits of
/// checkpoint N leaves only the balances published; the restart's `open(Some(N))` must
/// publish the dead letters of N too, and not publish the balances twice.
#[test]
fn ledger_outputs_recover_from_a_crash_between_their_two_commits() {
    use ledger_job::{Balance, DeadLetter, Outputs, Written};
    use snapflow::engine::{CheckpointId, OperatorId, Sink, TaskInfo};

    let dir = tempfile::tempdir().unwrap();
    let (balances_dir, dead_dir) = (dir.path().join("balances"), dir.path().join("dead"));
    let sinks = || Outputs {
        balances: FileSink::with_format(&balances_dir, |b: &Balance, buf: &mut Vec<u8>| {
            b.format(buf)
        }),
        dead_letters: FileSink::with_format(&dead_dir, |d: &DeadLetter, buf: &mut Vec<u8>| {
            d.format(buf)
        }),
    };
    let task = TaskInfo {
        operator: OperatorId(3),
        name: "write".into(),
        uid: "write".into(),
        index: 0,
        parallelism: 1,
        max_parallelism: 128,
        first_checkpoint: CheckpointId(1),
    };
    let outputs = sinks();
    outputs.committer().unwrap().open(None).unwrap();
    let mut writer = outputs.create_writer(&task).unwrap();
    writer
        .write_batch(vec![
            Written::Balance(Balance {
                account: "a".into(),
                balance: -5,
                version: 1,
            }),
            Written::DeadLetter(DeadLetter::Malformed("not a transfer".into())),
        ])
        .unwrap();
    writer.pre_commit(CheckpointId(1)).unwrap();
    let state = writer
        .snapshot(CheckpointId(1))
        .unwrap()
        .expect("the sink's record");
    // The crash: only the first of the two commits happened.
    outputs
        .balances
        .committer()
        .unwrap()
        .commit(CheckpointId(1))
        .unwrap();
    assert!(output::committed_lines(&dead_dir).unwrap().is_empty());

    sinks()
        .committer()
        .unwrap()
        .open(Some(&RestoredState::from_payloads(
            CheckpointId(1),
            KeyGroupRange::for_task(0, 1, 128),
            vec![state],
        )))
        .unwrap();
    assert_eq!(
        output::committed_lines(&balances_dir).unwrap(),
        ["a\t-5\t1"]
    );
    assert_eq!(
        output::committed_lines(&dead_dir).unwrap(),
        ["malformed\tnot a transfer"]
    );
}
