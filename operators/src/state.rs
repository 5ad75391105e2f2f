//! Keyed state: what a keyed operator keeps per key.
//!
//! Each key has one state value of a type the operator chooses: a [`ValueState`], a
//! [`MapState`], or a tuple of them. The state types are serde-serializable because the
//! checkpoint path snapshots them, and `Clone + Sync` because a snapshot shares them with the
//! snapshot pool and a write during the snapshot copies the key's state (see [`KeyedStore`]); a key whose
//! state is empty takes no space.

pub use crate::keyed_store::KeyedStore;
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::hash::Hash;

/// A type usable as per-key state.
pub trait KeyedState:
    Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Whether the state holds nothing; empty states are removed from the operator's store.
    fn is_empty(&self) -> bool;

    /// Drops what expired by processing time `now` (ms since the epoch): state with a
    /// time-to-live ([`TtlValueState`]) is cleaned up lazily when read, and by this before
    /// every snapshot of a process function, so expired values are never checkpointed. The
    /// default keeps everything.
    fn expire(&mut self, _now: u64) {}
}

/// A value that expires a time-to-live after it was last written (Flink's `ValueState` with
/// a `StateTtlConfig` of update type `OnCreateAndWrite` and visibility `NeverReturnExpired`),
/// in processing time. Reads take the current processing time (`Context::current_processing_time`
/// in a process function).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtlValueState<V> {
    value: Option<V>,
    /// Processing time (ms since the epoch) from which the value is gone.
    expires_at: u64,
}

impl<V> Default for TtlValueState<V> {
    fn default() -> Self {
        TtlValueState {
            value: None,
            expires_at: 0,
        }
    }
}

impl<V> TtlValueState<V> {
    /// The value at processing time `now`, unless it expired (then it is dropped).
    pub fn get(&mut self, now: u64) -> Option<&V> {
        self.expire_at(now);
        self.value.as_ref()
    }

    /// Sets the value at processing time `now`; it expires `ttl` later.
    pub fn set(&mut self, value: V, now: u64, ttl: std::time::Duration) {
        self.value = Some(value);
        self.expires_at = now.saturating_add(ttl.as_millis() as u64);
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        self.value = None;
    }

    fn expire_at(&mut self, now: u64) {
        if self.value.is_some() && now >= self.expires_at {
            self.value = None;
        }
    }
}

impl<V: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> KeyedState
    for TtlValueState<V>
{
    fn is_empty(&self) -> bool {
        self.value.is_none()
    }

    fn expire(&mut self, now: u64) {
        self.expire_at(now);
    }
}

/// A single value per key (Flink's `ValueState`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueState<V>(Option<V>);

impl<V> Default for ValueState<V> {
    fn default() -> Self {
        ValueState(None)
    }
}

impl<V> ValueState<V> {
    /// The value, if one is set.
    pub fn get(&self) -> Option<&V> {
        self.0.as_ref()
    }

    /// The value for changing in place, if one is set.
    pub fn get_mut(&mut self) -> Option<&mut V> {
        self.0.as_mut()
    }

    /// Sets the value.
    pub fn set(&mut self, value: V) {
        self.0 = Some(value);
    }

    /// Removes and returns the value.
    pub fn take(&mut self) -> Option<V> {
        self.0.take()
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        self.0 = None;
    }
}

impl<V: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> KeyedState for ValueState<V> {
    fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

/// A list per key (Flink's `ListState`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListState<V>(Vec<V>);

impl<V> Default for ListState<V> {
    fn default() -> Self {
        ListState(Vec::new())
    }
}

impl<V> ListState<V> {
    /// Appends `value`.
    pub fn add(&mut self, value: V) {
        self.0.push(value);
    }

    /// Appends every value of `values`.
    pub fn add_all(&mut self, values: impl IntoIterator<Item = V>) {
        self.0.extend(values);
    }

    /// The values, in the order they were added.
    pub fn get(&self) -> &[V] {
        &self.0
    }

    /// Replaces the values.
    pub fn update(&mut self, values: Vec<V>) {
        self.0 = values;
    }

