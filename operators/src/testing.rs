//! Harnesses for this crate's keyed operators, built on the engine's
//! [`testing`](snapflow_engine::testing) harnesses.
//!
//! A keyed operator in a job gets its instances from a factory the stream builder keeps; here a
//! test gets one directly, to push records, snapshot, and restore another instance, possibly
//! owning other key groups (a rescale), from the snapshot.
//!
//! ```
//! use snapflow_engine::testing::OneInputHarness;
//! use snapflow_operators::prelude::*;
//! use snapflow_operators::testing::keyed_process_harness;
//!
//! let count = |key: &String, _: String, n: &mut ValueState<u64>, out: &mut Output<(String, u64)>| {
//!     let next = n.get().copied().unwrap_or(0) + 1;
//!     n.set(next);
//!     out.push((key.clone(), next));
//!     Ok(())
//! };
//! let mut harness: OneInputHarness<String, (String, u64)> =
//!     keyed_process_harness(|word: &String| word.clone(), count, 128);
//! harness.open().unwrap();
//! harness.process(vec!["a".into(), "b".into(), "a".into()]).unwrap();
//! assert_eq!(
//!     harness.take_output(),
//!     vec![("a".into(), 1), ("b".into(), 1), ("a".into(), 2)]
//! );
//! ```

use crate::map::Map;
use crate::process::{KeyedProcess, StateKey};
use crate::state::KeyedState;
use snapflow_checkpoint::{decode_keyed_state, KeyGroupRange};
use snapflow_engine::testing::OneInputHarness;
use snapflow_engine::{BoxError, Data, Output};
use std::sync::Arc;

/// A harness around one instance of what [`map`](crate::MapExt::map) builds.
pub fn map_harness<T, O, F>(f: F) -> OneInputHarness<T, O>
where
    T: Data,
    O: Data,
    F: Fn(T) -> O + Send + Sync + 'static,
{
    OneInputHarness::new(Map::new(Arc::new(f)))
}

/// A harness around one instance of what [`process`](crate::ProcessExt::process) builds: `f`
/// called per record with the state of the key `key` selects, in a job of `max_parallelism`
/// key groups.
///
/// The instance processes every record it is given, whatever its key group; restore it with
/// [`OneInputHarness::restore_from`] and the key groups it should own to test rescaling.
pub fn keyed_process_harness<K, T, S, O, F>(
    key: impl Fn(&T) -> K + Send + Sync + 'static,
    f: F,
    max_parallelism: u32,
) -> OneInputHarness<T, O>
where
    K: StateKey,
    T: Data,
    S: KeyedState,
    O: Data,
    F: Fn(&K, T, &mut S, &mut Output<O>) -> Result<(), BoxError> + Send + Sync + 'static,
{
    OneInputHarness::new(KeyedProcess::<K, T, S, F>::new(
        Arc::new(key),
        Arc::new(f),
        max_parallelism,
    ))
}

/// The entries of a keyed operator's snapshot (one that `process` or a [`KeyedStore`]
/// wrote), for checking state directly; in no particular order.
///
/// [`KeyedStore`]: crate::KeyedStore
///
/// # Errors
/// `snapshot` does not decode as keys `K` and states `S` of `max_parallelism` key groups.
pub fn keyed_state_entries<K: StateKey, S: KeyedState>(
    snapshot: &[u8],
    max_parallelism: u32,
) -> Result<Vec<(K, S)>, BoxError> {
    let all = KeyGroupRange {
        groups: 0..max_parallelism,
    };
    Ok(decode_keyed_state(snapshot, &all, max_parallelism)?)
}
