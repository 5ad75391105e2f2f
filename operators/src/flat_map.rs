//! `flat_map` and `flat_map_with`: any number of output records per input record.

use snapflow_engine::{BoxError, Data, OperatorLifecycle, Output, Stream, UnaryOperator};
use std::sync::Arc;

/// Adds `flat_map` and `flat_map_with` to streams.
pub trait FlatMapExt<T> {
    /// Replaces every record with the records `f` returns for it.
    fn flat_map<O, I, F>(self, f: F) -> Stream<O>
    where
        O: Data,
        I: IntoIterator<Item = O>,
        F: Fn(T) -> I + Send + Sync + 'static;

    /// Replaces every record with the records `f` pushes into `out` for it (Flink's
    /// `flatMap(value, collector)`). Unlike [`flat_map`](Self::flat_map), the output can be
    /// derived from borrowed parts of the input without collecting them into a vector first,
    /// which saves an allocation per input record:
    ///
    /// ```
    /// use snapflow_operators::prelude::*;
    ///
    /// let job = Job::new("tokenize");
    /// let words = CollectSink::new();
    /// let results = words.results();
    /// job.source(CollectionSource::new(vec!["to be or".to_string(), "not".to_string()]))
    ///     .flat_map_with(|line: String, out: &mut Output<CompactString>| {
    ///         for word in line.split_whitespace() {
    ///             out.push(CompactString::from(word));
    ///         }
    ///     })
    ///     .sink(words);
    /// job.run(&JobConfig::default()).unwrap();
    /// assert_eq!(results.take(), ["to", "be", "or", "not"]);
    /// ```
    fn flat_map_with<O, F>(self, f: F) -> Stream<O>
    where
        O: Data,
        F: Fn(T, &mut Output<O>) + Send + Sync + 'static;
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

    fn flat_map_with<O, F>(self, f: F) -> Stream<O>
    where
        O: Data,
        F: Fn(T, &mut Output<O>) + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.unary("flat_map", move |_| FlatMapWith { f: f.clone() })
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

/// Stateless: every lifecycle hook keeps its default.
impl<O, F: Send + Sync + 'static> OperatorLifecycle<O> for FlatMap<F> {}

struct FlatMapWith<F> {
    f: Arc<F>,
}

impl<T, O, F> UnaryOperator<T, O> for FlatMapWith<F>
where
    T: Data,
    O: Data,
    F: Fn(T, &mut Output<O>) + Send + Sync + 'static,
{
    fn process_batch(&mut self, batch: Vec<T>, out: &mut Output<O>) -> Result<(), BoxError> {
        for record in batch {
            (self.f)(record, out);
            if out.is_closed() {
                // The job is stopping: the rest of the batch would be dropped anyway.
                break;
            }
        }
        Ok(())
    }
}

/// Stateless: every lifecycle hook keeps its default.
impl<O, F: Send + Sync + 'static> OperatorLifecycle<O> for FlatMapWith<F> {}
