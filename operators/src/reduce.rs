//! `reduce` and `fold` on keyed streams: a running aggregate per key, emitted on every record.

use crate::process::{ProcessExt, StateKey};
use crate::state::ValueState;
use serde::de::DeserializeOwned;
use serde::Serialize;
use snapflow_engine::{Data, KeyedStream, Output, Stream};

/// Adds `reduce` and `fold` to keyed streams.
pub trait ReduceExt<K, T> {
    /// Combines each record with its key's aggregate so far (`f(aggregate, record)`; the first
    /// record of a key is its first aggregate) and emits the new aggregate.
    fn reduce<F>(self, f: F) -> Stream<T>
    where
        T: Serialize + DeserializeOwned + Sync,
        F: Fn(T, T) -> T + Send + Sync + 'static;

    /// Folds each record into its key's accumulator, starting from `init`, and emits
    /// `(key, accumulator)`.
    fn fold<A, F>(self, init: A, f: F) -> Stream<(K, A)>
    where
        A: Data + Serialize + DeserializeOwned + Sync,
        F: Fn(A, T) -> A + Send + Sync + 'static;
}

impl<K: StateKey, T: Data> ReduceExt<K, T> for KeyedStream<K, T> {
    fn reduce<F>(self, f: F) -> Stream<T>
    where
        T: Serialize + DeserializeOwned + Sync,
        F: Fn(T, T) -> T + Send + Sync + 'static,
    {
        self.process(
            move |_: &K, record: T, acc: &mut ValueState<T>, out: &mut Output<T>| {
                let next = match acc.take() {
                    Some(previous) => f(previous, record),
                    None => record,
                };
                acc.set(next.clone());
                out.push(next);
                Ok(())
            },
        )
        .name("reduce")
    }

    fn fold<A, F>(self, init: A, f: F) -> Stream<(K, A)>
    where
        A: Data + Serialize + DeserializeOwned + Sync,
        F: Fn(A, T) -> A + Send + Sync + 'static,
    {
        self.process(
            move |key: &K, record: T, acc: &mut ValueState<A>, out: &mut Output<(K, A)>| {
                let next = f(acc.take().unwrap_or_else(|| init.clone()), record);
                acc.set(next.clone());
                out.push((key.clone(), next));
                Ok(())
            },
        )
        .name("fold")
    }
}
