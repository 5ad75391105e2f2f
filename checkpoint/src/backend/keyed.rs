//! Keyed state, encoded sorted by key group.
//!
//! Encoding (bincode, fixed-width little-endian integers), format 1: the format version u32,
//! the max parallelism u32, then the entries as a sequence (u64 length) of `(key_group u32,
//! key, state)`, in ascending key-group order. Sorting lets a reader stop at the end of its
//! range; recording the max parallelism lets it refuse state whose key groups mean something
//! else.
//!
//! Format 2 ([`encode_keyed_changes`]) adds, after the max parallelism, the names of the key
//! and state types ([`StateTypes`]) and whether the payload is a *delta* (only the keys that
//! changed since an earlier snapshot, see [`KeyedChanges`]); its entries are `(key_group,
//! key, Option<state>)`, `None` marking a key whose state was removed.
//!
//! Format 3 (`sections.rs`, what [`encode_keyed_changes`] writes now) keeps format 2's header
//! and stores the entries in one indexed section per key group, so that a task can restore
//! lazily, one key group at a time. Formats 1 and 2 are still read.

use super::sections::{
    decode_keyed_section, encode_sections, read_keyed_index, KEYED_SECTIONS_FORMAT,
};
use crate::error::{CheckpointError, Result};
use crate::format::bincode_options;
use crate::{key_group_of_hash, key_hash, KeyGroupRange};
use bincode::Options;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::hash::Hash;

/// The keyed-state encoding version [`encode_keyed_state`] writes (this build reads 1,
/// [`KEYED_CHANGES_FORMAT`] and [`KEYED_SECTIONS_FORMAT`]).
pub const KEYED_STATE_FORMAT: u32 = 1;

/// The keyed-state encoding version [`encode_keyed_changes`] wrote before
/// [`KEYED_SECTIONS_FORMAT`]: with type names, and able to hold a delta, but no index.
pub const KEYED_CHANGES_FORMAT: u32 = 2;

/// The names of the key and state types keyed state was written with
/// (`std::any::type_name`): a restore that finds the same names needs no trial decode to know
/// the state is readable; other names mean the job's types changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateTypes {
    /// The key type's name.
    pub key: String,
    /// The state type's name.
    pub state: String,
}

impl StateTypes {
    /// The names of `K` and `S`.
    pub fn of<K: ?Sized, S: ?Sized>() -> StateTypes {
        StateTypes {
            key: std::any::type_name::<K>().to_owned(),
            state: std::any::type_name::<S>().to_owned(),
        }
    }
}

impl std::fmt::Display for StateTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key {} and state {}", self.key, self.state)
    }
}

/// The decoded entries of one keyed-state payload that lie in a task's key groups.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyedChanges<K, S> {
    /// The types the state was written with (`None` for format 1, which did not record them).
    pub types: Option<StateTypes>,
    /// Whether the payload holds only the keys changed since an earlier snapshot (to apply
    /// over it) rather than every key.
    pub delta: bool,
    /// `(key, Some(state))` for a key with state, `(key, None)` for a key whose state was
    /// removed (deltas only), in key-group order.
    pub entries: Vec<(K, Option<S>)>,
}

/// Encodes keyed state in format 3 ([`KEYED_SECTIONS_FORMAT`]): every key with its state
/// (`Some`), or, for a `delta`, only the keys changed since an earlier snapshot, `None` for a
/// removed one. Entries are tagged with their key group as in [`encode_keyed_state`] and
/// written in one section per key group.
///
/// # Errors
/// [`CheckpointError::InvalidArgument`] if `max_parallelism` is 0;
/// [`CheckpointError::Encode`] if a key or state cannot be serialized.
pub fn encode_keyed_changes<'a, K, S, I>(
    entries: I,
    max_parallelism: u32,
    types: &StateTypes,
    delta: bool,
) -> Result<Vec<u8>>
where
    K: Serialize + Hash + 'a,
    S: Serialize + 'a,
    I: IntoIterator<Item = (&'a K, Option<&'a S>)>,
{
    let entries = by_key_group(entries, max_parallelism)?;
    encode_sections(&entries, max_parallelism, types, delta)
}

