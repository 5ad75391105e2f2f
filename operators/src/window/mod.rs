//! Windows on keyed streams, Flink's model: an assigner puts each record into windows, a
//! window function computes each window's result, and the window fires when the watermark
//! (event time) or the clock (processing time) passes its end.
//!
//! ```
//! use snapflow_operators::prelude::*;
//! use snapflow_operators::time::WatermarkStrategy;
//! use snapflow_operators::window::{TumblingEventTimeWindows, Window};
//! use std::time::Duration;
//!
//! // (user, timestamp ms)
//! let clicks = vec![("ann", 1_000), ("bob", 2_000), ("ann", 59_000), ("ann", 61_000)];
//! let job = Job::new("clicks-per-minute");
//! let sink = CollectSink::new();
//! let results = sink.results();
//! job.source(CollectionSource::new(clicks))
//!     .assign_timestamps_and_watermarks(
//!         WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
//!             .with_timestamp_assigner(|c: &(&str, u64)| c.1),
//!     )
//!     .key_by(|c: &(&str, u64)| c.0.to_string())
//!     .window(TumblingEventTimeWindows::of(Duration::from_secs(60)))
//!     .aggregate_with(Count, |user: &String, w: Window, n: u64| (user.clone(), w.start, n))
//!     .sink(sink);
//! job.run(&JobConfig::default()).unwrap();
//! let mut got = results.take();
//! got.sort();
//! assert_eq!(
//!     got,
//!     vec![("ann".into(), 0, 2), ("ann".into(), 60_000, 1), ("bob".into(), 0, 1)]
//! );
//! ```

mod assigner;
mod function;
pub(crate) mod operator;

pub use assigner::{
    EventTimeSessionWindows, SlidingEventTimeWindows, SlidingProcessingTimeWindows,
    TumblingEventTimeWindows, TumblingProcessingTimeWindows, Window, WindowAssigner,
};
pub use function::AggregateFunction;

use crate::process::StateKey;
use crate::time::{system_clock, ProcessingClock};
use function::{AggregateFn, ProcessFn, ReduceFn, WindowFunction};
use operator::{LateOutput, WindowOperator, WindowSpec};
use serde::de::DeserializeOwned;
use serde::Serialize;
use snapflow_engine::{Data, KeyedStream, OutputTag, Stream, Tagged};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// Counts records: the [`AggregateFunction`] of "how many".
#[derive(Copy, Clone, Debug, Default)]
pub struct Count;

impl<T> AggregateFunction<T> for Count {
    type Acc = u64;
    type Out = u64;

    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, _: T, acc: &mut u64) {
        *acc += 1;
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
}

/// Adds `window` to keyed streams.
pub trait WindowExt<K, T> {
    /// Groups each key's records into the windows `assigner` gives them. Event-time windows
    /// need a stream with event time (`assign_timestamps_and_watermarks` upstream).
    fn window(self, assigner: WindowAssigner) -> WindowedStream<K, T>;
}

impl<K: StateKey, T: Data> WindowExt<K, T> for KeyedStream<K, T> {
    fn window(self, assigner: WindowAssigner) -> WindowedStream<K, T> {
        WindowedStream {
            stream: self,
            assigner,
            lateness: 0,
            late_tag: None,
            clock: system_clock(),
        }
    }
}

/// A keyed stream with a window assigner, waiting for its window function.
pub struct WindowedStream<K, T> {
    stream: KeyedStream<K, T>,
    assigner: WindowAssigner,
    lateness: i64,
    late_tag: Option<u32>,
    clock: ProcessingClock,
}

impl<K: StateKey, T: Data> WindowedStream<K, T> {
    /// Keeps each event-time window for `lateness` after it fired: a late element within it
    /// updates the window and fires it again (Flink's `allowedLateness`). Default 0.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = i64::try_from(lateness.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Sends late elements (those whose every window is past its allowed lateness) to the
    /// side output `tag` instead of dropping them (Flink's `sideOutputLateData`); take it
    /// with [`Stream::side_output`] on the window's result.
    pub fn side_output_late_data(mut self, tag: &OutputTag<T>) -> Self
    where
        T: Sync,
    {
        self.late_tag = Some(tag.id());
        self
    }

    /// Reads processing time from `clock` (for processing-time windows) rather than the
    /// system clock: for tests.
    pub fn with_clock(mut self, clock: ProcessingClock) -> Self {
        self.clock = clock;
        self
    }

    /// Reduces each window's records with `f`; emits the reduced value per window.
    pub fn reduce<F>(self, f: F) -> Stream<T>
    where
        T: Serialize + DeserializeOwned + Sync,
        F: Fn(T, T) -> T + Send + Sync + 'static,
    {
        self.build("window-reduce", ReduceFn(f))
    }

    /// Aggregates each window incrementally; emits `agg`'s result per window.
    pub fn aggregate<A>(self, agg: A) -> Stream<A::Out>
    where
        T: Sync,
        A: AggregateFunction<T>,
    {
        self.aggregate_with(agg, |_: &K, _: Window, out: A::Out| out)
    }

    /// Aggregates each window incrementally; emits `f(key, window, result)` per window
    /// (Flink's `aggregate(AggregateFunction, ProcessWindowFunction)`).
    pub fn aggregate_with<A, O, W>(self, agg: A, f: W) -> Stream<O>
    where
        T: Sync,
        A: AggregateFunction<T>,
        O: Data,
        W: Fn(&K, Window, A::Out) -> O + Send + Sync + 'static,
    {
        self.build(
            "window-aggregate",
            AggregateFn {
                agg,
                with_window: f,
                _out: PhantomData,
            },
        )
    }

    /// Keeps every record of each window; at firing `f(key, window, records, out)` emits
    /// any number of results (Flink's `ProcessWindowFunction`).
    pub fn process<O, F>(self, f: F) -> Stream<O>
    where
        T: Serialize + DeserializeOwned + Sync,
        O: Data,
        F: Fn(&K, Window, &[T], &mut Vec<O>) + Send + Sync + 'static,
    {
        self.build(
            "window-process",
            ProcessFn {
                f,
                _out: PhantomData,
            },
        )
    }

    fn build<F>(self, name: &str, f: F) -> Stream<F::Out>
    where
        T: Sync,
        F: WindowFunction<K, T>,
    {
        let timestamps = self.stream.timestamp_assigner();
        assert!(
            timestamps.is_some() || !self.assigner.is_event_time(),
            "event-time windows need a stream with event time: call assign_timestamps_and_watermarks (or with_timestamp_assigner) before key_by"
        );
        let late: Option<LateOutput<T, F::Out>> = self.late_tag.map(|tag| {
            let late: LateOutput<T, F::Out> =
                Arc::new(move |record: T| Tagged::Side(tag, Arc::new(record)));
            late
        });
        let spec = WindowSpec {
            key: self.stream.key_selector(),
            assigner: self.assigner,
            timestamps,
            lateness: self.lateness,
            late,
            clock: self.clock,
        };
        let f = Arc::new(f);
        self.stream
            .keyed_unary(name, move |task, _key| {
                WindowOperator::new(spec.clone(), f.clone(), task)
            })
            .split_side_outputs()
    }
}

#[cfg(test)]
mod tests;
