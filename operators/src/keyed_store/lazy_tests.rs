//! Lazy restore of [`KeyedStore`]: a store restored lazily, then touched, written and frozen
//! in any order, holds and snapshots exactly what an eager restore of the same state holds.

use super::*;
use crate::state::ValueState;
use proptest::prelude::*;
use snapflow_checkpoint::{key_group_of_hash, task_for_key_group, KeyGroup, KeyGroupRange};
use std::collections::{BTreeMap, BTreeSet};

type Store = KeyedStore<String, ValueState<u64>>;
type Model = BTreeMap<String, u64>;

const MAX: u32 = 16;

/// The restored checkpoint's id in these tests.
const RESTORED: u64 = 99;

fn key(k: u8) -> String {
    format!("k{k}")
}

fn group_of(key: &str) -> u32 {
    key_group_of_hash(key_hash(key), MAX).0
}

fn request(checkpoint: u64, base: Option<u64>) -> SnapshotRequest {
    SnapshotRequest {
        checkpoint: CheckpointId(checkpoint),
        base: base.map(CheckpointId),
    }
}

/// Writes `v` to key `k` (0 clears it), or only reads it for `v` = 4.
fn write(store: &mut Store, model: &mut Model, k: u8, v: u64) {
    let seen = store.with(key(k), |_, s| {
        let seen = s.get().copied();
        match v {
            0 => s.clear(),
            4 => {}
            v => s.set(v),
        }
        seen
    });
    assert_eq!(
        seen,
        model.get(&key(k)).copied(),
        "{} before the write",
        key(k)
    );
    match v {
        0 => {
            model.remove(&key(k));
        }
        4 => {}
        v => {
            model.insert(key(k), v);
        }
    }
}

fn contents(store: &mut Store) -> Model {
    store
        .iter()
        .map(|(k, s)| (k.clone(), *s.get().expect("non-empty")))
        .collect()
}

/// The state old tasks of `old_p` write over `epochs`, each checkpoint full or (`true`) a
/// delta over the one before: their chains, and the state at the last checkpoint.
fn old_chains(epochs: &[(bool, Vec<(u8, u64)>)], old_p: u32) -> (Vec<Vec<Vec<u8>>>, Model) {
    let mut stores: Vec<Store> = (0..old_p).map(|_| Store::new()).collect();
    let mut chains: Vec<Vec<Vec<u8>>> = vec![Vec::new(); old_p as usize];
    let mut model = Model::new();
    for (i, (incremental, ops)) in epochs.iter().enumerate() {
        let id = i as u64 + 1;
        for &(k, v) in ops {
            let task = task_for_key_group(KeyGroup(group_of(&key(k))), old_p, MAX);
            write(&mut stores[task as usize], &mut model, k, v);
        }
        for (t, store) in stores.iter_mut().enumerate() {
            let base = (*incremental && id > 1).then_some(id - 1);
            let frozen = store.freeze(request(id, base), MAX);
            if frozen.delta_of().is_none() {
                chains[t].clear();
            }
            chains[t].push(frozen.serialize().expect("serialize").expect("bytes"));
            store.checkpoint_complete(CheckpointId(id));
        }
    }
    (chains, model)
}

/// What a new task does after the restore: touch key `k` with `v` (as in [`write`]), or
/// freeze a full snapshot (`Full`) or a delta over the last checkpoint (`Delta`).
#[derive(Clone, Debug)]
enum Step {
    Write(u8, u64),
    Full,
    Delta,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            8 => (0u8..40, 0u64..5).prop_map(|(k, v)| Step::Write(k, v)),
            1 => Just(Step::Full),
            1 => Just(Step::Delta),
        ],
        0..60,
    )
}

/// A frozen snapshot and what it must hold.
struct Expected {
    frozen: FrozenSnapshot,
    /// The task's state at the freeze.
    at: Model,
    /// The keys touched since the base, for a delta: a delta holds no other key.
    touched: BTreeSet<String>,
}

