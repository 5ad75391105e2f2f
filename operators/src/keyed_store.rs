//! [`KeyedStore`]: the states of every key one task owns, with copy-on-write snapshots and
//! incremental checkpoints.
//!
//! The keys are spread over [`SHARDS`] hash maps by their [`key_hash`]. At a barrier the
//! store only *freezes* ([`KeyedStore::freeze`]): each shard's map moves behind an `Arc` that
//! the snapshot shares, which costs one allocation per shard and copies nothing. The first
//! write to a shard after that takes it back: without a copy when the snapshot is already
//! written (the `Arc` is unique again), with one copy of that shard otherwise. Serializing the
//! frozen shards runs on the snapshot pool, so the task's thread is blocked only for the
//! freeze.
//!
//! Incremental checkpoints: every entry carries the *epoch* in which it was last written (an
//! epoch is the time between two barriers), every removal is logged with its epoch, and each
//! shard remembers its newest write. A delta over the snapshot of checkpoint `b`, frozen at
//! the end of epoch `e`, holds the entries written after `e` and tombstones for keys removed
//! after `e`, skipping shards not written since. Restoring reads the full snapshot and applies
//! the deltas in order ([`KeyedStore::restore`]).

use crate::state::KeyedState;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::de::DeserializeOwned;
use serde::Serialize;
use snapflow_checkpoint::{
    decode_keyed_changes, encode_keyed_changes, key_hash, keyed_state_types, CheckpointId,
    StateTypes,
};
use snapflow_engine::{BoxError, FrozenSnapshot, Key, RestoredState, SnapshotRequest};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How many maps the keys are spread over: the unit a write after a barrier copies while
/// the snapshot still holds it (1/64 of the task's state).
pub(crate) const SHARDS: usize = 64;

/// One key's state and the epoch it was last written in.
#[derive(Clone, Debug)]
struct Versioned<S> {
    state: S,
    epoch: u64,
}

/// The keys of one shard.
#[derive(Clone, Debug)]
struct ShardData<K, S> {
    states: FxHashMap<K, Versioned<S>>,
    /// Keys whose state was removed, with the epoch of the removal (a key may appear twice).
    removed: Vec<(K, u64)>,
    /// The newest epoch any key of the shard was written or removed in.
    written: u64,
}

impl<K, S> Default for ShardData<K, S> {
    fn default() -> Self {
        ShardData {
            states: FxHashMap::default(),
            removed: Vec::new(),
            written: 0,
        }
    }
}

/// A shard, owned by the task or shared with snapshots being written.
#[derive(Debug)]
enum Shard<K, S> {
    Owned(ShardData<K, S>),
    Shared(Arc<ShardData<K, S>>),
}

impl<K: Clone, S: Clone> Shard<K, S> {
    /// The shard for writing: a shared one is taken back, copied if a snapshot still holds it.
    fn owned(&mut self) -> &mut ShardData<K, S> {
        if let Shard::Shared(shared) = self {
            let shared = std::mem::take(shared);
            let data =
                Arc::try_unwrap(shared).unwrap_or_else(|still_shared| (*still_shared).clone());
            *self = Shard::Owned(data);
        }
        match self {
            Shard::Owned(data) => data,
            Shard::Shared(_) => unreachable!("just made owned"),
        }
    }

    /// Shares the shard with a snapshot, without copying it.
    fn share(&mut self) -> Arc<ShardData<K, S>> {
        if let Shard::Owned(data) = self {
            *self = Shard::Shared(Arc::new(std::mem::take(data)));
        }
        match self {
            Shard::Shared(shared) => shared.clone(),
            Shard::Owned(_) => unreachable!("just shared"),
        }
    }

    fn data(&self) -> &ShardData<K, S> {
        match self {
            Shard::Owned(data) => data,
            Shard::Shared(shared) => shared,
        }
    }
}

