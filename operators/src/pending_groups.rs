//! Lazy restore for [`KeyedStore`](crate::KeyedStore): the key groups a task restored but has
//! not decoded yet.
//!
//! A restore reads only the header and index of every file of every chain (keyed-state format
//! 3, one section per key group) and records, for each key group of the task's range, the
//! sections to apply in chain order: the full snapshot's, then each delta's. The store decodes
//! a key group the first time one of its keys is touched, so a task starts processing after
//! decoding one key group, not its whole state. The restored files stay memory-mapped
//! ([`SharedPayload`]) until every group is decoded.
//!
//! Every file was checksummed when the checkpoint was opened and the index was checked here,
//! and lazy restore is used only when the files name this store's key and state types (other
//! names take the eager path, which refuses state that does not decode). A section that still
//! fails to decode later is a bug in the types' serde or in snapflow: the store panics naming
//! the state, the checkpoint and the key group (the runtime turns the panic into the task's
//! failure), except inside a full snapshot's serialization, which returns it as an error.

use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use snapflow_checkpoint::{
    decode_keyed_section, key_group_of_hash, read_keyed_index, CheckpointId, KeyedSection,
    StateTypes,
};
use snapflow_engine::{BoxError, Key, RestoredState, SharedPayload};
use std::sync::Arc;

/// Restored entries to apply one after the other: `None` removes the key.
pub(crate) type Restored<K, S> = Vec<(K, Option<S>)>;

/// The states of the keys of frozen key groups, or why they do not decode.
type States<K, S> = Result<Vec<(K, S)>, BoxError>;

/// One section to apply to a key group: in which restored file, where, and whether that file
/// is a delta.
#[derive(Clone, Debug)]
struct PendingSection {
    payload: usize,
    section: KeyedSection,
    delta: bool,
}

/// The key groups of a task's range that were restored but not decoded yet.
#[derive(Debug)]
pub(crate) struct PendingGroups {
    checkpoint: CheckpointId,
    types: StateTypes,
    /// The first key group of the task's range: `groups[i]` is key group `first + i`.
    first: u32,
    payloads: Arc<[SharedPayload]>,
    /// By key group: the sections still to apply, in chain order (empty once decoded).
    groups: Vec<Vec<PendingSection>>,
    /// How many entries of `groups` are not empty.
    remaining: usize,
}

/// The pending key groups as a full snapshot frozen at a barrier sees them: decoded on the
/// snapshot pool, while the task decodes its own copy on demand.
pub(crate) struct FrozenGroups {
    payloads: Arc<[SharedPayload]>,
    groups: Vec<(u32, Vec<PendingSection>)>,
}

/// Checks that the file at `position` of a chain is what belongs there: a full snapshot first,
/// deltas after it.
///
/// # Errors
/// The chain is out of order, naming the file.
pub(crate) fn check_chain_position(position: usize, delta: bool) -> Result<(), BoxError> {
    if delta == (position > 0) {
        return Ok(());
    }
    Err(format!(
        "keyed state file {} of a snapshot chain is {}",
        position + 1,
        if delta {
            "a delta with nothing to apply to"
        } else {
            "a full snapshot after the first"
        }
    )
    .into())
}

