//! How a stream gets its timestamps and watermarks (Flink's `WatermarkStrategy`).

use crate::time::clock::{system_clock, ProcessingClock};
use snapflow_engine::TimestampAssigner;
use std::sync::Arc;
use std::time::Duration;

/// Records between two watermark emission points, by default: few enough that windows close
/// promptly, many enough that watermarks cost nothing next to the records.
pub const DEFAULT_EMIT_INTERVAL: u64 = 256;

/// A timestamp assigner and a watermark rule.
///
/// ```
/// use snapflow_operators::time::WatermarkStrategy;
/// use std::time::Duration;
///
/// struct Click { ts: u64 }
/// let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
///     .with_timestamp_assigner(|c: &Click| c.ts)
///     .with_idleness(Duration::from_secs(60));
/// assert_eq!(strategy.out_of_orderness_ms(), 5000);
/// ```
pub struct WatermarkStrategy<T> {
    pub(crate) assigner: Option<TimestampAssigner<T>>,
    pub(crate) out_of_orderness: u64,
    pub(crate) idleness: Option<u64>,
    pub(crate) emit_interval: u64,
    pub(crate) clock: ProcessingClock,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            assigner: self.assigner.clone(),
            out_of_orderness: self.out_of_orderness,
            idleness: self.idleness,
            emit_interval: self.emit_interval,
            clock: self.clock.clone(),
        }
    }
}

impl<T> WatermarkStrategy<T> {
    /// Events arrive at most `bound` out of order: the watermark trails the largest timestamp
    /// seen by `bound` (plus 1 ms, Flink's convention: `max_seen - bound - 1`).
    pub fn bounded_out_of_orderness(bound: Duration) -> Self {
        WatermarkStrategy {
            assigner: None,
            out_of_orderness: bound.as_millis() as u64,
            idleness: None,
            emit_interval: DEFAULT_EMIT_INTERVAL,
            clock: system_clock(),
        }
    }

    /// Timestamps only ever grow (Flink's `forMonotonousTimestamps`): the watermark is
    /// `max_seen - 1`.
    pub fn for_monotonous_timestamps() -> Self {
        Self::bounded_out_of_orderness(Duration::ZERO)
    }

    /// Reads each record's timestamp, in milliseconds.
    pub fn with_timestamp_assigner(
        mut self,
        assigner: impl Fn(&T) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.assigner = Some(Arc::new(assigner));
        self
    }

    /// An input that brings no record for `timeout` (processing time) declares itself idle,
    /// so that it does not hold back the watermark of the operators it feeds; it rejoins with
    /// its next record.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout.as_millis() as u64);
        self
    }

    /// A watermark is due after every `records` records (default
    /// [`DEFAULT_EMIT_INTERVAL`]); see [`BoundedOutOfOrderness`](crate::time::BoundedOutOfOrderness)
    /// for why by count.
    pub fn with_emit_interval(mut self, records: u64) -> Self {
        self.emit_interval = records.max(1);
        self
    }

    /// Reads processing time (for idleness) from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: ProcessingClock) -> Self {
        self.clock = clock;
        self
    }

    /// The out-of-orderness bound, in milliseconds.
    pub fn out_of_orderness_ms(&self) -> u64 {
        self.out_of_orderness
    }
}