/// The states of every key one task owns: what keyed operators such as `process` keep,
/// snapshot and restore. Public so that benchmarks and custom operators can use it.
pub struct KeyedStore<K, S> {
    shards: Vec<Shard<K, S>>,
    len: usize,
    /// The epoch writes are stamped with now; it advances at every freeze.
    epoch: u64,
    /// The last epoch each snapshot holds, by checkpoint: what a delta over it starts after.
    frozen_at: BTreeMap<CheckpointId, u64>,
}

impl<K: Key + Serialize, S: KeyedState> Default for KeyedStore<K, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Key + Serialize, S: KeyedState> KeyedStore<K, S> {
    /// An empty store.
    pub fn new() -> Self {
        KeyedStore {
            shards: (0..SHARDS)
                .map(|_| Shard::Owned(ShardData::default()))
                .collect(),
            len: 0,
            epoch: 1,
            frozen_at: BTreeMap::new(),
        }
    }

    /// The names of this store's key and state types, as recorded in its snapshots.
    pub fn types() -> StateTypes {
        StateTypes::of::<K, S>()
    }

    /// Runs `f` on `key`'s state: one hash lookup for a key that has state, and nothing stored
    /// for a key whose state stays empty.
    pub fn with<R>(&mut self, key: K, f: impl FnOnce(&K, &mut S) -> R) -> R {
        let epoch = self.epoch;
        let shard = self.shards[shard_of(&key)].owned();
        if let Some(entry) = shard.states.get_mut(&key) {
            let result = f(&key, &mut entry.state);
            entry.epoch = epoch;
            shard.written = epoch;
            if entry.state.is_empty() {
                shard.states.remove(&key);
                shard.removed.push((key, epoch));
                self.len -= 1;
            }
            result
        } else {
            let mut state = S::default();
            let result = f(&key, &mut state);
            if !state.is_empty() {
                shard.states.insert(key, Versioned { state, epoch });
                shard.written = epoch;
                self.len += 1;
            }
            result
        }
    }

    /// Freezes the state for checkpoint `request.checkpoint` and returns its snapshot, to be
    /// serialized off the task's thread: a delta over `request.base` when the store froze that
    /// checkpoint's snapshot itself (or restored from it), a full snapshot otherwise. Costs
    /// one allocation per shard; whatever the task writes afterwards does not change the
    /// snapshot.
    pub fn freeze(&mut self, request: SnapshotRequest, max_parallelism: u32) -> FrozenSnapshot {
        let closed = self.epoch;
        self.epoch += 1;
        self.frozen_at.insert(request.checkpoint, closed);
        let base = request
            .base
            .and_then(|base| Some((base, *self.frozen_at.get(&base)?)));
        // Removals no future delta needs: every later base is one of `frozen_at`.
        let oldest_base = self.frozen_at.values().min().copied().unwrap_or(closed);
        for shard in &mut self.shards {
            if let Shard::Owned(data) = shard {
                data.removed.retain(|&(_, epoch)| epoch > oldest_base);
            }
        }
        let shards: Vec<Arc<ShardData<K, S>>> = self.shards.iter_mut().map(Shard::share).collect();
        let types = Self::types();
        match base {
            Some((base, after)) => FrozenSnapshot::delta(base, move || {
                encode_delta(&shards, after, max_parallelism, &types).map(Some)
            }),
            None => FrozenSnapshot::deferred(move || {
                encode_full(shards.iter().map(|s| &**s), max_parallelism, &types).map(Some)
            }),
        }
    }

    /// Checkpoint `checkpoint` is complete: snapshots older than it will never be built on.
    pub fn checkpoint_complete(&mut self, checkpoint: CheckpointId) {
        self.frozen_at = self.frozen_at.split_off(&checkpoint);
    }