impl PendingGroups {
    /// Reads the index of every file of `state` and plans a lazy restore of the task's key
    /// groups: `None` when the state must be decoded eagerly (a file of format 1 or 2, which
    /// have no index, or written with other type names than `ours`, which must be tried
    /// whole at restore), or when no key group of the range has entries.
    ///
    /// # Errors
    /// A file was written for another max parallelism, has a damaged index, or a chain is not
    /// one full snapshot followed by deltas.
    pub(crate) fn plan(
        state: &RestoredState,
        max_parallelism: u32,
        ours: &StateTypes,
    ) -> Result<Option<PendingGroups>, BoxError> {
        let range = state.key_groups().groups.clone();
        let mut payloads = Vec::new();
        let mut groups: Vec<Vec<PendingSection>> =
            (range.start..range.end).map(|_| Vec::new()).collect();
        for (task, chain) in state.shared_chains().enumerate() {
            for (position, payload) in chain.into_iter().enumerate() {
                let index = read_keyed_index(&payload, max_parallelism).map_err(|e| {
                    format!(
                        "keyed state file {} of old task {task}'s snapshot chain: {e}",
                        position + 1
                    )
                })?;
                let Some(index) = index else {
                    return Ok(None);
                };
                if &index.types != ours {
                    return Ok(None);
                }
                check_chain_position(position, index.delta)?;
                let sections = index.sections_in(state.key_groups());
                if sections.is_empty() {
                    continue;
                }
                for section in sections {
                    groups[(section.group - range.start) as usize].push(PendingSection {
                        payload: payloads.len(),
                        section: section.clone(),
                        delta: index.delta,
                    });
                }
                payloads.push(payload);
            }
        }
        let remaining = groups.iter().filter(|g| !g.is_empty()).count();
        if remaining == 0 {
            return Ok(None);
        }
        Ok(Some(PendingGroups {
            checkpoint: state.checkpoint(),
            types: ours.clone(),
            first: range.start,
            payloads: payloads.into(),
            groups,
            remaining,
        }))
    }

    /// Whether every key group has been decoded.
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The lowest key group still pending.
    pub(crate) fn first_pending(&self) -> Option<u32> {
        let i = self.groups.iter().position(|g| !g.is_empty())?;
        Some(self.first + i as u32)
    }

    /// The restored entries of `group` in chain order, to apply one after the other
    /// (`None` removes the key), if the group is still pending; it is not afterwards. `None`
    /// for a group already decoded or outside the task's range.
    ///
    /// # Errors
    /// A section does not decode as `K` and `S`; the group counts as decoded anyway.
    pub(crate) fn take<K, S>(&mut self, group: u32) -> Option<Result<Restored<K, S>, BoxError>>
    where
        K: DeserializeOwned,
        S: DeserializeOwned,
    {
        let slot = self
            .groups
            .get_mut(group.checked_sub(self.first)? as usize)?;
        if slot.is_empty() {
            return None;
        }
        let sections = std::mem::take(slot);
        self.remaining -= 1;
        let mut entries = Vec::new();
        for pending in &sections {
            match decode_keyed_section(
                &self.payloads[pending.payload],
                &pending.section,
                pending.delta,
            ) {
                Ok(decoded) => entries.extend(decoded),
                Err(e) => return Some(Err(e.into())),
            }
        }
        if self.remaining == 0 {
            // Unmap the files: nothing refers to them any more.
            self.payloads = Arc::from(Vec::new());
        }
        Some(Ok(entries))
    }

    /// Like [`take`](Self::take), for a store that cannot return the error: a section that
    /// fails to decode here passed the checksum and type-name checks at restore, so this is a
    /// bug, reported by a panic naming the state, the checkpoint and the key group.
    ///
    /// # Panics
    /// If a section of `group` does not decode.
    pub(crate) fn take_or_panic<K, S>(&mut self, group: u32) -> Option<Restored<K, S>>
    where
        K: DeserializeOwned,
        S: DeserializeOwned,
    {
        let (checkpoint, types) = (self.checkpoint, self.types.clone());
        self.take(group).map(|result| {
            result.unwrap_or_else(|e| {
                panic!(
                    "keyed state ({types}) restored from checkpoint {checkpoint}: key group \
                     {group} does not decode, although its file's checksum and type names \
                     matched at restore (a bug in the state type's serde or in snapflow): {e}"
                )
            })
        })
    }

    /// The groups still pending, for a full snapshot to decode on the snapshot pool.
    pub(crate) fn frozen(&self) -> FrozenGroups {
        FrozenGroups {
            payloads: self.payloads.clone(),
            groups: self
                .groups
                .iter()
                .enumerate()
                .filter(|(_, sections)| !sections.is_empty())
                .map(|(i, sections)| (self.first + i as u32, sections.clone()))
                .collect(),
        }
    }
}