    /// Removes and returns every value.
    pub fn take(&mut self) -> Vec<V> {
        std::mem::take(&mut self.0)
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> KeyedState for ListState<V> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A map per key (Flink's `MapState`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, V: Serialize",
    deserialize = "K: Deserialize<'de> + Eq + Hash, V: Deserialize<'de>"
))]
pub struct MapState<K, V>(FxHashMap<K, V>);

impl<K: Eq + Hash, V: PartialEq> PartialEq for MapState<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K, V> Default for MapState<K, V> {
    fn default() -> Self {
        MapState(FxHashMap::default())
    }
}

impl<K: Eq + Hash, V> MapState<K, V> {
    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.0.get(key)
    }

    /// The value under `key`, for changing in place.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.0.get_mut(key)
    }

    /// Puts `value` under `key`, returning the value it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.0.insert(key, value)
    }

    /// Removes the value under `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.0.remove(key)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter()
    }

    /// The value under `key`, inserting `V::default()` first if there is none.
    pub fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        self.0.entry(key).or_default()
    }
}

impl<K, V> KeyedState for MapState<K, V>
where
    K: Clone + Serialize + DeserializeOwned + Eq + Hash + Send + Sync + 'static,
    V: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<A: KeyedState, B: KeyedState, C: KeyedState> KeyedState for (A, B, C) {
    fn is_empty(&self) -> bool {
        self.0.is_empty() && self.1.is_empty() && self.2.is_empty()
    }

    fn expire(&mut self, now: u64) {
        self.0.expire(now);
        self.1.expire(now);
        self.2.expire(now);
    }
}

impl<A: KeyedState, B: KeyedState> KeyedState for (A, B) {
    fn is_empty(&self) -> bool {
        self.0.is_empty() && self.1.is_empty()
    }

    fn expire(&mut self, now: u64) {
        self.0.expire(now);
        self.1.expire(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_state_is_not_stored() {
        let mut store: KeyedStore<String, ValueState<u64>> = KeyedStore::new();
        store.with("a".to_owned(), |_, s| assert!(s.get().is_none()));
        assert_eq!(store.len(), 0);
        store.with("a".to_owned(), |_, s| s.set(1));
        store.with("b".to_owned(), |_, s| s.set(2));
        assert_eq!(store.len(), 2);
        store.with("a".to_owned(), |_, s| s.clear());
        assert_eq!(store.len(), 1);
        assert_eq!(store.with("b".to_owned(), |_, s| s.get().copied()), Some(2));
    }

    #[test]
    fn a_ttl_value_expires_after_its_time_to_live_since_the_last_write() {
        let ttl = std::time::Duration::from_millis(100);
        let mut s = TtlValueState::default();
        s.set(7, 1_000, ttl);
        assert_eq!(s.get(1_099), Some(&7));
        s.set(8, 1_050, ttl);
        assert_eq!(s.get(1_120), Some(&8), "a write renews the time to live");
        assert_eq!(s.get(1_150), None);
        assert!(KeyedState::is_empty(&s));
        let mut pair: (TtlValueState<u8>, ValueState<u8>) = Default::default();
        pair.0.set(1, 0, ttl);
        pair.1.set(2);
        pair.expire(100);
        assert!(pair.0.get(0).is_none() && pair.1.get() == Some(&2));
    }

    #[test]
    fn list_state_keeps_order_and_is_empty_when_cleared() {
        let mut store: KeyedStore<String, ListState<u8>> = KeyedStore::new();
        store.with("a".to_owned(), |_, l| l.add_all([3, 1]));
        store.with("a".to_owned(), |_, l| l.add(2));
        assert_eq!(
            store.with("a".to_owned(), |_, l| l.get().to_vec()),
            vec![3, 1, 2]
        );
        store.with("a".to_owned(), |_, l| l.clear());
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn tuple_state_is_empty_only_when_both_parts_are() {
        let mut s: (ValueState<u8>, MapState<u8, u8>) = Default::default();
        assert!(KeyedState::is_empty(&s));
        s.1.insert(1, 1);
        assert!(!KeyedState::is_empty(&s));
        s.1.remove(&1);
        s.0.set(3);
        assert!(!KeyedState::is_empty(&s));
    }
}
