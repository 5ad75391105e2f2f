//! [`KeyedStore`]: the states of every key one task owns, with copy-on-write snapshots and
//! incremental checkpoints.
//!
//! The keys are spread over [`SHARDS`] hash tables by their [`key_hash`], computed once per
//! record: its top bits pick the shard, the rest places the key in the shard's table. At a
//! barrier the store only *freezes* ([`KeyedStore::freeze`]): each shard's table moves behind
//! an `Arc` that the snapshot shares, which costs one allocation per shard and copies nothing.
//! While the snapshot still holds a shard, writes to it go to the shard's *overlay*: the key's
//! state is copied there on its first write (one key, not the shard), and reads look in the
//! overlay first. The first write after the snapshot is written (the `Arc` is unique again)
//! folds the overlay back into the table. Serializing the frozen shards runs on the snapshot
//! pool, so the task's thread is blocked only for the freeze, and pays afterwards one copy per
//! key written while the snapshot runs.
//!
//! Incremental checkpoints: every entry carries the *epoch* in which it was last written (an
//! epoch is the time between two barriers), every removal is logged with its epoch, and each
//! shard remembers its newest write. A delta over the snapshot of checkpoint `b`, frozen at
//! the end of epoch `e`, holds the entries written after `e` and tombstones for keys removed
//! after `e`, skipping shards not written since. Restoring reads the full snapshot and applies
//! the deltas in order ([`KeyedStore::restore`]).
//!
//! Lazy restore (`pending_groups.rs`): a restore of keyed-state format 3 reads only the files'
//! indexes and decodes one key group; every other key group of the task is decoded the first
//! time one of its keys is touched. A delta needs nothing from the groups still pending (they
//! have not changed since the restored checkpoint); a full snapshot decodes them on the
//! snapshot pool (their keys are not in the shards yet, so the two sets are disjoint).
//! Restored entries carry epoch 0 whenever they are decoded: no delta holds them until
//! written.

use crate::pending_groups::{check_chain_position, LazyGroups, PendingGroups};
use crate::state::KeyedState;
use hashbrown::hash_table::Entry as TableEntry;
use hashbrown::HashTable;
use rustc_hash::FxHashSet;
use serde::de::DeserializeOwned;
use serde::Serialize;
use snapflow_checkpoint::{
    decode_keyed_changes, encode_keyed_changes, key_hash, keyed_state_types, CheckpointId,
    StateTypes,
};
use snapflow_engine::{BoxError, FrozenSnapshot, Key, RestoredState, SnapshotRequest};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How many tables the keys are spread over: the unit a freeze shares and a delta skips when
/// nothing in it changed.
pub(crate) const SHARDS: usize = 64;

/// One key with its state, the epoch it was last written in, and its table hash (kept so
/// that growing a table never hashes a key again).
#[derive(Clone, Debug)]
struct Entry<K, S> {
    key: K,
    hash: u64,
    state: S,
    epoch: u64,
}

/// A write made while a snapshot holds the shard: the key's new state, `None` once removed.
#[derive(Clone, Debug)]
struct Change<K, S> {
    key: K,
    hash: u64,
    state: Option<S>,
    epoch: u64,
}

/// The keys of one shard.
#[derive(Clone, Debug)]
struct ShardData<K, S> {
    entries: HashTable<Entry<K, S>>,
    /// Keys whose state was removed, with the epoch of the removal (a key may appear twice).
    removed: Vec<(K, u64)>,
    /// The newest epoch any key of the shard was written or removed in.
    written: u64,
}

impl<K, S> Default for ShardData<K, S> {
    fn default() -> Self {
        ShardData {
            entries: HashTable::new(),
            removed: Vec::new(),
            written: 0,
        }
    }
}

/// A shard, owned by the task, or shared with snapshots being written plus the writes made
/// since it was shared.
#[derive(Debug)]
enum Shard<K, S> {
    Owned(ShardData<K, S>),
    Frozen {
        base: Arc<ShardData<K, S>>,
        overlay: HashTable<Change<K, S>>,
    },
}