impl FrozenGroups {
    /// The state of every key of the frozen groups: each group's sections applied in chain
    /// order.
    ///
    /// # Errors
    /// A section does not decode as `K` and `S`, naming its key group.
    pub(crate) fn states<K, S>(&self) -> Result<Vec<(K, S)>, BoxError>
    where
        K: Key + DeserializeOwned,
        S: DeserializeOwned,
    {
        let mut states = Vec::new();
        for (group, sections) in &self.groups {
            let decode = |pending: &PendingSection| {
                decode_keyed_section::<K, S>(
                    &self.payloads[pending.payload],
                    &pending.section,
                    pending.delta,
                )
                .map_err(|e| format!("restored key group {group}: {e}"))
            };
            if let [only] = sections.as_slice() {
                // A full snapshot's section alone: every entry has state, each key once.
                states.extend(
                    decode(only)?
                        .into_iter()
                        .filter_map(|(key, state)| Some((key, state?))),
                );
                continue;
            }
            let mut group_states = FxHashMap::default();
            for pending in sections {
                for (key, state) in decode(pending)? {
                    match state {
                        Some(state) => group_states.insert(key, state),
                        None => group_states.remove(&key),
                    };
                }
            }
            states.extend(group_states);
        }
        Ok(states)
    }
}

/// A lazy restore in progress in a store of keys `K` and states `S`: the pending key groups,
/// with their decoders chosen at restore (where `K: DeserializeOwned` is known), so that the
/// store's `with` needs no such bound.
pub(crate) struct LazyGroups<K, S> {
    pending: PendingGroups,
    max_parallelism: u32,
    take: fn(&mut PendingGroups, u32) -> Option<Restored<K, S>>,
    states: fn(&FrozenGroups) -> States<K, S>,
}

/// The key groups a lazy restore had not decoded when a full snapshot was frozen.
pub(crate) struct FrozenLazy<K, S> {
    groups: FrozenGroups,
    states: fn(&FrozenGroups) -> States<K, S>,
}

impl<K: Key + DeserializeOwned, S: DeserializeOwned> LazyGroups<K, S> {
    /// A lazy restore of `pending`, whose key groups are of `max_parallelism`.
    pub(crate) fn new(pending: PendingGroups, max_parallelism: u32) -> LazyGroups<K, S> {
        LazyGroups {
            pending,
            max_parallelism,
            take: PendingGroups::take_or_panic::<K, S>,
            states: FrozenGroups::states::<K, S>,
        }
    }

    /// Decodes the lowest pending key group now, returning a failure: the restore's trial
    /// that the state still decodes as `K` and `S` (a type changed without changing its name).
    pub(crate) fn take_first(&mut self) -> Option<Result<Restored<K, S>, BoxError>> {
        let group = self.pending.first_pending()?;
        self.pending.take(group)
    }
}

impl<K, S> LazyGroups<K, S> {
    /// The restored entries of the key group of a key whose key hash is `hash`, to apply in
    /// order, if that group is still pending.
    ///
    /// # Panics
    /// If the group does not decode (see [`PendingGroups::take_or_panic`]).
    pub(crate) fn take_of_hash(&mut self, hash: u64) -> Option<Restored<K, S>> {
        let group = key_group_of_hash(hash, self.max_parallelism).0;
        (self.take)(&mut self.pending, group)
    }

    /// The restored entries of every pending key group, to apply in order.
    ///
    /// # Panics
    /// If a group does not decode (see [`PendingGroups::take_or_panic`]).
    pub(crate) fn take_all(&mut self) -> Restored<K, S> {
        let mut entries = Vec::new();
        while let Some(group) = self.pending.first_pending() {
            entries.extend((self.take)(&mut self.pending, group).unwrap_or_default());
        }
        entries
    }

    /// Whether every key group has been decoded.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// How many key groups are still pending.
    #[cfg(test)]
    pub(crate) fn pending_groups(&self) -> usize {
        self.pending.remaining
    }

