//! `map`: one output record per input record.

use snapflow_engine::{BoxError, Data, OperatorLifecycle, Output, Stream, UnaryOperator};
use std::sync::Arc;

/// Adds `map` to streams.
pub trait MapExt<T> {
    /// Transforms every record with `f`.
    fn map<O, F>(self, f: F) -> Stream<O>
    where
        O: Data,
        F: Fn(T) -> O + Send + Sync + 'static;
}

impl<T: Data> MapExt<T> for Stream<T> {
    fn map<O, F>(self, f: F) -> Stream<O>
    where
        O: Data,
        F: Fn(T) -> O + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.unary("map", move |_| Map::new(f.clone()))
    }
}

pub(crate) struct Map<F> {
    f: Arc<F>,
}

impl<F> Map<F> {
    /// One task's instance.
    pub(crate) fn new(f: Arc<F>) -> Self {
        Map { f }
    }
}

impl<T, O, F> UnaryOperator<T, O> for Map<F>
where
    T: Data,
    O: Data,
    F: Fn(T) -> O + Send + Sync + 'static,
{
    fn process_batch(&mut self, batch: Vec<T>, out: &mut Output<O>) -> Result<(), BoxError> {
        for record in batch {
            out.push((self.f)(record));
        }
        Ok(())
    }
}

/// Stateless: every lifecycle hook keeps its default.
impl<O, F: Send + Sync + 'static> OperatorLifecycle<O> for Map<F> {}