    /// Loads the states of the keys in this task's key groups from every snapshot of the
    /// operator (each old task's full snapshot, then its deltas in order): the same code
    /// restores at the same or at another parallelism. The restored checkpoint becomes a base
    /// later snapshots may build on.
    ///
    /// # Errors
    /// A snapshot was written for another max parallelism, is not a chain of one full
    /// snapshot and deltas, or does not decode as `K` and `S`; the message then names the
    /// types it was written with and this store's. Returned from an operator's `restore`, it
    /// fails the job at start, naming the operator and task.
    pub fn restore(&mut self, state: &RestoredState, max_parallelism: u32) -> Result<(), BoxError>
    where
        K: DeserializeOwned,
    {
        let ours = Self::types();
        for chain in state.chains() {
            for (position, payload) in chain.into_iter().enumerate() {
                let changes =
                    decode_keyed_changes::<K, S>(payload, state.key_groups(), max_parallelism)
                        .map_err(|e| type_error(payload, &ours, e.into()))?;
                if changes.delta != (position > 0) {
                    return Err(format!(
                        "keyed state file {} of a snapshot chain is {}",
                        position + 1,
                        if changes.delta {
                            "a delta with nothing to apply to"
                        } else {
                            "a full snapshot after the first"
                        }
                    )
                    .into());
                }
                for (key, value) in changes.entries {
                    self.put(key, value, 0);
                }
            }
        }
        self.frozen_at.insert(state.checkpoint(), 0);
        Ok(())
    }

    /// Sets or (for `None`) removes `key`'s state, stamped with `epoch`.
    fn put(&mut self, key: K, value: Option<S>, epoch: u64) {
        let shard = self.shards[shard_of(&key)].owned();
        match value {
            Some(state) => {
                if shard
                    .states
                    .insert(key, Versioned { state, epoch })
                    .is_none()
                {
                    self.len += 1;
                }
            }
            None => {
                if shard.states.remove(&key).is_some() {
                    self.len -= 1;
                }
            }
        }
    }

    /// Serializes every key's state, grouped by key group, for a checkpoint, on the calling
    /// thread (operators freeze instead: [`freeze`](Self::freeze)).
    ///
    /// # Errors
    /// `max_parallelism` is 0, or a key or state cannot be serialized (a
    /// [`CheckpointError`](snapflow_checkpoint::CheckpointError)); returned from an
    /// operator's `snapshot`, it fails the job naming the task.
    pub fn snapshot(&self, max_parallelism: u32) -> Result<Vec<u8>, BoxError> {
        encode_full(
            self.shards.iter().map(Shard::data),
            max_parallelism,
            &Self::types(),
        )
    }

    /// Every key and its state, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &S)> {
        self.shards
            .iter()
            .flat_map(|shard| shard.data().states.iter().map(|(k, v)| (k, &v.state)))
    }

    /// The number of keys with state.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key has state.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The shard of `key`: the top bits of its key hash (the low bits pick its key group, so all
/// of a task's keys would share few values of them).
fn shard_of<K: Key>(key: &K) -> usize {
    (key_hash(key) >> (64 - SHARDS.trailing_zeros())) as usize
}

fn encode_full<'a, K, S>(
    shards: impl Iterator<Item = &'a ShardData<K, S>>,
    max_parallelism: u32,
    types: &StateTypes,
) -> Result<Vec<u8>, BoxError>
where
    K: Key + Serialize + 'a,
    S: KeyedState + 'a,
{
    let entries = shards.flat_map(|s| s.states.iter().map(|(k, v)| (k, Some(&v.state))));
    Ok(encode_keyed_changes(
        entries,
        max_parallelism,
        types,
        false,
    )?)
}

