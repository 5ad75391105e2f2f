//! `filter`: keeps the records a predicate accepts.

use snapflow_engine::{BoxError, Data, OperatorLifecycle, Output, Stream, UnaryOperator};
use std::sync::Arc;

/// Adds `filter` to streams.
pub trait FilterExt<T> {
    /// Keeps the records for which `predicate` returns true.
    fn filter<F>(self, predicate: F) -> Stream<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static;
}

impl<T: Data> FilterExt<T> for Stream<T> {
    fn filter<F>(self, predicate: F) -> Stream<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let predicate = Arc::new(predicate);
        self.unary("filter", move |_| Filter {
            predicate: predicate.clone(),
        })
    }
}

struct Filter<F> {
    predicate: Arc<F>,
}

impl<T, F> UnaryOperator<T, T> for Filter<F>
where
    T: Data,
    F: Fn(&T) -> bool + Send + Sync + 'static,
{
    fn process_batch(&mut self, mut batch: Vec<T>, out: &mut Output<T>) -> Result<(), BoxError> {
        // Filtering in place keeps the batch's allocation; forward edges pass it on whole.
        batch.retain(|record| (self.predicate)(record));
        out.push_batch(batch);
        Ok(())
    }
}

impl<T, F> OperatorLifecycle<T> for Filter<F>
where
    T: Data,
    F: Fn(&T) -> bool + Send + Sync + 'static,
{
}