fn decode_all(bytes: &[u8]) -> Vec<(String, Option<u64>)> {
    let all = KeyGroupRange { groups: 0..MAX };
    decode_keyed_changes::<String, ValueState<u64>>(bytes, &all, MAX)
        .expect("decode")
        .entries
        .into_iter()
        .map(|(k, s)| (k, s.map(|s| *s.get().expect("non-empty"))))
        .collect()
}

/// Runs `steps` on a task of `new_p` restored lazily from `chains`, checking every freeze
/// (serialized only at the end, after the writes that followed it) and the final state.
fn run_task(
    chains: &[Vec<Vec<u8>>],
    restored_model: &Model,
    task: u32,
    new_p: u32,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let range = KeyGroupRange::for_task(task, new_p, MAX);
    let state = RestoredState::from_chains(CheckpointId(RESTORED), range.clone(), chains.to_vec());
    let mut store = Store::new();
    store.restore(&state, MAX).expect("restore");
    drop(state);
    let mut model: Model = restored_model
        .iter()
        .filter(|(k, _)| range.groups.contains(&group_of(k)))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let mut at_checkpoint = BTreeMap::from([(RESTORED, model.clone())]);
    let mut last = RESTORED;
    let mut touched = BTreeSet::new();
    let mut expected = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        match *step {
            // The router sends a task only the keys of its key groups.
            Step::Write(k, v) if range.groups.contains(&group_of(&key(k))) => {
                write(&mut store, &mut model, k, v);
                touched.insert(key(k));
            }
            Step::Write(..) => {}
            Step::Full | Step::Delta => {
                let id = RESTORED + 1 + i as u64;
                let base = matches!(step, Step::Delta).then_some(last);
                let frozen = store.freeze(request(id, base), MAX);
                prop_assert_eq!(frozen.delta_of(), base.map(CheckpointId));
                store.checkpoint_complete(CheckpointId(id));
                expected.push((
                    base,
                    Expected {
                        frozen,
                        at: model.clone(),
                        touched: std::mem::take(&mut touched),
                    },
                ));
                at_checkpoint.insert(id, model.clone());
                last = id;
            }
        }
    }
    prop_assert_eq!(store.len(), model.len());
    prop_assert_eq!(&contents(&mut store), &model);
    for (
        base,
        Expected {
            frozen,
            at,
            touched,
        },
    ) in expected
    {
        let entries = decode_all(&frozen.serialize().expect("serialize").expect("bytes"));
        match base {
            None => {
                let full: Model = entries
                    .into_iter()
                    .map(|(k, v)| (k, v.expect("a full snapshot has no removals")))
                    .collect();
                prop_assert_eq!(full, at);
            }
            Some(base) => {
                let mut applied = at_checkpoint[&base].clone();
                for (k, v) in entries {
                    prop_assert!(touched.contains(&k), "{} in a delta, not touched", k);
                    match v {
                        Some(v) => applied.insert(k, v),
                        None => applied.remove(&k),
                    };
                }
                prop_assert_eq!(applied, at);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A lazily restored store, touched in a random order with random writes and frozen
    /// (full and delta) at random points, holds and snapshots exactly the state an eager
    /// restore of the same chains gives, at another parallelism too.
    #[test]
    fn a_lazy_restore_behaves_as_an_eager_one(
        epochs in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec((0u8..40, 0u64..5), 0..60)),
            1..6,
        ),
        old_p in 1u32..4,
        new_p in 1u32..5,
        steps in steps(),
    ) {
        let (chains, model) = old_chains(&epochs, old_p);
        for task in 0..new_p {
            run_task(&chains, &model, task, new_p, &steps)?;
        }
    }
}

