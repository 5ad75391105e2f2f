//! What a window computes: an incremental `reduce` or `aggregate`, or a `process` function
//! over all of the window's elements.

use crate::window::assigner::Window;
use serde::de::DeserializeOwned;
use serde::Serialize;
use snapflow_engine::Data;
use std::marker::PhantomData;

/// An incremental aggregation (Flink's `AggregateFunction`): records are folded into an
/// accumulator as they arrive, so a window keeps one accumulator, not its records.
pub trait AggregateFunction<T>: Send + Sync + 'static {
    /// The accumulator: checkpointed with the window.
    type Acc: Serialize + DeserializeOwned + Send + 'static;
    /// The result.
    type Out: Data;

    /// An empty accumulator.
    fn create_accumulator(&self) -> Self::Acc;
    /// Adds one record.
    fn add(&self, value: T, acc: &mut Self::Acc);
    /// The result for a window whose accumulator is `acc`.
    fn get_result(&self, acc: &Self::Acc) -> Self::Out;
    /// Folds `other` into `acc`, for session windows that merge.
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
}

/// How the window operator keeps and emits a window's contents; one implementation per
/// window function kind.
pub(crate) trait WindowFunction<K, T>: Send + Sync + 'static {
    /// A window's contents.
    type Acc: Serialize + DeserializeOwned + Send + 'static;
    /// What a firing emits.
    type Out: Data;

    fn create(&self, value: T) -> Self::Acc;
    fn add(&self, acc: &mut Self::Acc, value: T);
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
    fn emit(&self, key: &K, window: Window, acc: &Self::Acc, out: &mut Vec<Self::Out>);
}

/// `reduce`: the contents are the reduced value.
pub(crate) struct ReduceFn<F>(pub F);

impl<K, T, F> WindowFunction<K, T> for ReduceFn<F>
where
    T: Data + Serialize + DeserializeOwned,
    F: Fn(T, T) -> T + Send + Sync + 'static,
{
    type Acc = Option<T>;
    type Out = T;

    fn create(&self, value: T) -> Option<T> {
        Some(value)
    }

    fn add(&self, acc: &mut Option<T>, value: T) {
        *acc = Some(match acc.take() {
            Some(prev) => (self.0)(prev, value),
            None => value,
        });
    }

    fn merge(&self, acc: &mut Option<T>, other: Option<T>) {
        if let Some(other) = other {
            <Self as WindowFunction<K, T>>::add(self, acc, other);
        }
    }

    fn emit(&self, _: &K, _: Window, acc: &Option<T>, out: &mut Vec<T>) {
        out.extend(acc.clone());
    }
}

/// `aggregate`, with a function of the key, the window and the result.
pub(crate) struct AggregateFn<A, W, O> {
    pub agg: A,
    pub with_window: W,
    pub _out: PhantomData<fn() -> O>,
}

impl<K, T, A, W, O> WindowFunction<K, T> for AggregateFn<A, W, O>
where
    A: AggregateFunction<T>,
    O: Data,
    W: Fn(&K, Window, A::Out) -> O + Send + Sync + 'static,
{
    type Acc = A::Acc;
    type Out = O;

    fn create(&self, value: T) -> A::Acc {
        let mut acc = self.agg.create_accumulator();
        self.agg.add(value, &mut acc);
        acc
    }

    fn add(&self, acc: &mut A::Acc, value: T) {
        self.agg.add(value, acc);
    }

    fn merge(&self, acc: &mut A::Acc, other: A::Acc) {
        self.agg.merge(acc, other);
    }

    fn emit(&self, key: &K, window: Window, acc: &A::Acc, out: &mut Vec<O>) {
        out.push((self.with_window)(key, window, self.agg.get_result(acc)));
    }
}

/// `process`: the contents are every element; the function sees them all at once.
pub(crate) struct ProcessFn<F, O> {
    pub f: F,
    pub _out: PhantomData<fn() -> O>,
}

impl<K, T, F, O> WindowFunction<K, T> for ProcessFn<F, O>
where
    T: Data + Serialize + DeserializeOwned,
    O: Data,
    F: Fn(&K, Window, &[T], &mut Vec<O>) + Send + Sync + 'static,
{
    type Acc = Vec<T>;
    type Out = O;

    fn create(&self, value: T) -> Vec<T> {
        vec![value]
    }

    fn add(&self, acc: &mut Vec<T>, value: T) {
        acc.push(value);
    }

    fn merge(&self, acc: &mut Vec<T>, other: Vec<T>) {
        acc.extend(other);
    }

    fn emit(&self, key: &K, window: Window, acc: &Vec<T>, out: &mut Vec<O>) {
        (self.f)(key, window, acc, out);
    }
}