/// The keys written after epoch `after` with their states, and tombstones for the keys
/// removed after it that have no state now.
fn encode_delta<K, S>(
    shards: &[Arc<ShardData<K, S>>],
    after: u64,
    max_parallelism: u32,
    types: &StateTypes,
) -> Result<Vec<u8>, BoxError>
where
    K: Key + Serialize,
    S: KeyedState,
{
    let mut entries: Vec<(&K, Option<&S>)> = Vec::new();
    for shard in shards.iter().filter(|s| s.written > after) {
        entries.extend(
            shard
                .states
                .iter()
                .filter(|(_, v)| v.epoch > after)
                .map(|(k, v)| (k, Some(&v.state))),
        );
        let mut removed = FxHashSet::default();
        for (key, _) in shard.removed.iter().filter(|&&(_, epoch)| epoch > after) {
            if !shard.states.contains_key(key) && removed.insert(key) {
                entries.push((key, None));
            }
        }
    }
    Ok(encode_keyed_changes(entries, max_parallelism, types, true)?)
}

/// A restore error, with the types the payload was written with when they differ from ours:
/// the likely cause is a changed job.
fn type_error(payload: &[u8], ours: &StateTypes, error: BoxError) -> BoxError {
    let written = keyed_state_types(payload).ok().flatten();
    match written {
        Some(written) if &written != ours => format!(
            "keyed state was written with {written}, this operator has {ours}, and it does \
             not decode as those: {error}"
        )
        .into(),
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ValueState;
    use proptest::prelude::*;
    use snapflow_checkpoint::KeyGroupRange;
    use std::collections::BTreeMap;

    type Store = KeyedStore<String, ValueState<u64>>;
    type Model = BTreeMap<String, u64>;

    /// One write: set key `k` to `v`, or clear it when `v` is 0.
    type Op = (u8, u64);

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec((0u8..40, 0u64..4), 0..80)
    }

    fn apply(store: &mut Store, ops: &[Op]) {
        for &(k, v) in ops {
            store.with(
                format!("k{k}"),
                |_, s| {
                    if v == 0 {
                        s.clear()
                    } else {
                        s.set(v)
                    }
                },
            );
        }
    }

    fn copy(store: &Store) -> Model {
        store
            .iter()
            .map(|(k, s)| (k.clone(), *s.get().expect("non-empty")))
            .collect()
    }

    fn bytes(frozen: FrozenSnapshot) -> Vec<u8> {
        frozen.serialize().expect("serialize").expect("bytes")
    }

    /// What a task of `parallelism` restores from `chains` (one per old task).
    fn restore_all(chains: &[Vec<Vec<u8>>], parallelism: u32, max: u32) -> Model {
        let mut union = Model::new();
        for task in 0..parallelism {
            let range = KeyGroupRange::for_task(task, parallelism, max);
            let state = RestoredState::from_chains(CheckpointId(99), range, chains.to_vec());
            let mut store = Store::new();
            store.restore(&state, max).expect("restore");
            for (k, v) in copy(&store) {
                assert!(union.insert(k, v).is_none(), "a key restored twice");
            }
        }
        union
    }

    fn request(checkpoint: u64, base: Option<u64>) -> SnapshotRequest {
        SnapshotRequest {
            checkpoint: CheckpointId(checkpoint),
            base: base.map(CheckpointId),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// The task goes on writing while the snapshot pool serializes: what is written is
        /// the state at the barrier, full or incremental.
        #[test]
        fn a_snapshot_is_the_state_at_the_barrier_whatever_follows(
            before in ops(), between in ops(), after in ops(),
        ) {
            let mut store = Store::new();
            apply(&mut store, &before);
            let first = store.freeze(request(1, None), 8);
            let at_first = copy(&store);
            apply(&mut store, &between);
            store.checkpoint_complete(CheckpointId(1));
            let second = store.freeze(request(2, Some(1)), 8);
            prop_assert_eq!(second.delta_of(), Some(CheckpointId(1)));
            let at_second = copy(&store);
            // Serialize on another thread while this one writes on.
            let writer = std::thread::spawn(move || (bytes(first), bytes(second)));
            apply(&mut store, &after);
            let (first, second) = writer.join().expect("writer");
            prop_assert_eq!(restore_all(&[vec![first.clone()]], 1, 8), at_first);
            prop_assert_eq!(restore_all(&[vec![first, second]], 1, 8), at_second);
        }

        /// Restoring a chain of deltas gives what restoring a full snapshot of the same
        /// moment gives, at any parallelism.
        #[test]
        fn a_chain_restores_as_a_full_snapshot_at_any_parallelism(
            epochs in proptest::collection::vec(ops(), 1..8),
            old_p in 1u32..4,
            new_p in 1u32..5,
        ) {
            let max = 16;
            // The old tasks each own their key groups' keys, as the router would send them.
            let mut stores: Vec<Store> = (0..old_p).map(|_| Store::new()).collect();
            let mut chains: Vec<Vec<Vec<u8>>> = vec![Vec::new(); old_p as usize];
            let mut full: Vec<Vec<u8>> = Vec::new();
            let mut model = Model::new();
            for (i, ops) in epochs.iter().enumerate() {
                let id = i as u64 + 1;
                for &(k, v) in ops {
                    let key = format!("k{k}");
                    let group = snapflow_checkpoint::key_group_of_hash(key_hash(&key), max);
                    let task = snapflow_checkpoint::task_for_key_group(group, old_p, max);
                    apply(&mut stores[task as usize], &[(k, v)]);
                    if v == 0 { model.remove(&key); } else { model.insert(key, v); }
                }
                full.clear();
                for (t, store) in stores.iter_mut().enumerate() {
                    let base = (id > 1).then_some(id - 1);
                    let frozen = store.freeze(request(id, base), max);
                    prop_assert_eq!(frozen.delta_of(), base.map(CheckpointId));
                    chains[t].push(bytes(frozen));
                    full.push(store.snapshot(max).expect("full"));
                    store.checkpoint_complete(CheckpointId(id));
                }
            }
            let fulls: Vec<Vec<Vec<u8>>> = full.into_iter().map(|f| vec![f]).collect();
            prop_assert_eq!(&restore_all(&fulls, new_p, max), &model);
            prop_assert_eq!(&restore_all(&chains, new_p, max), &model);
        }
    }

    #[test]
    fn a_delta_holds_only_what_changed() {
        let mut store = Store::new();
        apply(&mut store, &(0..40).map(|k| (k, 1)).collect::<Vec<_>>());
        let full = bytes(store.freeze(request(1, None), 8));
        apply(&mut store, &[(3, 7), (5, 0)]);
        let delta = bytes(store.freeze(request(2, Some(1)), 8));
        let all = KeyGroupRange::for_task(0, 1, 8);
        let changes =
            decode_keyed_changes::<String, ValueState<u64>>(&delta, &all, 8).expect("decode");
        let got: BTreeMap<String, Option<u64>> = changes
            .entries
            .into_iter()
            .map(|(k, s)| (k, s.and_then(|s| s.get().copied())))
            .collect();
        assert_eq!(
            got,
            BTreeMap::from([("k3".to_owned(), Some(7)), ("k5".to_owned(), None)])
        );
        assert!(
            delta.len() * 5 < full.len(),
            "{} vs {}",
            delta.len(),
            full.len()
        );
        // A base the store never froze (or forgot) gets a full snapshot.
        let unknown = store.freeze(request(3, Some(77)), 8);
        assert_eq!(unknown.delta_of(), None);
    }

    #[test]
    fn state_of_other_types_is_refused_at_restore_naming_both() {
        let mut store = Store::new();
        apply(&mut store, &[(1, 5)]);
        let bytes = store.snapshot(8).expect("snapshot");
        let all = KeyGroupRange::for_task(0, 1, 8);
        let state = RestoredState::from_payloads(CheckpointId(1), all, vec![bytes]);
        let mut other: KeyedStore<String, crate::state::ListState<String>> = KeyedStore::new();
        let error = other
            .restore(&state, 8)
            .expect_err("other types")
            .to_string();
        assert!(error.contains("ValueState<u64>"), "{error}");
        assert!(
            error.contains("ListState<alloc::string::String>"),
            "{error}"
        );
    }
}
