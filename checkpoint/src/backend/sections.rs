//! Keyed-state format 3: one section per key group, behind an index, so that a reader can
//! decode one key group without decoding the others (lazy restore decodes a key group the
//! first time one of its keys is touched).
//!
//! Encoding (bincode, fixed-width little-endian integers):
//!
//! ```text
//! format u32 = 3, max parallelism u32, type names (StateTypes), delta bool   (as format 2)
//! index: count u64, then per section (key group u32, entries u64, byte length u64),
//!        key groups strictly ascending
//! sections: back to back, in index order; a section is `entries` values
//!        (key, Option<state>) of its key group, and exactly `byte length` bytes
//! ```
//!
//! The index is read and checked on its own ([`read_keyed_index`]): the sections must tile the
//! rest of the payload exactly, so that a damaged index is refused before any section is
//! decoded.

use super::keyed::{invalid, next, StateTypes, KEYED_CHANGES_FORMAT, KEYED_STATE_FORMAT};
use crate::error::{CheckpointError, Result};
use crate::format::bincode_options;
use crate::KeyGroupRange;
use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::ops::Range;

/// The keyed-state encoding version [`encode_keyed_changes`](super::encode_keyed_changes)
/// writes: format 2's header, then one indexed section per key group.
pub const KEYED_SECTIONS_FORMAT: u32 = 3;

/// Bytes of one index entry: key group u32, entries u64, byte length u64.
const INDEX_ENTRY_LEN: usize = 4 + 8 + 8;

/// The header and index of a format-3 keyed-state payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedIndex {
    /// The types the state was written with.
    pub types: StateTypes,
    /// Whether the payload holds only the keys changed since an earlier snapshot.
    pub delta: bool,
    /// One section per key group with entries, in ascending key-group order.
    pub sections: Vec<KeyedSection>,
}

/// Where one key group's entries lie in a format-3 payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedSection {
    /// The key group.
    pub group: u32,
    /// How many `(key, Option<state>)` entries the section holds (at least 1).
    pub entries: u64,
    /// The section's bytes, as a range of the whole payload.
    pub bytes: Range<usize>,
}

impl KeyedIndex {
    /// The sections of the key groups in `owned`, in key-group order.
    pub fn sections_in(&self, owned: &KeyGroupRange) -> &[KeyedSection] {
        let start = self
            .sections
            .partition_point(|s| s.group < owned.groups.start);
        let end = self
            .sections
            .partition_point(|s| s.group < owned.groups.end);
        &self.sections[start..end.max(start)]
    }
}

