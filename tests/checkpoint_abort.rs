//! Checkpoint timeout and abort: while an operator is stuck inside `process_batch`, the
//! checkpoints in flight cannot complete; they are aborted after the timeout and their
//! directories removed. Once the operator goes on, later checkpoints complete, the job ends
//! with its final checkpoint, and state and output are exact.

mod common;

use common::{
    assert_same_map, bounded, complete_checkpoints, complete_runs, index_offset, keyed_state,
    next_event, read_published_counts, share, TIMEOUT,
};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use snapflow::checkpoint::{CheckpointId, CheckpointLayout, CheckpointStore};
use snapflow::engine::{CheckpointEvent, JobHandle};
use snapflow::prelude::*;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RECORDS: u64 = 400_000;
const PARALLELISM: usize = 2;
const KEYS: u64 = 100;
/// The record at which the counting operator gets stuck (in source task 0's share).
const STUCK_AT: u64 = 100_000;

fn key_of(i: u64) -> u64 {
    i % KEYS
}

/// Launches the job: a keyed running count that, at record [`STUCK_AT`], tells `stuck` and
/// waits for `release` before it goes on; checkpoints time out after 100 ms.
fn launch(
    checkpoints: &Path,
    out: &Path,
    events: Sender<CheckpointEvent>,
    stuck: Sender<()>,
    release: Receiver<()>,
) -> JobHandle {
    let config = JobConfig::default()
        .with_parallelism(PARALLELISM)
        .with_checkpointing(checkpoints, Duration::from_millis(20))
        .with_checkpoint_timeout(Duration::from_millis(100))
        .with_retained_checkpoints(1000)
        .with_checkpoint_listener(events);
    let job = Job::new("abort");
    job.source(GeneratorSource::new(RECORDS, |i| i))
        .uid("numbers")
        .key_by(|i: &u64| key_of(*i))
        .process(
            move |key: &u64, i: u64, count: &mut ValueState<u64>, out: &mut Output<(u64, u64)>| {
                if i == STUCK_AT {
                    let _ = stuck.send(());
                    release
                        .recv_timeout(TIMEOUT)
                        .map_err(|e| format!("never released: {e}"))?;
                }
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
    job.launch(&config).expect("launch the job")
}

/// The next aborted checkpoint; completed ones before it are fine.
fn next_abort(events: &Receiver<CheckpointEvent>) -> CheckpointId {
    loop {
        if let CheckpointEvent::Aborted { id, reason } = next_event(events) {
            assert!(
                reason.contains("not complete after"),
                "checkpoint {id} aborted for another reason: {reason}"
            );
            return id;
        }
    }
}

#[test]
fn stuck_checkpoints_are_aborted_and_a_later_one_completes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoints = dir.path().join("checkpoints");
    let out = dir.path().join("out");
    let (events_tx, events) = crossbeam_channel::unbounded();
    let (stuck_tx, stuck) = crossbeam_channel::unbounded();
    let (release, release_rx) = crossbeam_channel::bounded(1);
    let handle = launch(&checkpoints, &out, events_tx, stuck_tx, release_rx);
    // Declared after the handle, so dropped before it if the test fails: the stuck operator
    // then fails instead of waiting out its timeout while the handle's drop joins it.
    let release = release;
    let store = CheckpointStore::open(&checkpoints).expect("open the store");

    stuck
        .recv_timeout(TIMEOUT)
        .expect("the operator reaches the record it gets stuck at");
    // Checkpoints triggered now cannot complete: the first times out and is aborted, then the
    // next one. The coordinator removes a checkpoint's files before it triggers the next one.
    let first = next_abort(&events);
    let second = next_abort(&events);
    assert!(second > first);
    assert!(
        !store.layout().checkpoint_dir(first).exists(),
        "aborted checkpoint {first} left its directory"
    );
    release.send(()).expect("the operator waits for release");

    let report = bounded("join the job", move || handle.join()).expect("the job finishes");
    assert!(report.aborted_checkpoints >= 2, "{report:?}");
    let last = report.checkpoints.last().expect("completed checkpoints");
    assert!(last.is_final, "the final checkpoint is reported last");
    assert!(last.id > second, "a checkpoint after the aborts completed");
    let later: Vec<CheckpointId> = events
        .try_iter()
        .filter_map(|e| match e {
            CheckpointEvent::Completed(stats) => Some(stats.id),
            CheckpointEvent::Aborted { .. } => None,
        })
        .collect();
    assert_eq!(
        later.last(),
        Some(&last.id),
        "the listener saw the final checkpoint"
    );

    // On disk: only complete checkpoints, those the job reported, none of the aborted ones.
    let statuses = store.scan().expect("scan");
    let manifests = complete_checkpoints(&store);
    assert_eq!(
        statuses.len(),
        manifests.len(),
        "nothing in progress: {statuses:?}"
    );
    assert_eq!(
        manifests.iter().map(|m| m.checkpoint).collect::<Vec<_>>(),
        report.checkpoints.iter().map(|c| c.id).collect::<Vec<_>>()
    );
    assert!(!store.layout().checkpoint_dir(second).exists());

    // Each checkpoint's state is the count over its offsets; the final one over everything.
    let ranges: Vec<_> = (0..PARALLELISM)
        .map(|t| share(RECORDS, t, PARALLELISM))
        .collect();
    let mut next: Vec<u64> = ranges.iter().map(|r| r.start).collect();
    let mut counts: HashMap<u64, u64> = HashMap::new();
    for manifest in &manifests {
        for (t, next) in next.iter_mut().enumerate() {
            let offset = index_offset(manifest, "numbers", t as u32);
            assert!(offset >= *next && offset <= ranges[t].end);
            for i in *next..offset {
                *counts.entry(key_of(i)).or_default() += 1;
            }
            *next = offset;
        }
        let state: HashMap<u64, ValueState<u64>> = keyed_state(&store, manifest, "count");
        let got: HashMap<u64, u64> = state
            .into_iter()
            .map(|(k, v)| (k, *v.get().expect("stored states are set")))
            .collect();
        assert_same_map(
            &format!("checkpoint {}: counts", manifest.checkpoint),
            &got,
            &counts,
        );
    }
    assert_eq!(next, ranges.iter().map(|r| r.end).collect::<Vec<_>>());

    // The output is exact: every key's counts 1..n, n its number of records.
    let lines = read_published_counts(&out);
    assert_eq!(lines.len() as u64, RECORDS);
    let runs = complete_runs(&lines).expect("each key's counts are 1..n");
    let want: HashMap<String, u64> = counts.iter().map(|(k, n)| (format!("k{k}"), *n)).collect();
    assert_same_map("output", &runs, &want);
}

/// The checkpoint directories under `root`, whatever their state.
fn checkpoint_dirs(root: &Path) -> HashSet<CheckpointId> {
    std::fs::read_dir(root)
        .expect("list checkpoints")
        .filter_map(|entry| {
            let name = entry.expect("entry").file_name();
            name.to_str()
                .and_then(CheckpointLayout::parse_checkpoint_dir_name)
        })
        .collect()
}

#[test]
fn an_abort_event_comes_after_the_checkpoint_directory_is_removed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoints = dir.path().join("checkpoints");
    let (events_tx, events) = crossbeam_channel::unbounded();
    let (stuck_tx, stuck) = crossbeam_channel::unbounded();
    let (release, release_rx) = crossbeam_channel::bounded(1);
    let handle = launch(
        &checkpoints,
        &dir.path().join("out"),
        events_tx,
        stuck_tx,
        release_rx,
    );
    // Dropped before the handle if the test fails (see above).
    let release = release;
    let layout = CheckpointStore::open(&checkpoints)
        .expect("open the store")
        .layout()
        .clone();
    let mut pads: Vec<PathBuf> = (0..8)
        .map(|k| {
            let pad = dir.path().join(format!("pad-{k}"));
            std::fs::create_dir(&pad).expect("create a padding directory");
            // Named like snapshot files: the store removes only files of its own names (any
            // other would make it leave the directory in place).
            for n in 0..50 {
                std::fs::write(pad.join(format!("padding-{n}.snap")), b"x").expect("write padding");
            }
            pad
        })
        .collect();
    stuck
        .recv_timeout(TIMEOUT)
        .expect("the operator gets stuck");
    // The event says "its files were removed": check right away, for a few aborts in a row.
    // To make a wrong order show every time rather than now and then, each checkpoint
    // directory that appears from now on gets a directory of extra files moved into it (one
    // atomic rename, long before its abort 100 ms later), so that removing it takes a while.
    // This loop spins without sleeping, bounded by a deadline.
    let mut seen: HashSet<CheckpointId> = checkpoint_dirs(&checkpoints);
    let mut padded: HashSet<CheckpointId> = HashSet::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut checked = 0;
    while checked < 3 {
        assert!(
            Instant::now() < deadline,
            "too few aborts within {TIMEOUT:?}"
        );
        match events.try_recv() {
            Ok(CheckpointEvent::Aborted { id, .. }) => {
                if padded.contains(&id) {
                    assert!(
                        !layout.checkpoint_dir(id).exists(),
                        "the abort event of checkpoint {id} came while its directory still existed"
                    );
                    checked += 1;
                }
                continue;
            }
            Ok(CheckpointEvent::Completed(_)) | Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => panic!("the job ended"),
        }
        for id in checkpoint_dirs(&checkpoints) {
            if seen.insert(id) {
                if let Some(pad) = pads.pop() {
                    // File by file: the store deletes no directory it did not write.
                    let into = layout.checkpoint_dir(id);
                    let moved = std::fs::read_dir(&pad).is_ok_and(|files| {
                        files
                            .flatten()
                            .all(|f| std::fs::rename(f.path(), into.join(f.file_name())).is_ok())
                    });
                    if moved {
                        padded.insert(id);
                    }
                }
            }
        }
    }
    release.send(()).expect("the operator waits for release");
    bounded("join the job", move || handle.join()).expect("the job finishes");
}
