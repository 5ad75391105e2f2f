//! Timers as keyed state: what keyed event-time operators (process functions, windows) share.
//!
//! Each key's timers live in that key's state, so they are snapshotted and restored by key
//! group with it; a timer that fired before a checkpoint is gone from the state, and one that
//! had not fired is restored and fires after recovery: exactly once either way. To find what
//! is due without scanning every key, each task also keeps a [`TimerIndex`] from time to the
//! keys with a timer then, rebuilt from the state on restore. The index may hold entries
//! whose timer was deleted or already handled; the key's own state decides.
//!
//! [`TimeSnapshot`] wraps keyed state with the operator's current watermark and the key
//! groups the task owned, so that a restored task resumes at the minimum watermark over the
//! old owners of its key groups.

use rustc_hash::{FxHashMap, FxHashSet};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use snapflow_checkpoint::{decode_keyed_state, encode_keyed_state};
use snapflow_engine::{BoxError, Key, RestoredState};
use std::collections::BTreeMap;

/// Times (milliseconds, event or processing time) to the keys with a timer then.
pub(crate) struct TimerIndex<K> {
    due: BTreeMap<i64, Vec<K>>,
}

impl<K: Key> Default for TimerIndex<K> {
    fn default() -> Self {
        TimerIndex {
            due: BTreeMap::new(),
        }
    }
}

impl<K: Key> TimerIndex<K> {
    /// Notes that `key` has a timer at `time`.
    pub(crate) fn add(&mut self, time: i64, key: K) {
        self.due.entry(time).or_default().push(key);
    }

    /// The earliest time with an entry.
    pub(crate) fn next(&self) -> Option<i64> {
        self.due.keys().next().copied()
    }

    /// Removes and returns the earliest time at or before `upto` and its keys, each once.
    pub(crate) fn pop_due(&mut self, upto: i64) -> Option<(i64, Vec<K>)> {
        let entry = self.due.first_entry()?;
        if *entry.key() > upto {
            return None;
        }
        let (time, mut keys) = entry.remove_entry();
        if keys.len() > 1 {
            let mut seen = FxHashSet::default();
            keys.retain(|k| seen.insert(k.clone()));
        }
        Some((time, keys))
    }
}

/// A watermark as event-time operators keep it: `i64::MIN` before the first one.
pub(crate) fn watermark_value(wm: snapflow_engine::Timestamp) -> i64 {
    i64::try_from(wm.0).unwrap_or(i64::MAX)
}

/// The snapshot of a keyed event-time operator.
#[derive(Serialize, Deserialize)]
struct TimeSnapshot {
    /// The task's key groups, `start..end`.
    groups: (u32, u32),
    /// Its current watermark.
    watermark: i64,
    /// Its keyed state, as [`encode_keyed_state`] writes it.
    keyed: Vec<u8>,
}

/// Encodes `entries` with the task's `watermark` and key groups.
pub(crate) fn encode_time_snapshot<'a, K, S>(
    entries: impl IntoIterator<Item = (&'a K, &'a S)>,
    watermark: i64,
    groups: std::ops::Range<u32>,
    max_parallelism: u32,
) -> Result<Vec<u8>, BoxError>
where
    K: Serialize + std::hash::Hash + 'a,
    S: Serialize + 'a,
{
    let keyed = encode_keyed_state(entries, max_parallelism)?;
    Ok(bincode::serialize(&TimeSnapshot {
        groups: (groups.start, groups.end),
        watermark,
        keyed,
    })?)
}

/// Decodes every old task's snapshot: the entries of this task's key groups into `into`, and
/// returns the watermark to resume at: the minimum over the old tasks that owned any of this
/// task's key groups (`i64::MIN` when none did).
pub(crate) fn decode_time_snapshots<K, S>(
    state: &RestoredState,
    max_parallelism: u32,
    into: &mut FxHashMap<K, S>,
) -> Result<i64, BoxError>
where
    K: Key + DeserializeOwned,
    S: DeserializeOwned,
{
    let mine = &state.key_groups().groups;
    let mut watermark: Option<i64> = None;
    for payload in state.payloads() {
        let snapshot: TimeSnapshot = bincode::deserialize(payload)?;
        let (start, end) = snapshot.groups;
        if start < mine.end && mine.start < end {
            watermark = Some(watermark.map_or(snapshot.watermark, |w| w.min(snapshot.watermark)));
        }
        let entries: Vec<(K, S)> =
            decode_keyed_state(&snapshot.keyed, state.key_groups(), max_parallelism)?;
        into.extend(entries);
    }
    Ok(watermark.unwrap_or(i64::MIN))
}

/// The current watermark and the number of keys with state in a snapshot of a keyed
/// event-time operator (a window or a process function), for tests that check how state
/// grows and shrinks, whatever the key and state types.
///
/// # Errors
/// The bytes are not such a snapshot.
pub fn time_state_summary(snapshot: &[u8]) -> Result<(Option<i64>, u64), BoxError> {
    let snapshot: TimeSnapshot = bincode::deserialize(snapshot)?;
    // The keyed encoding starts with its format (u32), the max parallelism (u32) and the
    // entry count (u64), little-endian.
    let count = snapshot
        .keyed
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or("keyed state too short")?;
    let wm = (snapshot.watermark != i64::MIN).then_some(snapshot.watermark);
    Ok((wm, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapflow_engine::{CheckpointId, KeyGroupRange};

    #[test]
    fn pops_in_time_order_each_key_once() {
        let mut index = TimerIndex::default();
        index.add(20, "b");
        index.add(10, "a");
        index.add(10, "a");
        index.add(10, "c");
        assert_eq!(index.next(), Some(10));
        assert_eq!(index.pop_due(5), None);
        assert_eq!(index.pop_due(30), Some((10, vec!["a", "c"])));
        assert_eq!(index.pop_due(30), Some((20, vec!["b"])));
        assert_eq!(index.pop_due(30), None);
    }

    #[test]
    fn restore_takes_the_minimum_watermark_over_the_old_owners_of_its_groups() {
        let a: FxHashMap<String, u8> = [("x".to_owned(), 1)].into_iter().collect();
        let b: FxHashMap<String, u8> = [("y".to_owned(), 2)].into_iter().collect();
        let old0 = encode_time_snapshot(a.iter(), 100, 0..64, 128).unwrap();
        let old1 = encode_time_snapshot(b.iter(), 40, 64..128, 128).unwrap();
        // One task taking everything: the minimum of both, and both keys.
        let all = RestoredState::from_payloads(
            CheckpointId(1),
            KeyGroupRange::for_task(0, 1, 128),
            vec![old0.clone(), old1.clone()],
        );
        let mut into = FxHashMap::default();
        assert_eq!(
            decode_time_snapshots::<String, u8>(&all, 128, &mut into).unwrap(),
            40
        );
        assert_eq!(into.len(), 2);
        // A task owning only the first half: only the first old owner counts.
        let half = RestoredState::from_payloads(
            CheckpointId(1),
            KeyGroupRange { groups: 0..32 },
            vec![old0, old1],
        );
        let mut into = FxHashMap::default();
        assert_eq!(
            decode_time_snapshots::<String, u8>(&half, 128, &mut into).unwrap(),
            100
        );
    }
}
