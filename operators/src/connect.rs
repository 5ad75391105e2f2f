//! `process` on two connected keyed streams: one function and one per-key state for both.

use crate::process::StateKey;
use crate::state::{KeyedState, KeyedStore};
use snapflow_engine::{
    BinaryOperator, BoxError, CheckpointId, ConnectedKeyedStreams, Data, Either, FrozenSnapshot,
    KeySelector, OperatorLifecycle, Output, RestoredState, SnapshotRequest, Stream,
};
use std::marker::PhantomData;
use std::sync::Arc;

/// Adds `process` to connected keyed streams (Flink's `KeyedCoProcessFunction`).
pub trait CoProcessExt<K, A, B> {
    /// Calls `f(key, record, state, out)` for every record of either stream, with the record
    /// wrapped in [`Either::Left`] (first stream) or [`Either::Right`] (second stream). Both
    /// streams' records of a key share one state.
    fn process<S, O, F>(self, f: F) -> Stream<O>
    where
        S: KeyedState,
        O: Data,
        F: Fn(&K, Either<A, B>, &mut S, &mut Output<O>) -> Result<(), BoxError>
            + Send
            + Sync
            + 'static;
}

impl<K: StateKey, A: Data, B: Data> CoProcessExt<K, A, B> for ConnectedKeyedStreams<K, A, B> {
    fn process<S, O, F>(self, f: F) -> Stream<O>
    where
        S: KeyedState,
        O: Data,
        F: Fn(&K, Either<A, B>, &mut S, &mut Output<O>) -> Result<(), BoxError>
            + Send
            + Sync
            + 'static,
    {
        let f = Arc::new(f);
        self.keyed_binary("co_process", move |task, key_a, key_b| KeyedCoProcess {
            key_a,
            key_b,
            f: f.clone(),
            store: KeyedStore::new(),
            max_parallelism: task.max_parallelism,
            _types: PhantomData,
        })
    }
}

struct KeyedCoProcess<K, A, B, S, F> {
    key_a: KeySelector<A, K>,
    key_b: KeySelector<B, K>,
    f: Arc<F>,
    store: KeyedStore<K, S>,
    max_parallelism: u32,
    _types: PhantomData<fn(A, B)>,
}

impl<K, A, B, S, O, F> BinaryOperator<A, B, O> for KeyedCoProcess<K, A, B, S, F>
where
    K: StateKey,
    A: Data,
    B: Data,
    S: KeyedState,
    O: Data,
    F: Fn(&K, Either<A, B>, &mut S, &mut Output<O>) -> Result<(), BoxError> + Send + Sync + 'static,
{
    fn process_first(&mut self, batch: Vec<A>, out: &mut Output<O>) -> Result<(), BoxError> {
        let f = &*self.f;
        for record in batch {
            let key = (self.key_a)(&record);
            self.store
                .with(key, |key, state| f(key, Either::Left(record), state, out))?;
        }
        Ok(())
    }

    fn process_second(&mut self, batch: Vec<B>, out: &mut Output<O>) -> Result<(), BoxError> {
        let f = &*self.f;
        for record in batch {
            let key = (self.key_b)(&record);
            self.store
                .with(key, |key, state| f(key, Either::Right(record), state, out))?;
        }
        Ok(())
    }
}

impl<K, A, B, S, O, F> OperatorLifecycle<O> for KeyedCoProcess<K, A, B, S, F>
where
    K: StateKey,
    A: Data,
    B: Data,
    S: KeyedState,
    O: Data,
    F: Fn(&K, Either<A, B>, &mut S, &mut Output<O>) -> Result<(), BoxError> + Send + Sync + 'static,
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