/// Reads the header and index of a keyed-state payload: `Some` for format 3, `None` for
/// formats 1 and 2, which have no index and are read whole ([`decode_keyed_changes`]).
///
/// [`decode_keyed_changes`]: super::decode_keyed_changes
///
/// # Errors
/// - [`CheckpointError::KeyGroupMismatch`] if a format-3 payload was written for another max
///   parallelism.
/// - [`CheckpointError::InvalidState`] for an unknown format, or an index whose key groups are
///   out of range or order, whose sections are empty or do not tile the rest of the payload
///   exactly.
/// - [`CheckpointError::Decode`] if the header or index does not decode.
pub fn read_keyed_index(bytes: &[u8], max_parallelism: u32) -> Result<Option<KeyedIndex>> {
    let mut input = bytes;
    let format: u32 = next(&mut input, "keyed state format")?;
    match format {
        KEYED_STATE_FORMAT | KEYED_CHANGES_FORMAT => return Ok(None),
        KEYED_SECTIONS_FORMAT => {}
        other => {
            return Err(invalid(format!(
                "unsupported keyed state format {other} (this build reads {KEYED_STATE_FORMAT}, \
                 {KEYED_CHANGES_FORMAT} and {KEYED_SECTIONS_FORMAT})"
            )))
        }
    }
    let found: u32 = next(&mut input, "keyed state max parallelism")?;
    if found != max_parallelism {
        return Err(CheckpointError::KeyGroupMismatch {
            found,
            expected: max_parallelism,
        });
    }
    let types: StateTypes = next(&mut input, "keyed state type names")?;
    let delta: bool = next(&mut input, "keyed state kind")?;
    let count: u64 = next(&mut input, "keyed state index length")?;
    let index_len = usize::try_from(count)
        .ok()
        .and_then(|count| count.checked_mul(INDEX_ENTRY_LEN))
        .filter(|&len| len <= input.len())
        .ok_or_else(|| {
            invalid(format!(
                "the keyed state index claims {count} sections, more than the payload holds"
            ))
        })?;
    let mut offset = bytes.len() - input.len() + index_len;
    let mut sections = Vec::with_capacity(index_len / INDEX_ENTRY_LEN);
    for position in 0..count {
        let (group, entries, len): (u32, u64, u64) = next(&mut input, "keyed state index entry")?;
        if group >= max_parallelism {
            return Err(invalid(format!(
                "section {position} has key group {group}, with {max_parallelism} key groups"
            )));
        }
        if let Some(previous) = sections.last().map(|s: &KeyedSection| s.group) {
            if group <= previous {
                return Err(invalid(format!(
                    "section {position} has key group {group} after {previous}"
                )));
            }
        }
        // Every entry takes at least one byte (its `Option` tag): this also bounds the loop
        // that decodes the section.
        if entries == 0 || entries > len {
            return Err(invalid(format!(
                "section {position} (key group {group}) claims {entries} entries in {len} bytes"
            )));
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| offset.checked_add(len))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                invalid(format!(
                    "section {position} (key group {group}) of {len} bytes runs past the end of \
                     the payload"
                ))
            })?;
        sections.push(KeyedSection {
            group,
            entries,
            bytes: offset..end,
        });
        offset = end;
    }
    if offset != bytes.len() {
        return Err(invalid(format!(
            "{} bytes after the last section",
            bytes.len() - offset
        )));
    }
    Ok(Some(KeyedIndex {
        types,
        delta,
        sections,
    }))
}

/// Decodes one section of a format-3 payload `bytes` (as [`read_keyed_index`] found it):
/// its entries in the order they were written.
///
/// # Errors
/// - [`CheckpointError::InvalidState`] if the section lies outside `bytes`, decodes with bytes
///   to spare, or removes a key in a full snapshot (`delta` false).
/// - [`CheckpointError::Decode`] if an entry does not decode as `K` and `S`.
pub fn decode_keyed_section<K: DeserializeOwned, S: DeserializeOwned>(
    bytes: &[u8],
    section: &KeyedSection,
    delta: bool,
) -> Result<Vec<(K, Option<S>)>> {
    let group = section.group;
    let mut input = bytes.get(section.bytes.clone()).ok_or_else(|| {
        invalid(format!(
            "section of key group {group} at {:?} lies outside the payload of {} bytes",
            section.bytes,
            bytes.len()
        ))
    })?;
    // `entries` is at most the section's length (checked by the index reader), so this
    // allocates no more than the bytes could hold.
    let capacity = usize::try_from(section.entries)
        .unwrap_or(usize::MAX)
        .min(input.len());
    let mut entries = Vec::with_capacity(capacity);
    for index in 0..section.entries {
        let entry: (K, Option<S>) = next(&mut input, "keyed state entry")?;
        if entry.1.is_none() && !delta {
            return Err(invalid(format!(
                "entry {index} of key group {group} removes a key in a full snapshot"
            )));
        }
        entries.push(entry);
    }
    if !input.is_empty() {
        return Err(invalid(format!(
            "section of key group {group} has {} trailing bytes",
            input.len()
        )));
    }
    Ok(entries)
}