fn restored_store(keys: u8) -> (Store, Model) {
    let mut model = Model::new();
    let mut old = Store::new();
    for k in 0..keys {
        write(&mut old, &mut model, k, 1 + u64::from(k % 3));
    }
    let bytes = old.snapshot(MAX).expect("snapshot");
    let all = KeyGroupRange { groups: 0..MAX };
    let state = RestoredState::from_payloads(CheckpointId(RESTORED), all, vec![bytes]);
    let mut store = Store::new();
    store.restore(&state, MAX).expect("restore");
    (store, model)
}

#[test]
fn a_restore_decodes_one_key_group_and_a_touch_one_more() {
    let (mut store, mut model) = restored_store(40);
    let groups: BTreeSet<u32> = model.keys().map(|k| group_of(k)).collect();
    assert!(groups.len() > 3, "{groups:?}");
    // The restore decoded the lowest key group only (its trial decode).
    assert_eq!(store.pending_groups(), groups.len() - 1);
    let untouched = *groups.iter().last().expect("groups");
    let k = (0..40u8)
        .find(|&k| group_of(&key(k)) == untouched)
        .expect("a key of the group");
    write(&mut store, &mut model, k, 4);
    assert_eq!(store.pending_groups(), groups.len() - 2);
    // Touching it again, or any key of the same group, decodes nothing more.
    write(&mut store, &mut model, k, 7);
    assert_eq!(store.pending_groups(), groups.len() - 2);
    // A delta needs nothing from the pending groups; a full snapshot decodes them on its own.
    let delta = store.freeze(request(RESTORED + 1, Some(RESTORED)), MAX);
    let full = store.freeze(request(RESTORED + 2, None), MAX);
    assert_eq!(store.pending_groups(), groups.len() - 2);
    assert_eq!(
        decode_all(&delta.serialize().expect("delta").expect("bytes")),
        vec![(key(k), Some(7))]
    );
    let full: Model = decode_all(&full.serialize().expect("full").expect("bytes"))
        .into_iter()
        .map(|(k, v)| (k, v.expect("state")))
        .collect();
    assert_eq!(full, model);
    // `len` is exact: it decodes the rest.
    assert_eq!(store.len(), model.len());
    assert_eq!(store.pending_groups(), 0);
    assert_eq!(contents(&mut store), model);
}

/// A store restored from a snapshot of 40 keys whose last key group's section is damaged
/// (its first key's length prefix claims more bytes than the section holds), with that key
/// group; the restore decodes only the first group, so it succeeds.
fn restored_with_a_damaged_last_group() -> (Store, u32) {
    let mut model = Model::new();
    let mut old = Store::new();
    for k in 0..40 {
        write(&mut old, &mut model, k, 1);
    }
    let mut bytes = old.snapshot(MAX).expect("snapshot");
    let index = snapflow_checkpoint::read_keyed_index(&bytes, MAX)
        .expect("index")
        .expect("format 3");
    let last = index.sections.last().expect("sections");
    bytes[last.bytes.start..last.bytes.start + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let all = KeyGroupRange { groups: 0..MAX };
    let state = RestoredState::from_payloads(CheckpointId(RESTORED), all, vec![bytes]);
    let mut store = Store::new();
    store
        .restore(&state, MAX)
        .expect("restore reads only the index");
    (store, last.group)
}

#[test]
#[should_panic(expected = "does not decode, although its file's checksum and type names matched")]
fn a_section_that_fails_to_decode_at_first_touch_panics_naming_the_state() {
    let (mut store, damaged) = restored_with_a_damaged_last_group();
    let k = (0..40u8)
        .find(|&k| group_of(&key(k)) == damaged)
        .expect("a key of the group");
    store.with(key(k), |_, s| s.set(1));
}

#[test]
fn a_full_snapshot_of_damaged_pending_state_is_an_error() {
    let (mut store, damaged) = restored_with_a_damaged_last_group();
    let error = store
        .freeze(request(RESTORED + 1, None), MAX)
        .serialize()
        .expect_err("damaged");
    assert!(
        error.to_string().contains(&format!("key group {damaged}")),
        "{error}"
    );
}
