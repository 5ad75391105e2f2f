//! Savepoints (Flink's stop-with-savepoint and `--fromSavepoint`): word count over a file is
//! stopped with a savepoint part-way through its input, then started from the savepoint into
//! a new checkpoint directory, at another parallelism, with an operator added or dropped; the
//! output is checked against the sequential count every time. The savepoint is never written
//! by the jobs that start from it; an interrupted savepoint write, at any step, is refused,
//! and the stopped job resumes from its own checkpoints.

#[path = "support/changed_wordcount.rs"]
mod changed;
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

use changed::{assert_counted_then_uncounted, with_a_new_filter, without_count};
use common::{bounded, gated, keyed_state, next_event};
use fixture::{committed_sorted, dirs, text, Dirs};
use snapflow::checkpoint::{CheckpointLayout, CheckpointStore};
use snapflow::engine::{CheckpointEvent, FailureInjector, Savepoint};
use snapflow::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// Word count's settings at parallelism `p`, checkpointing into `checkpoints`: about 1.5 s of
/// input, so that a stop after the first checkpoint comes before the input ends.
fn config(p: usize, checkpoints: &Path) -> JobConfig {
    JobConfig::default()
        .with_parallelism(p)
        .with_batch_size(64)
        .with_max_rate(Some(20_000))
        .with_checkpointing(checkpoints, Duration::from_millis(1))
}

/// Runs word count at parallelism `p` until its first checkpoint completes, then stops it
/// with a savepoint into `<root>/savepoint`; returns the savepoint.
fn stop_with_savepoint(d: &Dirs, p: usize) -> Savepoint {
    let target = d.root.path().join("savepoint");
    let (events_tx, events) = crossbeam_channel::unbounded();
    let config = config(p, &d.checkpoints).with_checkpoint_listener(events_tx);
    let job = wordcount_job::build(&d.input, Some(&d.out), Arc::new(AtomicU64::new(0)));
    let handle = job.launch(&config).expect("launch");
    // Synchronised on the job's own event: a checkpoint completed, so the sources are reading.
    while !matches!(next_event(&events), CheckpointEvent::Completed(_)) {}
    handle.stopper().stop_with_savepoint(&target);
    let report = bounded("stop with savepoint", move || handle.join()).expect("stops");
    let stopped_at = report.stopped_at.expect("stopped before the input ended");
    let savepoint = report.savepoint.expect("a savepoint was written");
    assert_eq!(savepoint.dir, target);
    assert_eq!(savepoint.checkpoint, stopped_at);
    assert!(
        committed_sorted(&d.out).len()
            < wordcount_job::expected_output(&std::fs::read_to_string(&d.input).unwrap()).len(),
        "the job stopped part-way through its input"
    );
    savepoint
}

/// Every file under `dir` with its bytes, to show that nothing wrote there.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Word count at parallelism `p` from `savepoint` into the new checkpoint directory `dir`.
fn from_savepoint(d: &Dirs, p: usize, savepoint: &Path, dir: &Path) -> Result<JobReport, JobError> {
    let config = config(p, dir).with_savepoint_restore(savepoint);
    fixture::run(d, config)
}

fn rescale(from: usize, to: usize) {
    let original = text(11);
    let d = dirs(&original);
    let savepoint = stop_with_savepoint(&d, from);
    let before = contents(&savepoint.dir);
    // The stopped job's checkpoint directory may go: the savepoint needs nothing of it.
    std::fs::remove_dir_all(&d.checkpoints).unwrap();

    let fresh = d.root.path().join("checkpoints-2");
    // Killed after its second checkpoint (ids go on after the savepoint's), then rerun with
    // the same flags: it resumes from its own checkpoint, never from the savepoint again.
    let injector =
        FailureInjector::new().fail_task_after_checkpoint("count", 0, savepoint.checkpoint.0 + 2);
    let killed = fixture::run(
        &d,
        config(to, &fresh)
            .with_savepoint_restore(&savepoint.dir)
            .with_failure_injector(injector.clone()),
    );
    assert!(
        matches!(killed, Err(JobError::TaskFailed { .. })),
        "{killed:?}"
    );
    assert_eq!(injector.fired(), 1);
    let report = from_savepoint(&d, to, &savepoint.dir, &fresh).expect("resumes");
    let resumed = report.restored_from.expect("resumed");
    assert!(
        resumed > savepoint.checkpoint,
        "resumed from its own checkpoint {resumed}, after the savepoint's {}",
        savepoint.checkpoint
    );
    assert!(
        committed_sorted(&d.out) == wordcount_job::expected_output(&original),
        "the output differs from the sequential count ({from} -> {to})"
    );
    assert!(
        contents(&savepoint.dir) == before,
        "the savepoint was written to"
    );
}