/// The key and state type names a keyed-state payload records: `None` for format 1.
///
/// # Errors
/// [`CheckpointError::InvalidState`] for an unknown format; [`CheckpointError::Decode`] if
/// the header does not decode.
pub fn keyed_state_types(bytes: &[u8]) -> Result<Option<StateTypes>> {
    let mut input = bytes;
    let format: u32 = next(&mut input, "keyed state format")?;
    match format {
        KEYED_STATE_FORMAT => Ok(None),
        KEYED_CHANGES_FORMAT | KEYED_SECTIONS_FORMAT => {
            let _max_parallelism: u32 = next(&mut input, "keyed state max parallelism")?;
            Ok(Some(next(&mut input, "keyed state type names")?))
        }
        other => Err(invalid(format!("unsupported keyed state format {other}"))),
    }
}

/// Decodes the entries of a keyed-state payload of format 1, 2 or 3 whose key group lies in
/// `owned`, in key-group order (see [`decode_keyed_state`] for how groups are skipped; format
/// 3 decodes only the sections of `owned`).
///
/// # Errors
/// As [`decode_keyed_state`], and for format 3 as [`read_keyed_index`] and
/// [`decode_keyed_section`].
pub fn decode_keyed_changes<K: DeserializeOwned, S: DeserializeOwned>(
    bytes: &[u8],
    owned: &KeyGroupRange,
    max_parallelism: u32,
) -> Result<KeyedChanges<K, S>> {
    if let Some(index) = read_keyed_index(bytes, max_parallelism)? {
        let mut entries = Vec::new();
        for section in index.sections_in(owned) {
            entries.extend(decode_keyed_section(bytes, section, index.delta)?);
        }
        return Ok(KeyedChanges {
            types: Some(index.types),
            delta: index.delta,
            entries,
        });
    }
    let mut input = bytes;
    let format: u32 = next(&mut input, "keyed state format")?;
    if format != KEYED_STATE_FORMAT && format != KEYED_CHANGES_FORMAT {
        return Err(invalid(format!(
            "unsupported keyed state format {format} (this build reads {KEYED_STATE_FORMAT} \
             and {KEYED_CHANGES_FORMAT})"
        )));
    }
    let found: u32 = next(&mut input, "keyed state max parallelism")?;
    if found != max_parallelism {
        return Err(CheckpointError::KeyGroupMismatch {
            found,
            expected: max_parallelism,
        });
    }
    let (types, delta) = if format == KEYED_CHANGES_FORMAT {
        let types: StateTypes = next(&mut input, "keyed state type names")?;
        let delta: bool = next(&mut input, "keyed state kind")?;
        (Some(types), delta)
    } else {
        (None, false)
    };
    let len: u64 = next(&mut input, "keyed state entry count")?;
    let mut entries = Vec::new();
    let mut previous = 0;
    for index in 0..len {
        let group: u32 = next(&mut input, "key group")?;
        if group >= max_parallelism || group < previous {
            return Err(invalid(format!(
                "entry {index} has key group {group} after {previous}, with {max_parallelism} \
                 key groups"
            )));
        }
        previous = group;
        if group >= owned.groups.end {
            // Sorted: no later entry is ours.
            return Ok(KeyedChanges {
                types,
                delta,
                entries,
            });
        }
        let entry: (K, Option<S>) = if format == KEYED_CHANGES_FORMAT {
            next(&mut input, "keyed state entry")?
        } else {
            let (key, state): (K, S) = next(&mut input, "keyed state entry")?;
            (key, Some(state))
        };
        if entry.1.is_none() && !delta {
            return Err(invalid(format!(
                "entry {index} removes a key in a full snapshot"
            )));
        }
        if owned.groups.contains(&group) {
            entries.push(entry);
        }
    }
    if !input.is_empty() {
        return Err(invalid(format!("{} trailing bytes", input.len())));
    }
    Ok(KeyedChanges {
        types,
        delta,
        entries,
    })
}

/// The encoded layout, borrowing keys and states so that encoding clones nothing.
#[derive(Serialize)]
struct KeyedStateRef<'a, K, S> {
    format: u32,
    max_parallelism: u32,
    entries: Vec<(u32, &'a K, &'a S)>,
}

