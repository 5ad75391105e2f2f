//! Barrier alignment with a slow input: a keyed co-process fed by a fast source (two tasks
//! that never pause) and a slow one (records handed out one at a time by the test). Every
//! completed checkpoint must hold exactly the counts over the prefixes of both inputs that its
//! recorded offsets name: a barrier that let records of the fast input past before the slow
//! input's barrier arrived would show up as extra counts.

mod common;

use common::{
    assert_same_map, bounded, complete_checkpoints, index_offset, keyed_state, next_event,
};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use snapflow::checkpoint::CheckpointStore;
use snapflow::engine::{CheckpointEvent, ReadStatus, Source, SourcePosition, SourceReader};
use snapflow::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const FAST_TASKS: usize = 2;
const KEYS: u64 = 500;
/// Records of the slow input, each in its own checkpoint.
const SLOW_RECORDS: u64 = 12;

/// The key of record `i` of fast task `task`.
fn fast_key(task: u32, i: u64) -> u64 {
    (i.wrapping_mul(2_654_435_761) + u64::from(task) * 17) % KEYS
}

/// The key of the slow input's record `j`.
fn slow_key(j: u64) -> u64 {
    j * 37 % KEYS
}

fn index_position(next: u64) -> Option<SourcePosition> {
    Some(SourcePosition {
        offset: next.to_le_bytes().to_vec(),
        description: format!("record {next}"),
    })
}

/// The fast input: task `t` emits `(t, 0), (t, 1), ...` as fast as it can until `stop` is set.
struct Endless {
    stop: Arc<AtomicBool>,
}

struct EndlessReader {
    task: u32,
    next: u64,
    stop: Arc<AtomicBool>,
}

impl Source for Endless {
    type Out = (u32, u64);

    fn create_reader(
        &self,
        task: &TaskInfo,
    ) -> Result<Box<dyn SourceReader<(u32, u64)>>, BoxError> {
        Ok(Box::new(EndlessReader {
            task: task.index as u32,
            next: 0,
            stop: self.stop.clone(),
        }))
    }
}

impl SourceReader<(u32, u64)> for EndlessReader {
    fn read_batch(
        &mut self,
        batch: &mut Vec<(u32, u64)>,
        max: usize,
    ) -> Result<ReadStatus, BoxError> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(ReadStatus::Exhausted);
        }
        let end = self.next + max as u64;
        batch.extend((self.next..end).map(|i| (self.task, i)));
        self.next = end;
        Ok(ReadStatus::More)
    }

    fn position(&self) -> Option<SourcePosition> {
        index_position(self.next)
    }
}

/// The slow input: one task that emits what the test sends, and ends when the test drops its
/// sender. While nothing arrives it returns empty batches (after a short bounded wait), so the
/// source task keeps taking checkpoint triggers.
struct Trickle {
    records: Receiver<u64>,
}

struct TrickleReader {
    records: Receiver<u64>,
    emitted: u64,
}

impl Source for Trickle {
    type Out = u64;

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<u64>>, BoxError> {
        assert_eq!(task.parallelism, 1, "the slow input runs as one task");
        Ok(Box::new(TrickleReader {
            records: self.records.clone(),
            emitted: 0,
        }))
    }
}

impl SourceReader<u64> for TrickleReader {
    fn read_batch(&mut self, batch: &mut Vec<u64>, max: usize) -> Result<ReadStatus, BoxError> {
        match self.records.recv_timeout(Duration::from_millis(5)) {
            Ok(j) => batch.push(j),
            Err(RecvTimeoutError::Timeout) => return Ok(ReadStatus::More),
            Err(RecvTimeoutError::Disconnected) => return Ok(ReadStatus::Exhausted),
        }
        batch.extend(self.records.try_iter().take(max - 1));
        self.emitted += batch.len() as u64;
        Ok(ReadStatus::More)
    }

    fn position(&self) -> Option<SourcePosition> {
        index_position(self.emitted)
    }
}

/// Per key: records of the fast input, records of the slow input.
type Counts = (u64, u64);