impl<K: Key, S: KeyedState> ShardData<K, S> {
    /// Sets (`Some`) or removes (`None`) `key`'s state, stamped with `epoch`; returns how the
    /// number of keys with state changed.
    fn put(&mut self, key: K, hash: u64, state: Option<S>, epoch: u64) -> isize {
        let entry = self
            .entries
            .entry(hash, |e: &Entry<K, S>| e.key == key, |e| e.hash);
        match (entry, state) {
            (TableEntry::Occupied(mut occupied), Some(state)) => {
                let entry = occupied.get_mut();
                entry.state = state;
                entry.epoch = epoch;
                self.written = self.written.max(epoch);
                0
            }
            (TableEntry::Vacant(vacant), Some(state)) => {
                vacant.insert(Entry {
                    key,
                    hash,
                    state,
                    epoch,
                });
                self.written = self.written.max(epoch);
                1
            }
            (TableEntry::Occupied(occupied), None) => {
                let (removed, _) = occupied.remove();
                self.removed.push((removed.key, epoch));
                self.written = self.written.max(epoch);
                -1
            }
            // Logged all the same: folding an overlay in, the key may be one a lazy restore
            // decoded into the overlay (it is in the snapshots, not in this table), and a
            // needless tombstone only removes nothing.
            (TableEntry::Vacant(_), None) => {
                self.removed.push((key, epoch));
                self.written = self.written.max(epoch);
                0
            }
        }
    }

    /// Runs `f` on `key`'s state in the table itself: the path of a shard no snapshot holds.
    fn with<R>(
        &mut self,
        key: K,
        hash: u64,
        epoch: u64,
        len: &mut usize,
        f: impl FnOnce(&K, &mut S) -> R,
    ) -> R {
        let entry = self
            .entries
            .entry(hash, |e: &Entry<K, S>| e.key == key, |e| e.hash);
        match entry {
            TableEntry::Occupied(mut occupied) => {
                let entry = occupied.get_mut();
                let result = f(&entry.key, &mut entry.state);
                entry.epoch = epoch;
                self.written = epoch;
                if entry.state.is_empty() {
                    let (removed, _) = occupied.remove();
                    self.removed.push((removed.key, epoch));
                    *len -= 1;
                }
                result
            }
            TableEntry::Vacant(vacant) => {
                let mut state = S::default();
                let result = f(&key, &mut state);
                if !state.is_empty() {
                    vacant.insert(Entry {
                        key,
                        hash,
                        state,
                        epoch,
                    });
                    self.written = epoch;
                    *len += 1;
                }
                result
            }
        }
    }

    /// Folds the writes made while the shard was frozen into it.
    fn apply(&mut self, overlay: HashTable<Change<K, S>>) {
        for change in overlay {
            self.put(change.key, change.hash, change.state, change.epoch);
        }
    }
}

impl<K: Key, S: KeyedState> Shard<K, S> {
    /// Takes the shard back when no snapshot holds it any more, folding its overlay in.
    fn settle(&mut self) {
        if let Shard::Frozen { base, overlay } = self {
            // A hint first (one load): only a unique `Arc` can be taken back.
            if Arc::strong_count(base) != 1 {
                return;
            }
            let base = std::mem::take(base);
            let overlay = std::mem::take(overlay);
            match Arc::try_unwrap(base) {
                Ok(mut data) => {
                    data.apply(overlay);
                    *self = Shard::Owned(data);
                }
                Err(still_shared) => {
                    *self = Shard::Frozen {
                        base: still_shared,
                        overlay,
                    }
                }
            }
        }
    }

    /// Shares the shard with a snapshot. Copies nothing when the task owns it or wrote
    /// nothing since the last freeze; when an earlier snapshot still holds it and the task
    /// wrote to it since, the new snapshot gets a copy with those writes folded in (a
    /// snapshot outliving the next barrier is the only case that copies a shard).
    fn share(&mut self) -> Arc<ShardData<K, S>> {
        self.settle();
        match self {
            Shard::Owned(data) => {
                let base = Arc::new(std::mem::take(data));
                *self = Shard::Frozen {
                    base: base.clone(),
                    overlay: HashTable::new(),
                };
                base
            }
            Shard::Frozen { base, overlay } if overlay.is_empty() => base.clone(),
            Shard::Frozen { base, overlay } => {
                let mut data = (**base).clone();
                data.apply(std::mem::take(overlay));
                let shared = Arc::new(data);
                *base = shared.clone();
                shared
            }
        }
    }

    /// Sets or removes `key`'s state (see [`ShardData::put`]), in the overlay when frozen.
    fn put(&mut self, key: K, hash: u64, state: Option<S>, epoch: u64) -> isize {
        self.settle();
        match self {
            Shard::Owned(data) => data.put(key, hash, state, epoch),
            Shard::Frozen { base, overlay } => {
                let has = state.is_some();
                let had = match overlay.entry(hash, |c| c.key == key, |c| c.hash) {
                    TableEntry::Occupied(mut occupied) => {
                        let change = occupied.get_mut();
                        let had = change.state.is_some();
                        change.state = state;
                        change.epoch = epoch;
                        had
                    }
                    TableEntry::Vacant(vacant) => {
                        let had = base.entries.find(hash, |e| e.key == key).is_some();
                        vacant.insert(Change {
                            key,
                            hash,
                            state,
                            epoch,
                        });
                        had
                    }
                };
                isize::from(has) - isize::from(had)
            }
        }
    }