/// Encodes `sorted` (entries tagged with their key group, in ascending key-group order) in
/// format 3.
pub(super) fn encode_sections<K: Serialize, S: Serialize>(
    sorted: &[(u32, &K, Option<&S>)],
    max_parallelism: u32,
    types: &StateTypes,
    delta: bool,
) -> Result<Vec<u8>> {
    let options = bincode_options();
    let encode_error = |source| CheckpointError::Encode {
        what: format!("keyed state of {} entries", sorted.len()),
        source,
    };
    let mut out = Vec::new();
    options
        .serialize_into(
            &mut out,
            &(KEYED_SECTIONS_FORMAT, max_parallelism, types, delta),
        )
        .map_err(encode_error)?;
    let groups = sorted.chunk_by(|a, b| a.0 == b.0).count();
    options
        .serialize_into(&mut out, &(groups as u64))
        .map_err(encode_error)?;
    // The index is fixed-width: reserve it, write the sections, then fill it in.
    let index_at = out.len();
    out.resize(index_at + groups * INDEX_ENTRY_LEN, 0);
    let mut index = Vec::with_capacity(groups);
    for run in sorted.chunk_by(|a, b| a.0 == b.0) {
        let start = out.len();
        for &(_, key, state) in run {
            options
                .serialize_into(&mut out, &(key, state))
                .map_err(encode_error)?;
        }
        index.push((run[0].0, run.len() as u64, (out.len() - start) as u64));
    }
    for (slot, (group, entries, len)) in
        out[index_at..].chunks_exact_mut(INDEX_ENTRY_LEN).zip(index)
    {
        slot[..4].copy_from_slice(&group.to_le_bytes());
        slot[4..12].copy_from_slice(&entries.to_le_bytes());
        slot[12..].copy_from_slice(&len.to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{decode_keyed_changes, encode_keyed_changes, KeyedChanges};
    use crate::{key_group_of_hash, key_hash};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Changes = BTreeMap<String, Option<u64>>;

    fn types() -> StateTypes {
        StateTypes::of::<String, u64>()
    }

    fn encode(changes: &Changes, max: u32, delta: bool) -> Vec<u8> {
        encode_keyed_changes(
            changes.iter().map(|(k, v)| (k, v.as_ref())),
            max,
            &types(),
            delta,
        )
        .expect("encode")
    }

    fn all(max: u32) -> KeyGroupRange {
        KeyGroupRange { groups: 0..max }
    }

    fn decode(bytes: &[u8], range: &KeyGroupRange, max: u32) -> Result<KeyedChanges<String, u64>> {
        decode_keyed_changes(bytes, range, max)
    }

    fn group_of(key: &str, max: u32) -> u32 {
        key_group_of_hash(key_hash(key), max).0
    }

    /// Format 2 as the previous build wrote it, for the old-format tests.
    fn encode_format_2(changes: &Changes, max: u32, delta: bool) -> Vec<u8> {
        let mut entries: Vec<(u32, &String, Option<u64>)> = changes
            .iter()
            .map(|(k, v)| (group_of(k, max), k, *v))
            .collect();
        entries.sort_by_key(|e| e.0);
        bincode_options()
            .serialize(&(KEYED_CHANGES_FORMAT, max, types(), delta, entries))
            .expect("bincode")
    }

    fn changes() -> impl Strategy<Value = Changes> {
        proptest::collection::btree_map(
            "\\PC{0,8}",
            proptest::option::weighted(0.8, any::<u64>()),
            0..200,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Format 3 round trips, split at any parallelism, and decoding one key group's
        /// section alone gives that group's entries of a full decode, in the same order.
        #[test]
        fn sections_round_trip_and_a_group_decodes_alone(
            changes in changes(), max in 1u32..200, p_seed in any::<u32>(),
        ) {
            let bytes = encode(&changes, max, true);
            let whole = decode(&bytes, &all(max), max).expect("decode");
            prop_assert!(whole.delta);
            prop_assert_eq!(whole.types.as_ref(), Some(&types()));
            let got: Changes = whole.entries.iter().cloned().collect();
            prop_assert_eq!(&got, &changes);

            let index = read_keyed_index(&bytes, max).expect("index").expect("format 3");
            prop_assert!(index.delta);
            for section in &index.sections {
                let alone: Vec<(String, Option<u64>)> =
                    decode_keyed_section(&bytes, section, true).expect("section");
                let of_group: Vec<(String, Option<u64>)> = whole
                    .entries
                    .iter()
                    .filter(|(k, _)| group_of(k, max) == section.group)
                    .cloned()
                    .collect();
                prop_assert_eq!(alone.len() as u64, section.entries);
                prop_assert_eq!(alone, of_group);
            }

            let parallelism = p_seed % max.min(8) + 1;
            let mut union = Changes::new();
            for task in 0..parallelism {
                let range = KeyGroupRange::for_task(task, parallelism, max);
                for (key, value) in decode(&bytes, &range, max).expect("decode").entries {
                    prop_assert!(range.groups.contains(&group_of(&key, max)));
                    prop_assert!(union.insert(key, value).is_none(), "a key decoded twice");
                }
            }
            prop_assert_eq!(union, changes);
        }

        /// Format 2 (the previous build's) still reads, as the same changes as format 3.
        #[test]
        fn format_2_still_reads(changes in changes(), max in 1u32..64) {
            let old = encode_format_2(&changes, max, true);
            prop_assert_eq!(read_keyed_index(&old, max).expect("header"), None);
            let from_old = decode(&old, &all(max), max).expect("old");
            let from_new = decode(&encode(&changes, max, true), &all(max), max).expect("new");
            prop_assert_eq!(from_old, from_new);
        }

        /// Any damaged byte or truncation gives an error or (where the byte was inside a key
        /// or value) other entries, never a panic; a truncation is always refused.
        #[test]
        fn damaged_payloads_never_panic(
            changes in changes(), at in any::<usize>(), byte in any::<u8>(),
        ) {
            let max = 16;
            let mut bytes = encode(&changes, max, true);
            let at = at % bytes.len();
            prop_assert!(decode(&bytes[..at], &all(max), max).is_err(), "truncated to {}", at);
            bytes[at] = byte;
            let _ = decode(&bytes, &all(max), max);
        }
    }

    /// A format-3 payload of `changes` and where its index starts.
    fn with_index_at(changes: &Changes, max: u32) -> (Vec<u8>, usize) {
        let bytes = encode(changes, max, false);
        let index = read_keyed_index(&bytes, max)
            .expect("index")
            .expect("format 3");
        let end_of_index = index.sections[0].bytes.start;
        (bytes, end_of_index - index.sections.len() * INDEX_ENTRY_LEN)
    }

    /// A format-3 payload of 50 keys, where its index starts, and its sections.
    fn fifty_keys(max: u32) -> (Vec<u8>, usize, Vec<KeyedSection>) {
        let changes: Changes = (0..50).map(|i| (format!("k{i}"), Some(i))).collect();
        let (good, at) = with_index_at(&changes, max);
        let sections = read_keyed_index(&good, max)
            .expect("ok")
            .expect("3")
            .sections;
        (good, at, sections)
    }

    fn refused(bytes: &[u8], max: u32, needle: &str) {
        match read_keyed_index(bytes, max) {
            Err(CheckpointError::InvalidState { reason }) => {
                assert!(reason.contains(needle), "{needle}: {reason}")
            }
            other => panic!("{needle}: {other:?}"),
        }
    }

    #[test]
    fn a_damaged_index_is_refused_naming_the_fault() {
        let max = 8;
        let (good, at, sections) = fifty_keys(max);
        assert!(sections.len() >= 2, "{sections:?}");
        let count_at = at - 8;
        let patch = |offset: usize, value: &[u8]| {
            let mut bytes = good.clone();
            bytes[offset..offset + value.len()].copy_from_slice(value);
            bytes
        };
        // Entry fields: group at +0, entries at +4, length at +12.
        let second = at + INDEX_ENTRY_LEN;
        let last = at + (sections.len() - 1) * INDEX_ENTRY_LEN;
        let last_len = sections[sections.len() - 1].bytes.len() as u64;
        let cases = [
            (patch(count_at, &u64::MAX.to_le_bytes()), "claims"),
            (patch(at, &max.to_le_bytes()), "key group 8"),
            (
                patch(second, &sections[0].group.to_le_bytes()),
                &*format!("after {}", sections[0].group),
            ),
            (patch(at + 4, &0u64.to_le_bytes()), "claims 0 entries"),
            (patch(at + 4, &u64::MAX.to_le_bytes()), "entries in"),
            (patch(at + 12, &u64::MAX.to_le_bytes()), "past the end"),
            (
                patch(last + 12, &(last_len - 1).to_le_bytes()),
                "1 bytes after the last section",
            ),
        ];
        for (bytes, needle) in cases {
            refused(&bytes, max, needle);
        }
        let mut trailing = good.clone();
        trailing.push(0);
        refused(&trailing, max, "1 bytes after the last section");
        // Another max parallelism.
        assert!(matches!(
            read_keyed_index(&good, 16),
            Err(CheckpointError::KeyGroupMismatch {
                found: 8,
                expected: 16
            })
        ));
    }

    #[test]
    fn a_damaged_section_is_refused_not_a_panic() {
        let max = 8;
        let (good, at, sections) = fifty_keys(max);
        // Move a byte from the first section to the second: the index still tiles the
        // payload, but neither section decodes exactly.
        let mut moved = good.clone();
        let first_len = sections[0].bytes.len() as u64;
        let second_len = sections[1].bytes.len() as u64;
        moved[at + 12..at + 20].copy_from_slice(&(first_len - 1).to_le_bytes());
        let second = at + INDEX_ENTRY_LEN;
        moved[second + 12..second + 20].copy_from_slice(&(second_len + 1).to_le_bytes());
        let index = read_keyed_index(&moved, max).expect("tiles").expect("3");
        for section in &index.sections[..2] {
            let result = decode_keyed_section::<String, u64>(&moved, section, false);
            assert!(
                matches!(
                    result,
                    Err(CheckpointError::InvalidState { .. } | CheckpointError::Decode { .. })
                ),
                "{result:?}"
            );
        }
        // A section outside the payload (an index from another payload).
        let outside = KeyedSection {
            group: 0,
            entries: 1,
            bytes: good.len()..good.len() + 4,
        };
        assert!(matches!(
            decode_keyed_section::<String, u64>(&good, &outside, false),
            Err(CheckpointError::InvalidState { .. })
        ));
        // A removal in a full snapshot.
        let removal: Changes = BTreeMap::from([("k".to_owned(), None)]);
        let full = encode(&removal, max, false);
        let index = read_keyed_index(&full, max).expect("ok").expect("3");
        let result = decode_keyed_section::<String, u64>(&full, &index.sections[0], false);
        assert!(
            matches!(&result, Err(CheckpointError::InvalidState { reason }) if reason.contains("removes")),
            "{result:?}"
        );
    }

    #[test]
    fn sections_of_a_range_are_those_of_its_groups() {
        let max = 16;
        let changes: Changes = (0..100).map(|i| (format!("k{i}"), Some(i))).collect();
        let bytes = encode(&changes, max, false);
        let index = read_keyed_index(&bytes, max).expect("ok").expect("3");
        for task in 0..3 {
            let range = KeyGroupRange::for_task(task, 3, max);
            let got: Vec<u32> = index.sections_in(&range).iter().map(|s| s.group).collect();
            let want: Vec<u32> = index
                .sections
                .iter()
                .map(|s| s.group)
                .filter(|g| range.groups.contains(g))
                .collect();
            assert_eq!(got, want);
        }
        let empty = encode(&Changes::new(), max, false);
        let index = read_keyed_index(&empty, max).expect("ok").expect("3");
        assert!(index.sections.is_empty());
        assert!(decode(&empty, &all(max), max)
            .expect("empty")
            .entries
            .is_empty());
    }
}