#[test]
fn stop_with_savepoint_then_resume_at_parallelism_2_to_3() {
    rescale(2, 3);
}

/// At the same parallelism a task could build on the savepoint's snapshot: it must not (its
/// chain would name files the new checkpoint directory does not hold), so the rerun after the
/// kill finds complete checkpoints of its own.
#[test]
fn stop_with_savepoint_then_resume_at_the_same_parallelism() {
    rescale(2, 2);
}

#[test]
fn stop_with_savepoint_then_resume_at_parallelism_3_to_1() {
    rescale(3, 1);
}

#[test]
fn an_operator_added_after_the_savepoint_starts_empty() {
    let original = text(12);
    let d = dirs(&original);
    let savepoint = stop_with_savepoint(&d, 2);
    let (input, out) = (d.input.clone(), d.out.clone());
    let config =
        config(3, &d.root.path().join("checkpoints-2")).with_savepoint_restore(&savepoint.dir);
    let report = bounded("word count with a filter", move || {
        with_a_new_filter(&input, &out, &config)
    })
    .expect("the changed job starts from the savepoint");
    assert_eq!(report.restored_from, Some(savepoint.checkpoint));
    assert!(
        committed_sorted(&d.out) == wordcount_job::expected_output(&original),
        "the output differs from the sequential count"
    );
}

#[test]
fn dropping_an_operator_needs_the_flag_and_its_refusal_names_the_uid() {
    let original = text(13);
    let d = dirs(&original);
    let savepoint = stop_with_savepoint(&d, 2);
    let before = (contents(&savepoint.dir), committed_sorted(&d.out));
    let fresh = d.root.path().join("checkpoints-2");

    let (input, out) = (d.input.clone(), d.out.clone());
    let plain = config(1, &fresh).with_savepoint_restore(&savepoint.dir);
    match bounded("without count", move || without_count(&input, &out, &plain)) {
        Err(e @ JobError::GraphMismatch { .. }) => {
            let message = e.to_string();
            assert!(message.contains("[count]"), "{message}");
            assert!(
                message.contains("savepoint"),
                "names the savepoint: {message}"
            );
        }
        other => panic!("expected a refusal naming count, got {other:?}"),
    }
    assert!(
        (contents(&savepoint.dir), committed_sorted(&d.out)) == before,
        "the refusal changed nothing"
    );

    // The same savepoint again, now with the flag.
    let (input, out) = (d.input.clone(), d.out.clone());
    let allowed = config(1, &fresh)
        .with_savepoint_restore(&savepoint.dir)
        .with_allow_non_restored_state(true);
    let report = bounded("without count, allowed", move || {
        without_count(&input, &out, &allowed)
    })
    .expect("starts when dropping state is allowed");
    assert_eq!(report.restored_from, Some(savepoint.checkpoint));
    assert_counted_then_uncounted(&committed_sorted(&d.out), &original);
}