    /// Every key with state and its entry's state and epoch, in no particular order.
    fn entries(&self) -> Box<dyn Iterator<Item = (&K, &S, u64)> + '_> {
        match self {
            Shard::Owned(data) => {
                Box::new(data.entries.iter().map(|e| (&e.key, &e.state, e.epoch)))
            }
            Shard::Frozen { base, overlay } => Box::new(
                overlay
                    .iter()
                    .filter_map(|c| Some((&c.key, c.state.as_ref()?, c.epoch)))
                    .chain(
                        base.entries
                            .iter()
                            .filter(|e| overlay.find(e.hash, |c| c.key == e.key).is_none())
                            .map(|e| (&e.key, &e.state, e.epoch)),
                    ),
            ),
        }
    }
}

/// Runs `f` on `key`'s state in a frozen shard: reads the overlay, else the shared table, and
/// records the result in the overlay (a copy of one key's state, never of the shard).
fn with_frozen<K: Key, S: KeyedState, R>(
    base: &ShardData<K, S>,
    overlay: &mut HashTable<Change<K, S>>,
    key: K,
    hash: u64,
    epoch: u64,
    len: &mut usize,
    f: impl FnOnce(&K, &mut S) -> R,
) -> R {
    let entry = overlay.entry(hash, |c: &Change<K, S>| c.key == key, |c| c.hash);
    match entry {
        TableEntry::Occupied(mut occupied) => {
            let change = occupied.get_mut();
            let had = change.state.is_some();
            let mut state = change.state.take().unwrap_or_default();
            let result = f(&change.key, &mut state);
            change.epoch = epoch;
            if !state.is_empty() {
                change.state = Some(state);
            }
            update_len(len, had, change.state.is_some());
            result
        }
        TableEntry::Vacant(vacant) => {
            let shared = base.entries.find(hash, |e| e.key == key);
            let had = shared.is_some();
            let mut state = shared.map(|e| e.state.clone()).unwrap_or_default();
            let result = f(&key, &mut state);
            let has = !state.is_empty();
            // A key that had no state and still has none leaves no trace.
            if had || has {
                vacant.insert(Change {
                    key,
                    hash,
                    state: has.then_some(state),
                    epoch,
                });
            }
            update_len(len, had, has);
            result
        }
    }
}

