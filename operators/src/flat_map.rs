//! `flat_map`: any number of output records per input record.

use snapflow_engine::{BoxError, Data, Output, Stream, UnaryOperator};
use std::sync::Arc;

/// Adds `flat_map` to streams.
pub trait FlatMapExt<T> {
    /// Replaces every record with the records `f` returns for it.
    fn flat_map<O, I, F>(self, f: F) -> Stream<O>
    where
        O: Data,
        I: IntoIterator<Item = O>,
        F: Fn(T) -> I + Send + Sync + 'static;
}

impl<T: Data> FlatMapExt<T> for Stream<T> {
    fn flat_map<O, I, F>(self, f: F) -> Stream<O>
    where
        O: Data,
        I: IntoIterator<Item = O>,
        F: Fn(T) -> I + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.unary("flat_map", move |_| FlatMap { f: f.clone() })
    }
}

struct FlatMap<F> {
    f: Arc<F>,
}

impl<T, O, I, F> UnaryOperator<T, O> for FlatMap<F>
where
    T: Data,
    O: Data,
    I: IntoIterator<Item = O>,
    F: Fn(T) -> I + Send + Sync + 'static,
{
    fn process_batch(&mut self, batch: Vec<T>, out: &mut Output<O>) -> Result<(), BoxError> {
        for record in batch {
            out.extend((self.f)(record));
        }
        Ok(())
    }
}