/// Encodes keyed state: every `(key, state)` pair is tagged with its key's key group
/// ([`key_hash`] then [`key_group_of_hash`], exactly as the hash partitioner routes records)
/// and the pairs are sorted by key group.
///
/// Keys must hash the way the router hashed the records' keys: `String` and `str` agree, but a
/// key wrapped in another type generally does not.
///
/// # Errors
/// [`CheckpointError::InvalidArgument`] if `max_parallelism` is 0;
/// [`CheckpointError::Encode`] if a key or state cannot be serialized.
pub fn encode_keyed_state<'a, K, S, I>(entries: I, max_parallelism: u32) -> Result<Vec<u8>>
where
    K: Serialize + Hash + 'a,
    S: Serialize + 'a,
    I: IntoIterator<Item = (&'a K, &'a S)>,
{
    let entries = by_key_group(entries, max_parallelism)?;
    let state = KeyedStateRef {
        format: KEYED_STATE_FORMAT,
        max_parallelism,
        entries,
    };
    bincode_options()
        .serialize(&state)
        .map_err(|source| CheckpointError::Encode {
            what: format!("keyed state of {} entries", state.entries.len()),
            source,
        })
}

/// `entries` tagged with their keys' key groups ([`key_hash`] then [`key_group_of_hash`], as
/// the hash partitioner routes records) and sorted by key group.
///
/// # Errors
/// [`CheckpointError::InvalidArgument`] if `max_parallelism` is 0.
fn by_key_group<'a, K, S>(
    entries: impl IntoIterator<Item = (&'a K, S)>,
    max_parallelism: u32,
) -> Result<Vec<(u32, &'a K, S)>>
where
    K: Hash + 'a,
    S: Copy,
{
    if max_parallelism == 0 {
        return Err(CheckpointError::InvalidArgument {
            what: "max parallelism must be at least 1".to_owned(),
        });
    }
    let tagged: Vec<(u32, &K, S)> = entries
        .into_iter()
        .map(|(key, state)| {
            let group = key_group_of_hash(key_hash(key), max_parallelism);
            (group.0, key, state)
        })
        .collect();
    Ok(sort_by_key_group(&tagged, max_parallelism))
}

/// `tagged` in ascending key-group order, stable (keys within a group keep their order): a
/// counting sort, linear in the entries, since this runs on the task's thread during every
/// checkpoint.
fn sort_by_key_group<K, S>(tagged: &[(u32, K, S)], max_parallelism: u32) -> Vec<(u32, K, S)>
where
    K: Copy,
    S: Copy,
{
    let mut next = vec![0usize; max_parallelism as usize + 1];
    for &(group, _, _) in tagged {
        next[group as usize + 1] += 1;
    }
    for g in 1..next.len() {
        next[g] += next[g - 1];
    }
    let mut sorted = tagged.to_vec();
    for &entry in tagged {
        let slot = &mut next[entry.0 as usize];
        sorted[*slot] = entry;
        *slot += 1;
    }
    sorted
}

/// Decodes the entries of `bytes` whose key group lies in `owned`, in key-group order.
///
/// Entries of other key groups are decoded and dropped (bincode cannot skip a value without
/// decoding it), and decoding stops after the last owned group. To restore a task at a new
/// parallelism, call this on every old task's snapshot of the operator with the new task's
/// range and concatenate the results.
///
/// # Errors
/// - [`CheckpointError::KeyGroupMismatch`] if the state was written for another max
///   parallelism.
/// - [`CheckpointError::InvalidState`] for an unknown format, a key group out of range or out
///   of order, trailing bytes, or a delta (which only [`decode_keyed_changes`] reads).
/// - [`CheckpointError::Decode`] if the bytes do not decode as `K` and `S`.
pub fn decode_keyed_state<K: DeserializeOwned, S: DeserializeOwned>(
    bytes: &[u8],
    owned: &KeyGroupRange,
    max_parallelism: u32,
) -> Result<Vec<(K, S)>> {
    let changes = decode_keyed_changes(bytes, owned, max_parallelism)?;
    if changes.delta {
        return Err(invalid(
            "the payload is a delta of an earlier snapshot, not a full snapshot".to_owned(),
        ));
    }
    Ok(changes
        .entries
        .into_iter()
        .filter_map(|(key, state)| state.map(|state| (key, state)))
        .collect())
}

/// Decodes the next value from `input` and advances past it. The limit keeps a bogus length
/// prefix from allocating more than the input holds.
pub(super) fn next<T: DeserializeOwned>(input: &mut &[u8], what: &str) -> Result<T> {
    let limit = u64::try_from(input.len()).unwrap_or(u64::MAX);
    bincode_options()
        .with_limit(limit)
        .deserialize_from(&mut *input)
        .map_err(|source| CheckpointError::Decode {
            what: what.to_owned(),
            source,
        })
}

pub(super) fn invalid(reason: String) -> CheckpointError {
    CheckpointError::InvalidState { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{task_for_key_group, KeyGroup};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    proptest! {
        #[test]
        fn counting_sort_equals_a_stable_sort(groups in proptest::collection::vec(0u32..16, 0..200)) {
            let tagged: Vec<(u32, usize, ())> =
                groups.iter().enumerate().map(|(i, &g)| (g, i, ())).collect();
            let mut expected = tagged.clone();
            expected.sort_by_key(|&(g, _, _)| g);
            prop_assert_eq!(sort_by_key_group(&tagged, 16), expected);
        }
    }

    fn group_of(key: &String, max: u32) -> u32 {
        key_group_of_hash(key_hash(key), max).0
    }

    /// Decodes `bytes` for every task of `parallelism` and checks that each key comes back
    /// exactly once, in the task that owns its key group.
    fn redistribute(
        bytes: &[u8],
        parallelism: u32,
        max: u32,
    ) -> std::result::Result<BTreeMap<String, u64>, TestCaseError> {
        let mut union = BTreeMap::new();
        for task in 0..parallelism {
            let range = KeyGroupRange::for_task(task, parallelism, max);
            let part: Vec<(String, u64)> = decode_keyed_state(bytes, &range, max).expect("decode");
            let groups: Vec<u32> = part.iter().map(|(k, _)| group_of(k, max)).collect();
            prop_assert!(
                groups.windows(2).all(|w| w[0] <= w[1]),
                "not sorted: {groups:?}"
            );
            for (key, state) in part {
                let group = KeyGroup(group_of(&key, max));
                prop_assert!(range.contains(group), "{key} in task {task}");
                prop_assert_eq!(task_for_key_group(group, parallelism, max), task);
                prop_assert!(union.insert(key, state).is_none(), "key restored twice");
            }
        }
        Ok(union)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn state_round_trips_at_any_parallelism(
            state in proptest::collection::hash_map("\\PC{0,8}", any::<u64>(), 0..200),
            max in 1u32..300,
            p_seed in any::<u32>(),
        ) {
            let bytes = encode_keyed_state(&state, max).expect("encode");
            let parallelism = p_seed % max.min(8) + 1;
            let union = redistribute(&bytes, parallelism, max)?;
            let original: BTreeMap<String, u64> = state.into_iter().collect();
            prop_assert_eq!(union, original);
        }
    }

    #[test]
    fn state_written_at_parallelism_1_splits_over_3_tasks() {
        let max = 128;
        let state: HashMap<String, u64> = (0..1000).map(|i| (format!("word{i}"), i)).collect();
        // Parallelism 1: a single task owns every key group and writes one snapshot.
        let bytes = encode_keyed_state(&state, max).expect("encode");
        let all = KeyGroupRange::for_task(0, 1, max);
        let whole: Vec<(String, u64)> = decode_keyed_state(&bytes, &all, max).expect("decode");
        assert_eq!(whole.len(), state.len());

        let union = redistribute(&bytes, 3, max).expect("redistribute");
        assert_eq!(union, state.into_iter().collect::<BTreeMap<_, _>>());
    }

    #[test]
    fn changes_round_trip_with_types_and_removals() {
        let types = StateTypes::of::<String, u64>();
        let (a, b, c) = ("a".to_owned(), "b".to_owned(), "c".to_owned());
        let entries = [(&a, Some(&1u64)), (&b, None), (&c, Some(&3u64))];
        let bytes = encode_keyed_changes(entries, 8, &types, true).expect("encode");
        let all = KeyGroupRange::for_task(0, 1, 8);
        let changes: KeyedChanges<String, u64> =
            decode_keyed_changes(&bytes, &all, 8).expect("decode");
        assert!(changes.delta);
        assert_eq!(changes.types.as_ref(), Some(&types));
        let got: BTreeMap<String, Option<u64>> = changes.entries.into_iter().collect();
        let want = BTreeMap::from([(a, Some(1)), (b, None), (c, Some(3))]);
        assert_eq!(got, want);
        // A delta is not a full snapshot: the full-state reader refuses it.
        let refused = decode_keyed_state::<String, u64>(&bytes, &all, 8);
        assert!(
            matches!(refused, Err(CheckpointError::InvalidState { .. })),
            "{refused:?}"
        );
        // A removal in a full snapshot is invalid.
        let k = "k".to_owned();
        let full = encode_keyed_changes([(&k, None::<&u64>)], 8, &types, false).expect("encode");
        assert!(decode_keyed_changes::<String, u64>(&full, &all, 8).is_err());
    }

    #[test]
    fn format_1_reads_as_a_full_snapshot_without_types() {
        let state = HashMap::from([("a".to_owned(), 1u64)]);
        let bytes = encode_keyed_state(&state, 8).expect("encode");
        let all = KeyGroupRange::for_task(0, 1, 8);
        let changes: KeyedChanges<String, u64> =
            decode_keyed_changes(&bytes, &all, 8).expect("decode");
        assert_eq!(
            changes,
            KeyedChanges {
                types: None,
                delta: false,
                entries: vec![("a".to_owned(), Some(1))],
            }
        );
    }

    #[test]
    fn another_max_parallelism_is_refused() {
        let state = HashMap::from([("a".to_owned(), 1u64)]);
        let bytes = encode_keyed_state(&state, 128).expect("encode");
        let range = KeyGroupRange::for_task(0, 1, 64);
        let result = decode_keyed_state::<String, u64>(&bytes, &range, 64);
        assert!(
            matches!(
                result,
                Err(CheckpointError::KeyGroupMismatch {
                    found: 128,
                    expected: 64
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn zero_max_parallelism_is_an_invalid_argument() {
        let state = HashMap::from([("a".to_owned(), 1u64)]);
        let result = encode_keyed_state(&state, 0);
        assert!(
            matches!(result, Err(CheckpointError::InvalidArgument { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn malformed_state_is_an_error_never_a_panic() {
        let range = KeyGroupRange::for_task(0, 1, 8);
        let decode = |bytes: &[u8]| decode_keyed_state::<String, u64>(bytes, &range, 8);
        let encode = |format: u32, entries: Vec<(u32, &str, u64)>| {
            bincode_options()
                .serialize(&(format, 8u32, entries))
                .expect("bincode")
        };
        let cases = [
            (encode(4, vec![]), "unsupported keyed state format 4"),
            (encode(1, vec![(8, "a", 1)]), "key group 8"),
            (
                encode(1, vec![(3, "a", 1), (2, "b", 2)]),
                "key group 2 after 3",
            ),
        ];
        for (bytes, needle) in cases {
            match decode(&bytes) {
                Err(CheckpointError::InvalidState { reason }) => {
                    assert!(reason.contains(needle), "{reason}")
                }
                other => panic!("{needle}: {other:?}"),
            }
        }
        let mut trailing = encode(1, vec![(1, "a", 1)]);
        trailing.push(0);
        assert!(matches!(
            decode(&trailing),
            Err(CheckpointError::InvalidState { .. })
        ));

        let state: HashMap<String, u64> = (0..20).map(|i| (format!("k{i}"), i)).collect();
        let bytes = encode_keyed_state(&state, 8).expect("encode");
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        // A huge length prefix must fail on the limit, not attempt the allocation.
        let mut huge = encode(1, vec![(0, "a", 1)]);
        huge[20..28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Err(CheckpointError::Decode { .. })));
    }
}
