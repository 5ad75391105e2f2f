//! Retention: with two checkpoints retained, a job that took many leaves exactly its two newest
//! complete checkpoints, the final one last, and nothing in progress. A second run with the same
//! checkpoint directory resumes from the final checkpoint and does nothing; one with a fresh
//! checkpoint directory but the same file sink output is refused.

mod common;

use common::{
    assert_same_map, bounded, complete_runs, gated, next_event, published_files,
    read_published_counts, share, TIMEOUT,
};
use snapflow::checkpoint::{
    checkpoint_dir_name, open_savepoint, CheckpointId, CheckpointLayout, CheckpointState,
    CheckpointStore,
};
use snapflow::engine::{CheckpointEvent, FailureInjector, Source};
use snapflow::prelude::*;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const RECORDS: u64 = 200_000;
const PARALLELISM: usize = 2;
const KEYS: u64 = 300;
/// Checkpoints completed while the sources wait at their gates.
const WHILE_GATED: usize = 5;

fn config(checkpoints: &Path) -> JobConfig {
    JobConfig::default()
        .with_parallelism(PARALLELISM)
        .with_checkpointing(checkpoints, Duration::from_millis(10))
        .with_retained_checkpoints(2)
}

/// A keyed running count of `source` into a file sink at `out`.
fn count_job<S: Source<Out = u64>>(source: S, out: &Path) -> Job {
    let job = Job::new("retention");
    job.source(source)
        .uid("numbers")
        .key_by(|i: &u64| i % KEYS)
        .process(
            |key: &u64, _i: u64, count: &mut ValueState<u64>, out: &mut Output<(u64, u64)>| {
                let n = count.get().copied().unwrap_or(0) + 1;
                count.set(n);
                out.push((*key, n));
                Ok(())
            },
        )
        .uid("count")
        .sink(FileSink::with_format(
            out,
            |(key, n): &(u64, u64), buf: &mut Vec<u8>| {
                let _ = write!(buf, "k{key}\t{n}");
            },
        ));
    job
}

/// The entries of a directory, without the job's lock and mark files.
fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("_snapflow"))
        .collect();
    names.sort();
    names
}

/// Each published file and its bytes.
fn output_snapshot(out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    published_files(out)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).expect("read output");
            (f, bytes)
        })
        .collect()
}

/// The store in `checkpoints` holds exactly the `kept` checkpoints, each complete, and the
/// directory nothing else.
fn assert_holds_exactly(store: &CheckpointStore, checkpoints: &Path, kept: &[CheckpointId]) {
    let statuses = store.scan().expect("scan");
    assert_eq!(
        statuses
            .iter()
            .map(|s| (s.id, s.state.clone()))
            .collect::<Vec<_>>(),
        kept.iter()
            .map(|&id| (id, CheckpointState::Complete))
            .collect::<Vec<_>>(),
        "the store holds the kept checkpoints and what they build on, complete"
    );
    assert_eq!(
        dir_entries(checkpoints),
        kept.iter()
            .map(|&id| checkpoint_dir_name(id))
            .collect::<Vec<_>>(),
        "nothing else is left in the checkpoint directory"
    );
}

/// `newest` and every checkpoint their chains build on, transitively, sorted.
fn with_their_chains(store: &CheckpointStore, newest: &[CheckpointId]) -> Vec<CheckpointId> {
    let mut kept: Vec<CheckpointId> = newest.to_vec();
    let mut i = 0;
    while i < kept.len() {
        let manifest = store
            .load_manifest(kept[i])
            .expect("manifest of a kept one");
        for id in manifest.referenced_checkpoints() {
            if !kept.contains(&id) {
                kept.push(id);
            }
        }
        i += 1;
    }
    kept.sort();
    kept
}

