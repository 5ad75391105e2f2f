//! `process` on keyed streams: a user function with per-key state.

use crate::state::{KeyedState, KeyedStore};
use serde::de::DeserializeOwned;
use serde::Serialize;
use snapflow_engine::{
    BoxError, CheckpointId, Data, FrozenSnapshot, Key, KeySelector, KeyedStream, OperatorLifecycle,
    Output, RestoredState, SnapshotRequest, Stream, UnaryOperator,
};
use std::marker::PhantomData;
use std::sync::Arc;

/// A key that keyed state can be stored under: checkpoints serialize it.
pub trait StateKey: Key + Serialize + DeserializeOwned {}
impl<K: Key + Serialize + DeserializeOwned> StateKey for K {}

/// Adds `process` to keyed streams.
pub trait ProcessExt<K, T> {
    /// Calls `f(key, record, state, out)` for every record, where `state` is the record's key's
    /// state (its default when the key is new). `f` may emit any number of records.
    ///
    /// ```
    /// use snapflow_operators::prelude::*;
    ///
    /// let job = Job::new("running-sum");
    /// let sums = CollectSink::new();
    /// let results = sums.results();
    /// job.source(CollectionSource::new(vec![("a", 1), ("b", 2), ("a", 3)]))
    ///     .key_by(|(k, _): &(&str, i64)| k.to_string())
    ///     .process(|key: &String, (_, v): (&str, i64), sum: &mut ValueState<i64>, out: &mut Output<(String, i64)>| {
    ///         let total = sum.get().copied().unwrap_or(0) + v;
    ///         sum.set(total);
    ///         out.push((key.clone(), total));
    ///         Ok(())
    ///     })
    ///     .sink(sums);
    /// job.run(&JobConfig::default()).unwrap();
    /// let mut got = results.take();
    /// got.sort();
    /// assert_eq!(got, vec![("a".into(), 1), ("a".into(), 4), ("b".into(), 2)]);
    /// ```
    fn process<S, O, F>(self, f: F) -> Stream<O>
    where
        S: KeyedState,
        O: Data,
        F: Fn(&K, T, &mut S, &mut Output<O>) -> Result<(), BoxError> + Send + Sync + 'static;
}

impl<K: StateKey, T: Data> ProcessExt<K, T> for KeyedStream<K, T> {
    fn process<S, O, F>(self, f: F) -> Stream<O>
    where
        S: KeyedState,
        O: Data,
        F: Fn(&K, T, &mut S, &mut Output<O>) -> Result<(), BoxError> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.keyed_unary("process", move |task, key| {
            KeyedProcess::new(key, f.clone(), task.max_parallelism)
        })
    }
}

pub(crate) struct KeyedProcess<K, T, S, F> {
    key: KeySelector<T, K>,
    f: Arc<F>,
    store: KeyedStore<K, S>,
    max_parallelism: u32,
    _types: PhantomData<fn(T)>,
}

impl<K: StateKey, T, S: KeyedState, F> KeyedProcess<K, T, S, F> {
    /// One task's instance, with no state yet.
    pub(crate) fn new(key: KeySelector<T, K>, f: Arc<F>, max_parallelism: u32) -> Self {
        KeyedProcess {
            key,
            f,
            store: KeyedStore::new(),
            max_parallelism,
            _types: PhantomData,
        }
    }
}

impl<K, T, S, O, F> UnaryOperator<T, O> for KeyedProcess<K, T, S, F>
where
    K: StateKey,
    T: Data,
    S: KeyedState,
    O: Data,
    F: Fn(&K, T, &mut S, &mut Output<O>) -> Result<(), BoxError> + Send + Sync + 'static,
{
    fn process_batch(&mut self, batch: Vec<T>, out: &mut Output<O>) -> Result<(), BoxError> {
        let f = &*self.f;
        for record in batch {
            let key = (self.key)(&record);
            self.store
                .with(key, |key, state| f(key, record, state, out))?;
        }
        Ok(())
    }
}

impl<K, T, S, O, F> OperatorLifecycle<O> for KeyedProcess<K, T, S, F>
where
    K: StateKey,
    T: Data,
    S: KeyedState,
    O: Data,
    F: Fn(&K, T, &mut S, &mut Output<O>) -> Result<(), BoxError> + Send + Sync + 'static,
{
    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>, BoxError> {
        self.store.snapshot(self.max_parallelism).map(Some)
    }

    fn snapshot_frozen(&mut self, request: SnapshotRequest) -> Result<FrozenSnapshot, BoxError> {
        Ok(self.store.freeze(request, self.max_parallelism))
    }

    fn restore(&mut self, state: &RestoredState) -> Result<(), BoxError> {
        self.store.restore(state, self.max_parallelism)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.store.checkpoint_complete(checkpoint);
        Ok(())
    }
}