/// A savepoint write cut short at each of its steps (after each snapshot file, with a temp
/// file of the next one, with every file but the manifest) is refused as incomplete, and the
/// stopped job still resumes from its own checkpoint directory to the exact result.
#[test]
fn a_savepoint_write_cut_short_anywhere_is_refused_and_the_job_resumes_from_its_checkpoints() {
    let original = text(14);
    let d = dirs(&original);
    let savepoint = stop_with_savepoint(&d, 2);
    let checkpoint = savepoint.checkpoint;
    let layout = CheckpointLayout::new(&savepoint.dir);
    let manifest = CheckpointStore::open(&savepoint.dir)
        .unwrap()
        .load_manifest(checkpoint)
        .unwrap();
    let files: Vec<PathBuf> = manifest
        .snapshots
        .iter()
        .map(|e| layout.listed_file(checkpoint, &e.file))
        .collect();
    assert!(files.len() >= 2, "count and write tasks have snapshots");
    let published = committed_sorted(&d.out);
    let fresh = d.root.path().join("checkpoints-2");

    // Every crash point of the write protocol: the directory, then each file in turn (temp
    // file, renamed), then the manifest.
    let mut crash_points: Vec<(usize, bool)> = Vec::new();
    for copied in 0..=files.len() {
        crash_points.push((copied, false));
        if copied < files.len() {
            crash_points.push((copied, true));
        }
    }
    for (copied, with_temp) in crash_points {
        let cut = d.root.path().join(format!("cut-{copied}-{with_temp}"));
        let dir = CheckpointLayout::new(&cut).checkpoint_dir(checkpoint);
        std::fs::create_dir_all(&dir).unwrap();
        for file in &files[..copied] {
            std::fs::copy(file, dir.join(file.file_name().unwrap())).unwrap();
        }
        if with_temp {
            let name = files[copied]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            std::fs::write(dir.join(format!(".{name}.1-0.tmp")), b"half").unwrap();
        }
        match from_savepoint(&d, 3, &cut, &fresh) {
            Err(JobError::Savepoint(e)) => {
                assert!(e.to_string().contains("incomplete"), "{e}")
            }
            other => panic!("a savepoint cut after {copied} files was not refused: {other:?}"),
        }
        assert!(!fresh.join("chk-00000000000000000001").exists());
    }
    assert_eq!(
        committed_sorted(&d.out),
        published,
        "the refusals published nothing"
    );

    // The stopped job resumes from its own checkpoint directory, as after any stop.
    let report = fixture::run(&d, config(2, &d.checkpoints)).expect("resumes");
    assert_eq!(report.restored_from, Some(checkpoint));
    assert!(
        committed_sorted(&d.out) == wordcount_job::expected_output(&original),
        "the output differs from the sequential count"
    );
}

/// A source that cannot resume at another parallelism is refused, naming it; at the same
/// parallelism the savepoint restores it.
#[test]
fn a_source_that_cannot_rescale_is_refused_by_name() {
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("savepoint");
    // Each task of 2 stops 10 numbers into its share (0..500, 500..1000) until the gate opens.
    let build = |gated_at_10: bool| {
        let at = move |t: &TaskInfo| {
            if gated_at_10 {
                t.index as u64 * 500 + 10
            } else {
                u64::MAX
            }
        };
        let (source, gate) = gated(CollectionSource::new((0..1000u64).collect::<Vec<_>>()), at);
        let job = Job::new("numbers");
        job.source(source)
            .name("numbers")
            .uid("numbers")
            .sink(DiscardSink::new())
            .name("discard")
            .uid("discard");
        (job, gate)
    };
    let (job, gate) = build(true);
    let (events_tx, events) = crossbeam_channel::unbounded();
    let config = |p: usize, dir: &str| {
        JobConfig::default()
            .with_parallelism(p)
            .with_checkpointing(root.path().join(dir), Duration::from_millis(1))
    };
    let handle = job
        .launch(&config(2, "checkpoints").with_checkpoint_listener(events_tx))
        .expect("launch");
    gate.wait_reached(2);
    while !matches!(next_event(&events), CheckpointEvent::Completed(_)) {}
    handle.stopper().stop_with_savepoint(&target);
    let report = bounded("stop", move || handle.join()).expect("stops");
    assert!(report.savepoint.is_some());
    drop(gate);

    let (job, _gate) = build(false);
    match job.run(&config(3, "checkpoints-2").with_savepoint_restore(&target)) {
        Err(e @ JobError::SourceCannotRescale { .. }) => {
            let message = e.to_string();
            assert!(message.contains("'numbers'"), "{message}");
            assert!(message.contains("parallelism 2"), "{message}");
        }
        other => panic!("expected a refusal naming the source, got {other:?}"),
    }
    let (job, _gate) = build(false);
    let report = job
        .run(&config(2, "checkpoints-3").with_savepoint_restore(&target))
        .expect("the same parallelism restores");
    assert_eq!(
        report.operator("discard").map(|m| m.records_in),
        Some(1000 - 20)
    );
}