    /// The pending key groups, for a full snapshot frozen now to decode on the snapshot pool.
    pub(crate) fn frozen(&self) -> FrozenLazy<K, S> {
        FrozenLazy {
            groups: self.pending.frozen(),
            states: self.states,
        }
    }
}

impl<K, S> FrozenLazy<K, S> {
    /// Every key of the frozen groups with its restored state.
    ///
    /// # Errors
    /// A section does not decode, naming its key group.
    pub(crate) fn states(&self) -> Result<Vec<(K, S)>, BoxError> {
        (self.states)(&self.groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapflow_checkpoint::{encode_keyed_changes, KeyGroupRange};
    use std::collections::BTreeMap;

    fn types() -> StateTypes {
        StateTypes::of::<String, u64>()
    }

    fn encode(entries: &[(&str, Option<u64>)], delta: bool) -> Vec<u8> {
        let owned: Vec<(String, Option<u64>)> =
            entries.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        encode_keyed_changes(
            owned.iter().map(|(k, v)| (k, v.as_ref())),
            8,
            &types(),
            delta,
        )
        .expect("encode")
    }

    fn state(chains: Vec<Vec<Vec<u8>>>) -> RestoredState {
        RestoredState::from_chains(CheckpointId(5), KeyGroupRange { groups: 0..8 }, chains)
    }

    #[test]
    fn groups_decode_one_at_a_time_in_chain_order() {
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let full: Vec<(&str, Option<u64>)> = keys.iter().map(|k| (k.as_str(), Some(1))).collect();
        let delta = [("k1", Some(2)), ("k2", None), ("new", Some(3))];
        let restored = state(vec![vec![encode(&full, false), encode(&delta, true)]]);
        let mut pending = PendingGroups::plan(&restored, 8, &types())
            .expect("plan")
            .expect("lazy");
        let frozen: BTreeMap<String, u64> = pending
            .frozen()
            .states::<String, u64>()
            .expect("states")
            .into_iter()
            .collect();
        let mut applied = BTreeMap::new();
        while let Some(group) = pending.first_pending() {
            let entries = pending
                .take_or_panic::<String, u64>(group)
                .expect("pending");
            assert!(pending.take::<String, u64>(group).is_none(), "taken twice");
            for (key, state) in entries {
                match state {
                    Some(state) => applied.insert(key, state),
                    None => applied.remove(&key),
                };
            }
        }
        assert!(pending.is_empty());
        let mut want: BTreeMap<String, u64> = keys.iter().map(|k| (k.clone(), 1)).collect();
        want.insert("k1".to_owned(), 2);
        want.remove("k2");
        want.insert("new".to_owned(), 3);
        assert_eq!(applied, want);
        assert_eq!(frozen, want);
    }

    #[test]
    fn other_type_names_or_old_formats_restore_eagerly() {
        let restored = state(vec![vec![encode(&[("a", Some(1))], false)]]);
        let other = StateTypes::of::<String, i32>();
        assert!(PendingGroups::plan(&restored, 8, &other)
            .expect("plan")
            .is_none());
        let format_1 =
            snapflow_checkpoint::encode_keyed_state(&BTreeMap::from([("a".to_owned(), 1u64)]), 8)
                .expect("encode");
        assert!(
            PendingGroups::plan(&state(vec![vec![format_1]]), 8, &types())
                .expect("plan")
                .is_none()
        );
    }

    #[test]
    fn a_chain_out_of_order_or_another_max_parallelism_is_refused() {
        let full = encode(&[("a", Some(1))], false);
        let delta = encode(&[("a", Some(2))], true);
        let refused = |chains, max| {
            PendingGroups::plan(&state(chains), max, &types())
                .expect_err("refused")
                .to_string()
        };
        let error = refused(vec![vec![delta.clone()]], 8);
        assert!(
            error.contains("a delta with nothing to apply to"),
            "{error}"
        );
        let error = refused(vec![vec![full.clone(), full.clone()]], 8);
        assert!(error.contains("a full snapshot after the first"), "{error}");
        let error = refused(vec![vec![full]], 16);
        assert!(error.contains("max parallelism"), "{error}");
    }
}