#[test]
fn only_the_newest_checkpoints_are_kept_and_a_second_run_resumes_finished() {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoints = dir.path().join("checkpoints");
    let out = dir.path().join("out");
    let (events_tx, events) = crossbeam_channel::unbounded();

    // Hold the sources in the middle until several checkpoints have completed, so that the
    // job takes many checkpoints however fast it runs.
    let (source, mut gate) = gated(GeneratorSource::new(RECORDS, |i| i), |task| {
        let range = share(RECORDS, task.index, task.parallelism);
        range.start + (range.end - range.start) / 2
    });
    let handle = count_job(source, &out)
        .launch(&config(&checkpoints).with_checkpoint_listener(events_tx))
        .expect("launch the job");
    gate.wait_reached(PARALLELISM);
    let mut completed = 0;
    while completed < WHILE_GATED {
        match next_event(&events) {
            CheckpointEvent::Completed(_) => completed += 1,
            CheckpointEvent::Aborted { id, reason } => {
                panic!("checkpoint {id} was aborted: {reason}")
            }
        }
    }
    gate.open();
    let report = bounded("join the job", move || handle.join()).expect("the job finishes");
    let ids: Vec<_> = report.checkpoints.iter().map(|c| c.id).collect();
    assert!(
        ids.len() > WHILE_GATED,
        "the job took {} checkpoints",
        ids.len()
    );
    let last = report.checkpoints.last().expect("checkpoints");
    assert!(last.is_final, "the last checkpoint is the final one");

    // Exactly the two newest complete checkpoints are left, with the older ones their
    // incremental snapshots build on, and nothing else.
    let store = CheckpointStore::open(&checkpoints).expect("open the store");
    let kept = with_their_chains(&store, &ids[ids.len() - 2..]);
    assert_holds_exactly(&store, &checkpoints, &kept);
    let statuses = store.scan().expect("scan");
    let (decision, manifest) = store.latest().expect("latest");
    assert_eq!(decision.latest, Some(last.id));
    assert!(decision.newer_corrupt.is_empty(), "{decision:?}");
    assert_eq!(
        manifest.expect("manifest of the latest").checkpoint,
        last.id
    );

    // The output is exact.
    let mut want: HashMap<String, u64> = HashMap::new();
    for i in 0..RECORDS {
        *want.entry(format!("k{}", i % KEYS)).or_default() += 1;
    }
    let runs = complete_runs(&read_published_counts(&out)).expect("each key's counts are 1..n");
    assert_same_map("output", &runs, &want);
    let output_before = output_snapshot(&out);

    // A second run with the same directories resumes from the final checkpoint: the job had
    // finished, so it runs nothing and changes nothing.
    let result = {
        let (checkpoints, out) = (checkpoints.clone(), out.clone());
        bounded("second run, same directories", move || {
            count_job(GeneratorSource::new(RECORDS, |i| i), &out).run(&config(&checkpoints))
        })
    };
    match result {
        Ok(report) => {
            assert_eq!(report.restored_from, Some(last.id));
            assert!(report.checkpoints.is_empty(), "{:?}", report.checkpoints);
        }
        other => panic!("expected the finished job to resume as finished, got {other:?}"),
    }
    assert_eq!(
        store.scan().expect("scan"),
        statuses,
        "checkpoints unchanged"
    );
    assert!(
        output_snapshot(&out) == output_before,
        "the resumed, finished run published nothing"
    );
    // With another output directory, it is refused: the checkpoint recorded the sink's
    // output in the first one.
    let fresh_out = dir.path().join("out-2");
    let result = {
        let (checkpoints, fresh_out) = (checkpoints.clone(), fresh_out.clone());
        bounded("second run, moved output", move || {
            count_job(GeneratorSource::new(RECORDS, |i| i), &fresh_out).run(&config(&checkpoints))
        })
    };
    match result {
        Err(JobError::SinkOpenFailed { source }) => {
            assert!(source.to_string().contains("cannot be moved"), "{source}")
        }
        other => panic!("expected a refusal of a moved output directory, got {other:?}"),
    }

    // A second run into the same output directory, with fresh checkpoints, is refused too.
    let fresh_checkpoints = dir.path().join("checkpoints-2");
    let result = {
        let (fresh_checkpoints, out) = (fresh_checkpoints.clone(), out.clone());
        bounded("second run, same output", move || {
            count_job(GeneratorSource::new(RECORDS, |i| i), &out).run(&config(&fresh_checkpoints))
        })
    };
    match result {
        Err(JobError::SinkOpenFailed { source }) => assert!(
            source.to_string().contains(&out.display().to_string()),
            "the error names the output directory: {source}"
        ),
        other => panic!("expected SinkOpenFailed, got {other:?}"),
    }
    assert_eq!(output_snapshot(&out), output_before, "output unchanged");
    if fresh_checkpoints.exists() {
        assert!(
            CheckpointStore::open(&fresh_checkpoints)
                .expect("open")
                .scan()
                .expect("scan")
                .is_empty(),
            "the refused run left no checkpoint behind"
        );
    }
}