fn update_len(len: &mut usize, had: bool, has: bool) {
    match (had, has) {
        (false, true) => *len += 1,
        (true, false) => *len -= 1,
        _ => {}
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
    /// The key groups restored but not decoded yet (`None` once all are).
    lazy: Option<Box<LazyGroups<K, S>>>,
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
            lazy: None,
        }
    }

    /// The names of this store's key and state types, as recorded in its snapshots.
    pub fn types() -> StateTypes {
        StateTypes::of::<K, S>()
    }

    /// Runs `f` on `key`'s state: one hash of the key and one table lookup for a key that has
    /// state, and nothing stored for a key whose state stays empty.
    pub fn with<R>(&mut self, key: K, f: impl FnOnce(&K, &mut S) -> R) -> R {
        let hash = key_hash(&key);
        if self.lazy.is_some() {
            self.decode_group_of(hash);
        }
        let epoch = self.epoch;
        let shard = &mut self.shards[shard_of(hash)];
        if let Shard::Frozen { .. } = shard {
            shard.settle();
        }
        let hash = table_hash(hash);
        match shard {
            Shard::Owned(data) => data.with(key, hash, epoch, &mut self.len, f),
            Shard::Frozen { base, overlay } => {
                with_frozen(base, overlay, key, hash, epoch, &mut self.len, f)
            }
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
            shard.settle();
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
            None => {
                let pending = self.lazy.as_ref().map(|lazy| lazy.frozen());
                FrozenSnapshot::deferred(move || {
                    let restored = pending.map(|p| p.states()).transpose()?.unwrap_or_default();
                    let entries = shards
                        .iter()
                        .flat_map(|s| s.entries.iter().map(|e| (&e.key, Some(&e.state))))
                        .chain(restored.iter().map(|(k, s)| (k, Some(s))));
                    Ok(Some(encode_keyed_changes(
                        entries,
                        max_parallelism,
                        &types,
                        false,
                    )?))
                })
            }
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
    /// Format-3 state with this store's type names restores lazily: this reads the indexes
    /// and decodes the lowest key group (a trial that the types still decode), and every other
    /// key group is decoded on the first touch of one of its keys. A key group that then
    /// fails to decode, although its checksum and type names matched here, is a bug: `with`
    /// panics naming the state, the checkpoint and the key group (the task fails), and a full
    /// snapshot returns the error. Older formats and other type names restore eagerly.
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
        // Called once, on a new store; a second restore applies over the first, decoded.
        self.decode_pending();
        let ours = Self::types();
        if let Some(pending) = PendingGroups::plan(state, max_parallelism, &ours)? {
            let mut lazy = LazyGroups::new(pending, max_parallelism);
            if let Some(entries) = lazy.take_first() {
                let entries = entries.map_err(|e| {
                    format!("keyed state ({ours}) does not decode as this operator's types: {e}")
                })?;
                for (key, value) in entries {
                    self.put(key, value, 0);
                }
            }
            self.lazy = (!lazy.is_empty()).then(|| Box::new(lazy));
        } else {
            self.restore_eagerly(state, max_parallelism, &ours)?;
        }
        self.frozen_at.insert(state.checkpoint(), 0);
        Ok(())
    }

    /// Decodes every file whole: keyed-state formats 1 and 2 (which have no index), and state
    /// written with other type names (tried whole, so that a changed type is refused at
    /// restore).
    fn restore_eagerly(
        &mut self,
        state: &RestoredState,
        max_parallelism: u32,
        ours: &StateTypes,
    ) -> Result<(), BoxError>
    where
        K: DeserializeOwned,
    {
        for chain in state.chains() {
            for (position, payload) in chain.into_iter().enumerate() {
                let changes =
                    decode_keyed_changes::<K, S>(payload, state.key_groups(), max_parallelism)
                        .map_err(|e| type_error(payload, ours, e.into()))?;
                check_chain_position(position, changes.delta)?;
                for (key, value) in changes.entries {
                    self.put(key, value, 0);
                }
            }
        }
        Ok(())
    }

    /// Decodes and applies the restored key group of a key with key hash `hash`, if it is
    /// still pending: the first touch of one of its keys after a lazy restore.
    #[cold]
    #[inline(never)]
    fn decode_group_of(&mut self, hash: u64) {
        let Some(lazy) = &mut self.lazy else { return };
        let Some(entries) = lazy.take_of_hash(hash) else {
            return;
        };
        if lazy.is_empty() {
            self.lazy = None;
        }
        for (key, value) in entries {
            self.put(key, value, 0);
        }
    }

    /// Decodes and applies every key group still pending after a lazy restore.
    fn decode_pending(&mut self) {
        if let Some(mut lazy) = self.lazy.take() {
            for (key, value) in lazy.take_all() {
                self.put(key, value, 0);
            }
        }
    }

    /// How many restored key groups are not decoded yet.
    #[cfg(test)]
    fn pending_groups(&self) -> usize {
        self.lazy.as_ref().map_or(0, |lazy| lazy.pending_groups())
    }

    /// Sets or (for `None`) removes `key`'s state, stamped with `epoch`.
    fn put(&mut self, key: K, value: Option<S>, epoch: u64) {
        let hash = key_hash(&key);
        let change = self.shards[shard_of(hash)].put(key, table_hash(hash), value, epoch);
        self.len = self.len.wrapping_add_signed(change);
    }

    /// Serializes every key's state, grouped by key group, for a checkpoint, on the calling
    /// thread (operators freeze instead: [`freeze`](Self::freeze)).
    ///
    /// # Errors
    /// `max_parallelism` is 0, or a key or state cannot be serialized (a
    /// [`CheckpointError`](snapflow_checkpoint::CheckpointError)); returned from an
    /// operator's `snapshot`, it fails the job naming the task.
    pub fn snapshot(&self, max_parallelism: u32) -> Result<Vec<u8>, BoxError> {
        // Key groups still pending are decoded into the snapshot, not kept.
        let restored = match &self.lazy {
            Some(lazy) => lazy.frozen().states()?,
            None => Vec::new(),
        };
        let entries = self
            .shards
            .iter()
            .flat_map(Shard::entries)
            .map(|(k, s, _)| (k, Some(s)))
            .chain(restored.iter().map(|(k, s)| (k, Some(s))));
        Ok(encode_keyed_changes(
            entries,
            max_parallelism,
            &Self::types(),
            false,
        )?)
    }

    /// Every key and its state, in no particular order. Decodes first whatever a lazy restore
    /// has not decoded yet (hence `&mut`).
    ///
    /// # Panics
    /// If restored state that passed the checks at restore does not decode (a bug).
    pub fn iter(&mut self) -> impl Iterator<Item = (&K, &S)> {
        self.decode_pending();
        self.shards
            .iter()
            .flat_map(Shard::entries)
            .map(|(k, s, _)| (k, s))
    }

    /// The number of keys with state. Exact: decodes first whatever a lazy restore has not
    /// decoded yet (hence `&mut`).
    ///
    /// # Panics
    /// If restored state that passed the checks at restore does not decode (a bug).
    pub fn len(&mut self) -> usize {
        self.decode_pending();
        self.len
    }

    /// Whether no key has state (decoding as [`len`](Self::len) does).
    ///
    /// # Panics
    /// As [`len`](Self::len).
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }
}

