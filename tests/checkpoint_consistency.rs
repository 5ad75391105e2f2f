//! Snapshots taken while state keeps changing are consistent: for every completed checkpoint,
//! the keyed state on disk equals a sequential count over exactly the prefix of each source
//! task's input that the checkpoint's recorded offsets name.

mod common;

use common::{assert_same_map, bounded, complete_checkpoints, index_offset, keyed_state, share};
use snapflow::checkpoint::CheckpointStore;
use snapflow::engine::CheckpointEvent;
use snapflow::prelude::*;
use std::collections::HashMap;
use std::time::Duration;

/// Large enough that the job runs through many 20 ms checkpoint intervals.
const RECORDS: u64 = 16_000_000;
const PARALLELISM: usize = 2;
const KEYS: u64 = 1000;

/// A skewed key: half of the records fall on ten hot keys, the rest spread over all keys.
fn key_of(i: u64) -> u64 {
    if i.is_multiple_of(2) {
        (i / 2) % 10
    } else {
        (i / 2).wrapping_mul(2_654_435_761) % KEYS
    }
}

#[test]
fn every_checkpoint_holds_the_counts_of_exactly_its_source_prefixes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoints = dir.path().join("checkpoints");
    let (events_tx, events) = crossbeam_channel::unbounded();
    let config = JobConfig::default()
        .with_parallelism(PARALLELISM)
        .with_checkpointing(&checkpoints, Duration::from_millis(20))
        .with_retained_checkpoints(1000)
        .with_checkpoint_listener(events_tx);

    let report = bounded("keyed count with checkpoints", move || {
        let job = Job::new("consistency");
        job.source(GeneratorSource::new(RECORDS, |i| i))
            .uid("numbers")
            .key_by(|i: &u64| key_of(*i))
            .process(
                |key: &u64, _i: u64, count: &mut ValueState<u64>, out: &mut Output<(u64, u64)>| {
                    let n = count.get().copied().unwrap_or(0) + 1;
                    count.set(n);
                    out.push((*key, n));
                    Ok(())
                },
            )
            .uid("count")
            .sink(DiscardSink::new());
        job.run(&config)
    })
    .expect("the job finishes");

    // The listener saw every completed checkpoint, in order, and nothing was aborted.
    let mut completed = Vec::new();
    for event in events.try_iter() {
        match event {
            CheckpointEvent::Completed(stats) => completed.push(stats),
            CheckpointEvent::Aborted { id, reason } => {
                panic!("checkpoint {id} was aborted: {reason}")
            }
        }
    }
    assert_eq!(
        completed, report.checkpoints,
        "listener and job report agree"
    );
    let last = report.checkpoints.last().expect("a final checkpoint");
    assert!(last.is_final, "the last checkpoint is the final one");
    assert_eq!(
        report.checkpoints.iter().filter(|c| c.is_final).count(),
        1,
        "exactly one final checkpoint"
    );

    // All of them are on disk (none was deleted: 1000 are retained).
    let store = CheckpointStore::open(&checkpoints).expect("open the store");
    let manifests = complete_checkpoints(&store);
    assert_eq!(
        manifests.iter().map(|m| m.checkpoint).collect::<Vec<_>>(),
        report.checkpoints.iter().map(|c| c.id).collect::<Vec<_>>(),
        "every completed checkpoint is on disk"
    );

    // Walk the checkpoints oldest first, counting sequentially over each task's input up to
    // the checkpoint's offsets.
    let ranges: Vec<_> = (0..PARALLELISM)
        .map(|t| share(RECORDS, t, PARALLELISM))
        .collect();
    let mut next: Vec<u64> = ranges.iter().map(|r| r.start).collect();
    let mut counts = vec![0u64; KEYS as usize];
    let mut mid_run = Vec::new();
    for manifest in &manifests {
        let id = manifest.checkpoint;
        assert_eq!(
            manifest.source_offsets.len(),
            PARALLELISM,
            "checkpoint {id}: one offset per source task: {:?}",
            manifest.source_offsets
        );
        let offsets: Vec<u64> = (0..PARALLELISM)
            .map(|t| index_offset(manifest, "numbers", t as u32))
            .collect();
        for (t, &offset) in offsets.iter().enumerate() {
            assert!(
                ranges[t].contains(&offset) || offset == ranges[t].end,
                "checkpoint {id}: task {t} offset {offset} outside {:?}",
                ranges[t]
            );
            assert!(
                offset >= next[t],
                "checkpoint {id}: task {t} offset {offset} is before the previous checkpoint's {}",
                next[t]
            );
            for i in next[t]..offset {
                counts[key_of(i) as usize] += 1;
            }
            next[t] = offset;
        }
        let want: HashMap<u64, u64> = counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(k, &n)| (k as u64, n))
            .collect();
        let state: HashMap<u64, ValueState<u64>> = keyed_state(&store, manifest, "count");
        let got: HashMap<u64, u64> = state
            .into_iter()
            .map(|(k, v)| (k, *v.get().expect("stored states are set")))
            .collect();
        assert_same_map(
            &format!("checkpoint {id} (offsets {offsets:?}): counts"),
            &got,
            &want,
        );
        let started = offsets.iter().zip(&ranges).any(|(o, r)| *o > r.start);
        let finished = offsets.iter().zip(&ranges).all(|(o, r)| *o == r.end);
        if started && !finished {
            mid_run.push(offsets);
        }
    }

    // The final checkpoint covers all input: its state is the full count.
    assert_eq!(
        next,
        ranges.iter().map(|r| r.end).collect::<Vec<_>>(),
        "the final checkpoint's offsets are the ends of the tasks' ranges"
    );
    let mut full = vec![0u64; KEYS as usize];
    for i in 0..RECORDS {
        full[key_of(i) as usize] += 1;
    }
    assert_eq!(counts, full, "the final checkpoint holds the full count");

    // Snapshots were taken while the state changed: several checkpoints cut the input in the
    // middle, each at a different place.
    mid_run.dedup();
    assert!(
        mid_run.len() >= 3,
        "only {} checkpoints were taken mid-run ({} in all): make the job bigger",
        mid_run.len(),
        manifests.len()
    );
    eprintln!(
        "{} checkpoints, {} mid-run, longest {:?}",
        manifests.len(),
        mid_run.len(),
        report.checkpoints.iter().map(|c| c.duration).max()
    );
}