#[test]
fn checkpoints_align_a_fast_input_with_a_slow_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoints = dir.path().join("checkpoints");
    let (events_tx, events) = crossbeam_channel::unbounded();
    let (slow_tx, slow_rx) = crossbeam_channel::unbounded();
    let stop_fast = Arc::new(AtomicBool::new(false));
    let config = JobConfig::default()
        .with_parallelism(FAST_TASKS)
        .with_checkpointing(&checkpoints, Duration::from_millis(10))
        .with_retained_checkpoints(1000)
        .with_checkpoint_listener(events_tx);

    let handle = {
        let job = Job::new("alignment");
        let fast = job
            .source(Endless {
                stop: stop_fast.clone(),
            })
            .uid("fast")
            .key_by(|&(task, i): &(u32, u64)| fast_key(task, i));
        let slow = job
            .source(Trickle { records: slow_rx })
            .uid("slow")
            .parallelism(1)
            .key_by(|&j: &u64| slow_key(j));
        fast.connect(slow)
            .process(
                |key: &u64,
                 record: Either<(u32, u64), u64>,
                 state: &mut ValueState<Counts>,
                 out: &mut Output<(u64, Counts)>| {
                    let mut counts = state.get().copied().unwrap_or_default();
                    match record {
                        Either::Left(_) => counts.0 += 1,
                        Either::Right(_) => counts.1 += 1,
                    }
                    state.set(counts);
                    out.push((*key, counts));
                    Ok(())
                },
            )
            .uid("join")
            .sink(DiscardSink::new());
        job.launch(&config).expect("launch the job")
    };
    // Only the job holds the listener now: if it fails, waiting for events ends at once.
    drop(config);

    // Hand out the slow input one record at a time; after each, wait until a completed
    // checkpoint covers it and has seen the fast input move on since the previous round.
    let store = CheckpointStore::open(&checkpoints).expect("open the store");
    let fast_offsets = |manifest: &_| -> Vec<u64> {
        (0..FAST_TASKS)
            .map(|t| index_offset(manifest, "fast", t as u32))
            .collect()
    };
    let mut fast_before = vec![0; FAST_TASKS];
    for j in 0..SLOW_RECORDS {
        slow_tx.send(j).expect("the slow source is running");
        loop {
            match next_event(&events) {
                CheckpointEvent::Completed(stats) => {
                    let manifest = store.load_manifest(stats.id).expect("manifest");
                    let fast = fast_offsets(&manifest);
                    if index_offset(&manifest, "slow", 0) > j
                        && fast
                            .iter()
                            .zip(&fast_before)
                            .all(|(now, before)| now > before)
                    {
                        fast_before = fast;
                        break;
                    }
                }
                CheckpointEvent::Aborted { id, reason } => {
                    panic!("checkpoint {id} was aborted: {reason}")
                }
            }
        }
    }
    drop(slow_tx);
    stop_fast.store(true, Ordering::Relaxed);
    let report = bounded("join the job", move || handle.join()).expect("the job finishes");
    assert!(report.checkpoints.last().is_some_and(|c| c.is_final));

    // Check every checkpoint, oldest first, against sequential counts over its prefixes.
    let manifests = complete_checkpoints(&store);
    assert_eq!(
        manifests.iter().map(|m| m.checkpoint).collect::<Vec<_>>(),
        report.checkpoints.iter().map(|c| c.id).collect::<Vec<_>>(),
        "every completed checkpoint is on disk"
    );
    let mut fast_next = [0u64; FAST_TASKS];
    let mut slow_next = 0u64;
    let mut counts: HashMap<u64, Counts> = HashMap::new();
    // The fast offsets of the checkpoints that first covered each slow record.
    let mut trickle: Vec<(u64, [u64; FAST_TASKS])> = Vec::new();
    for manifest in &manifests {
        let id = manifest.checkpoint;
        assert_eq!(
            manifest.source_offsets.len(),
            FAST_TASKS + 1,
            "checkpoint {id}: offsets {:?}",
            manifest.source_offsets
        );
        for (t, next) in fast_next.iter_mut().enumerate() {
            let offset = index_offset(manifest, "fast", t as u32);
            assert!(offset >= *next, "checkpoint {id}: fast task {t} went back");
            for i in *next..offset {
                counts.entry(fast_key(t as u32, i)).or_default().0 += 1;
            }
            *next = offset;
        }
        let offset = index_offset(manifest, "slow", 0);
        assert!(
            (slow_next..=SLOW_RECORDS).contains(&offset),
            "checkpoint {id}: slow offset {offset} after {slow_next}"
        );
        if offset > slow_next {
            trickle.push((offset, fast_next));
        }
        for j in slow_next..offset {
            counts.entry(slow_key(j)).or_default().1 += 1;
        }
        slow_next = offset;

        let state: HashMap<u64, ValueState<Counts>> = keyed_state(&store, manifest, "join");
        let got: HashMap<u64, Counts> = state
            .into_iter()
            .map(|(k, v)| (k, *v.get().expect("stored states are set")))
            .collect();
        assert_same_map(
            &format!(
                "checkpoint {id} (fast offsets {fast_next:?}, slow offset {slow_next}): counts"
            ),
            &got,
            &counts,
        );
    }
    assert_eq!(
        slow_next, SLOW_RECORDS,
        "the final checkpoint has all slow records"
    );

    // The slow records came one per checkpoint while the fast input kept moving.
    assert_eq!(
        trickle.iter().map(|(slow, _)| *slow).collect::<Vec<_>>(),
        (1..=SLOW_RECORDS).collect::<Vec<_>>(),
        "each slow record was first covered by its own checkpoint"
    );
    let (first, last) = (trickle[0].1, trickle[trickle.len() - 1].1);
    assert!(
        first.iter().zip(&last).all(|(a, b)| a < b),
        "the fast input moved on while the slow one trickled: {first:?} then {last:?}"
    );
    eprintln!(
        "{} checkpoints, fast records {:?}, longest alignment {:?}",
        manifests.len(),
        fast_next,
        report.checkpoints.iter().map(|c| c.longest_alignment).max()
    );
}

/// A slow input's records reach a keyed operator while the input is idle, not only at the next
/// barrier: `JobConfig::with_batch_size` promises that a partly filled batch is sent "earlier
/// when the sending task would otherwise wait for input".
#[test]
fn an_idle_slow_input_still_delivers_its_records() {
    let (slow_tx, slow_rx) = crossbeam_channel::unbounded();
    let (seen_tx, seen) = crossbeam_channel::unbounded();
    let handle = {
        let job = Job::new("idle-input");
        job.source(Trickle { records: slow_rx })
            .parallelism(1)
            .key_by(|&j: &u64| slow_key(j))
            .process(
                move |_: &u64, j: u64, _: &mut ValueState<u64>, _: &mut Output<u64>| {
                    let _ = seen_tx.send(j);
                    Ok(())
                },
            )
            .sink(DiscardSink::new());
        // No periodic checkpoints: no barrier comes to flush the source's output.
        job.launch(&JobConfig::default()).expect("launch the job")
    };
    slow_tx.send(7).expect("the source is running");
    let delivered = seen.recv_timeout(common::TIMEOUT);
    drop(slow_tx);
    bounded("join the job", move || handle.join()).expect("the job finishes");
    assert_eq!(
        delivered,
        Ok(7),
        "the record reached the operator while its source was idle"
    );
}