/// Retention deletes on a thread of its own. While one delete is held in its middle (the
/// checkpoint's manifest removed, its files not), the coordinator goes on: further checkpoints
/// are triggered and completed, and a savepoint of the newest one is written whole. Released,
/// retention finishes before the job returns: the store then holds the final checkpoint and
/// what it builds on, and nothing else.
#[test]
fn the_coordinator_goes_on_while_a_delete_is_held() {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoints = dir.path().join("checkpoints");
    let out = dir.path().join("out");
    let savepoint_dir = dir.path().join("savepoint");
    let (events_tx, events) = crossbeam_channel::unbounded();
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    // Never sent on: dropping it (the release, or this test's unwinding) lets the delete go on.
    let (release, released) = crossbeam_channel::bounded::<()>(0);
    let held = AtomicBool::new(false);
    let injector = FailureInjector::new().on_retention_delete(move |id: CheckpointId| {
        if !held.swap(true, Ordering::Relaxed) {
            let _ = entered_tx.send(id);
            let _ = released.recv();
        }
    });

    let (source, mut gate) = gated(GeneratorSource::new(RECORDS, |i| i), |task| {
        let range = share(RECORDS, task.index, task.parallelism);
        range.start + (range.end - range.start) / 2
    });
    let handle = count_job(source, &out)
        .launch(
            &config(&checkpoints)
                .with_retained_checkpoints(1)
                .with_checkpoint_listener(events_tx)
                .with_failure_injector(injector),
        )
        .expect("launch the job");
    // Declared after the handle, so dropped before it: a failing assertion releases the
    // delete before the handle's drop joins the job (a coordinator waiting for the delete
    // would otherwise hang the test instead of failing it).
    let release = release;
    gate.wait_reached(PARALLELISM);
    let held_id = entered
        .recv_timeout(TIMEOUT)
        .expect("retention reaches a delete");
    let layout = CheckpointLayout::new(&checkpoints);
    let in_the_middle =
        || !layout.manifest_file(held_id).exists() && layout.checkpoint_dir(held_id).is_dir();
    assert!(
        in_the_middle(),
        "the hook runs between the manifest's removal and the files'"
    );

    // Whatever completed before now may have committed before the hold. The checkpoint after
    // the next one is triggered only once the next one is committed, so it runs entirely
    // while the delete is held.
    let before = handle.checkpoints().last().map_or(held_id, |c| c.id);
    let savepoint = handle.trigger_savepoint(&savepoint_dir);
    let target = CheckpointId(before.0 + 3);
    loop {
        match next_event(&events) {
            CheckpointEvent::Completed(stats) if stats.id >= target => break,
            CheckpointEvent::Completed(_) => {}
            CheckpointEvent::Aborted { id, reason } => {
                panic!("checkpoint {id} was aborted: {reason}")
            }
        }
    }
    let savepoint = savepoint
        .recv_timeout(TIMEOUT)
        .expect("the savepoint's outcome")
        .expect("the savepoint is written while a delete is held");
    assert!(savepoint.checkpoint > before, "{savepoint:?}");
    let (_, opened) = open_savepoint(&savepoint_dir).expect("the savepoint is whole");
    assert_eq!(opened.manifest.checkpoint, savepoint.checkpoint);
    assert!(
        in_the_middle(),
        "checkpoint {held_id} is still being deleted: the coordinator did not wait for it"
    );

    drop(release);
    gate.open();
    let report = bounded("join the job", move || handle.join()).expect("the job finishes");
    let last = report.checkpoints.last().expect("checkpoints");
    assert!(last.is_final);

    // Joined with the job: no delete is left, and only the final checkpoint and what it
    // builds on remain.
    let store = CheckpointStore::open(&checkpoints).expect("open the store");
    let kept = with_their_chains(&store, &[last.id]);
    assert!(!kept.contains(&held_id), "{kept:?}");
    assert_holds_exactly(&store, &checkpoints, &kept);
    let mut want: HashMap<String, u64> = HashMap::new();
    for i in 0..RECORDS {
        *want.entry(format!("k{}", i % KEYS)).or_default() += 1;
    }
    let runs = complete_runs(&read_published_counts(&out)).expect("each key's counts are 1..n");
    assert_same_map("output", &runs, &want);
}
