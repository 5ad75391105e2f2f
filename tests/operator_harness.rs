//! One operator instance at a time, through the harness: no job, no threads. Checks what an
//! operator emits, and that an instance restored from a snapshot (at the same or another
//! key-group range) carries on exactly as the original did.

use snapflow::checkpoint::{key_group_of_hash, key_hash, CheckpointId, KeyGroupRange};
use snapflow::engine::testing::OneInputHarness;
use snapflow::operators::testing::{keyed_process_harness, keyed_state_entries, map_harness};
use snapflow::prelude::*;

const MAX_PARALLELISM: u32 = 128;

type Count = ValueState<u64>;

/// A keyed running count: emits `(word, occurrences so far)` for every word.
fn counter() -> OneInputHarness<String, (String, u64)> {
    keyed_process_harness(
        |word: &String| word.clone(),
        |word: &String, _: String, n: &mut Count, out: &mut Output<(String, u64)>| {
            let next = n.get().copied().unwrap_or(0) + 1;
            n.set(next);
            out.push((word.clone(), next));
            Ok(())
        },
        MAX_PARALLELISM,
    )
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn all_groups() -> KeyGroupRange {
    KeyGroupRange::for_task(0, 1, MAX_PARALLELISM)
}

fn sorted_state(snapshot: &[u8]) -> Vec<(String, Count)> {
    let mut entries: Vec<(String, Count)> = keyed_state_entries(snapshot, MAX_PARALLELISM).unwrap();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

#[test]
fn stateless_map_emits_one_record_per_input_in_order() {
    let mut harness = map_harness(|x: u32| x * 10);
    harness.open().unwrap();
    harness.process(vec![1, 2, 3]).unwrap();
    harness.process((4..=40).collect()).unwrap();
    assert_eq!(harness.snapshot(CheckpointId(1)).unwrap(), None);
    harness.close().unwrap();
    let want: Vec<u32> = (1..=40).map(|x| x * 10).collect();
    assert_eq!(harness.take_output(), want);
}

#[test]
fn restored_keyed_count_emits_what_the_original_emitted_after_the_snapshot() {
    let before = words("a b a c b a");
    let after = words("a c d a b b d");

    let mut original = counter();
    original.open().unwrap();
    original.process(before).unwrap();
    let snapshot = original.snapshot(CheckpointId(1)).unwrap().unwrap();
    original.take_output();
    original.process(after.clone()).unwrap();
    let original_after = original.take_output();
    assert_eq!(original_after[0], ("a".to_owned(), 4));

    let mut restored = counter();
    restored
        .restore_from(CheckpointId(1), all_groups(), vec![snapshot])
        .unwrap();
    restored.open().unwrap();
    restored.process(after).unwrap();
    assert_eq!(restored.take_output(), original_after);
}

#[test]
fn restoring_into_two_key_group_ranges_splits_the_state_without_loss() {
    let mut original = counter();
    original.open().unwrap();
    let text: Vec<String> = (0..200).map(|i| format!("w{}", i % 37)).collect();
    original.process(text).unwrap();
    let snapshot = original.snapshot(CheckpointId(1)).unwrap().unwrap();
    let whole = sorted_state(&snapshot);
    assert_eq!(whole.len(), 37);

    let mut union = Vec::new();
    for task in 0..2 {
        let groups = KeyGroupRange::for_task(task, 2, MAX_PARALLELISM);
        let mut half = counter();
        half.restore_from(CheckpointId(1), groups.clone(), vec![snapshot.clone()])
            .unwrap();
        half.open().unwrap();
        let state = sorted_state(&half.snapshot(CheckpointId(2)).unwrap().unwrap());
        assert!(!state.is_empty(), "task {task} got no keys");
        for (word, _) in &state {
            assert!(groups.contains(key_group_of_hash(key_hash(word), MAX_PARALLELISM)));
        }
        union.extend(state);
    }
    union.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(union, whole);
}