/// The shard of a key with [`key_hash`] `hash`: its top bits (the low bits pick its key
/// group, so all of a task's keys would share few values of them).
fn shard_of(hash: u64) -> usize {
    (hash >> (64 - SHARDS.trailing_zeros())) as usize
}

/// The hash a shard's table files a key under: the key hash turned so that neither the bits
/// that picked the shard (the same for all its keys) nor those that pick the key group (few
/// values within one task) land where the table looks (its low bits for the bucket, its top
/// seven as the tag).
fn table_hash(hash: u64) -> u64 {
    hash.rotate_left(32)
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
                .entries
                .iter()
                .filter(|e| e.epoch > after)
                .map(|e| (&e.key, Some(&e.state))),
        );
        let mut removed = FxHashSet::default();
        for (key, _) in shard.removed.iter().filter(|&&(_, epoch)| epoch > after) {
            let hash = table_hash(key_hash(key));
            if shard.entries.find(hash, |e| &e.key == key).is_none() && removed.insert(key) {
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
mod lazy_tests;

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

    fn copy(store: &mut Store) -> Model {
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
            for (k, v) in copy(&mut store) {
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
            let at_first = copy(&mut store);
            apply(&mut store, &between);
            store.checkpoint_complete(CheckpointId(1));
            let second = store.freeze(request(2, Some(1)), 8);
            prop_assert_eq!(second.delta_of(), Some(CheckpointId(1)));
            let at_second = copy(&mut store);
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

    /// One step of a task: a write, a barrier, or the snapshot pool finishing the oldest
    /// snapshot still being written.
    #[derive(Clone, Debug)]
    enum Step {
        Write(Op),
        Freeze,
        Finish,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        let step = prop_oneof![
            6 => (0u8..40, 0u64..4).prop_map(Step::Write),
            1 => Just(Step::Freeze),
            1 => Just(Step::Finish),
        ];
        proptest::collection::vec(step, 0..200)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Writes, barriers and finished snapshots in any order: every snapshot restores (with
        /// the chain it builds on) to the state at its barrier, and the live store always
        /// holds what the writes say, whether a key lies in a shard, an overlay, or both.
        #[test]
        fn snapshots_finishing_in_any_order_restore_the_state_at_their_barrier(
            steps in steps(),
        ) {
            let mut store = Store::new();
            let mut model = Model::new();
            let mut pending: std::collections::VecDeque<(u64, FrozenSnapshot, Model)> =
                Default::default();
            let mut chains: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
            let mut completed: Option<u64> = None;
            let mut next_id = 1;
            for step in steps {
                match step {
                    Step::Write((k, v)) => {
                        apply(&mut store, &[(k, v)]);
                        if v == 0 {
                            model.remove(&format!("k{k}"));
                        } else {
                            model.insert(format!("k{k}"), v);
                        }
                    }
                    Step::Freeze => {
                        let frozen = store.freeze(request(next_id, completed), 8);
                        pending.push_back((next_id, frozen, model.clone()));
                        next_id += 1;
                    }
                    Step::Finish => {
                        let Some((id, frozen, at_barrier)) = pending.pop_front() else {
                            continue;
                        };
                        let mut chain = match frozen.delta_of() {
                            Some(base) => chains[&base.0].clone(),
                            None => Vec::new(),
                        };
                        chain.push(bytes(frozen));
                        prop_assert_eq!(restore_all(&[chain.clone()], 1, 8), at_barrier);
                        chains.insert(id, chain);
                        store.checkpoint_complete(CheckpointId(id));
                        completed = Some(id);
                    }
                }
                prop_assert_eq!(store.len(), model.len());
            }
            prop_assert_eq!(copy(&mut store), model);
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