/// Flink's savepoint of a running job: the next completed checkpoint is copied while the job
/// goes on; a job started from it at another parallelism ends with the sequential counts.
#[test]
fn a_savepoint_taken_while_the_job_runs_restores_at_another_parallelism() {
    let original = text(15);
    let d = dirs(&original);
    let target = d.root.path().join("savepoint");
    let (events_tx, events) = crossbeam_channel::unbounded();
    // Counts only (discard sink): the state is what is checked.
    let job = wordcount_job::build(&d.input, None, Arc::new(AtomicU64::new(0)));
    let handle = job
        .launch(&config(2, &d.checkpoints).with_checkpoint_listener(events_tx))
        .expect("launch");
    while !matches!(next_event(&events), CheckpointEvent::Completed(_)) {}
    let savepoint = handle
        .trigger_savepoint(&target)
        .recv_timeout(Duration::from_secs(60))
        .expect("an answer")
        .expect("a savepoint");
    let first = bounded("the job goes on", move || handle.join()).expect("finishes");
    assert!(
        first.savepoint.is_none(),
        "it did not stop with a savepoint"
    );
    assert!(first.stopped_at.is_none(), "it ran to its end");

    let (store, opened) = snapflow::checkpoint::open_savepoint(&target).unwrap();
    let manifest = opened.manifest;
    assert_eq!(manifest.checkpoint, savepoint.checkpoint);
    assert!(
        !manifest.is_final,
        "the savepoint was taken part-way through the input"
    );
    let expected: HashMap<String, u64> =
        original
            .split_whitespace()
            .fold(HashMap::new(), |mut m, w| {
                *m.entry(w.to_owned()).or_insert(0) += 1;
                m
            });
    let saved: HashMap<String, ValueState<u64>> = keyed_state(&store, &manifest, "count");
    let saved_total: u64 = saved.values().filter_map(|v| v.get().copied()).sum();
    assert!(saved_total < expected.values().sum::<u64>());

    let fresh = d.root.path().join("checkpoints-2");
    let (input, config) = (
        d.input.clone(),
        config(3, &fresh).with_savepoint_restore(&target),
    );
    let report = bounded("from the savepoint", move || {
        wordcount_job::build(&input, None, Arc::new(AtomicU64::new(0))).run(&config)
    })
    .expect("finishes");
    assert_eq!(report.restored_from, Some(savepoint.checkpoint));
    let store = CheckpointStore::open(&fresh).unwrap();
    let last = common::complete_checkpoints(&store)
        .pop()
        .expect("a final checkpoint");
    assert!(last.is_final);
    let counts: HashMap<String, u64> =
        keyed_state::<String, ValueState<u64>>(&store, &last, "count")
            .into_iter()
            .filter_map(|(word, n)| n.get().copied().map(|n| (word, n)))
            .collect();
    common::assert_same_map("counts after the savepoint", &counts, &expected);
}

/// The input checks apply to a start from a savepoint: a file that changed since is refused,
/// naming it, and nothing is published.
#[test]
fn a_changed_input_is_refused_when_starting_from_a_savepoint() {
    let original = text(16);
    let d = dirs(&original);
    let savepoint = stop_with_savepoint(&d, 2);
    let published = committed_sorted(&d.out);
    let mut grown = original.clone();
    grown.push_str("one more line\n");
    std::fs::write(&d.input, grown).unwrap();
    match from_savepoint(&d, 3, &savepoint.dir, &d.root.path().join("checkpoints-2")) {
        Err(e @ JobError::InputChanged { .. }) => {
            let chain = format!("{}", snapflow::engine::ErrorChain(&e));
            assert!(
                chain.contains("input.txt") && chain.contains("grew"),
                "{chain}"
            );
        }
        other => panic!("expected a refusal of the changed input, got {other:?}"),
    }
    assert_eq!(committed_sorted(&d.out), published, "nothing was published");
}
