//! `assign_timestamps_and_watermarks`: the operator that generates watermarks from the
//! records' timestamps (Flink's `TimestampsAndWatermarksOperator`).

use crate::time::generator::BoundedOutOfOrderness;
use crate::time::strategy::WatermarkStrategy;
use serde::{Deserialize, Serialize};
use snapflow_engine::{
    BoxError, CheckpointId, Data, OperatorLifecycle, Output, RestoredState, Stream, TaskInfo,
    Timestamp, TimestampAssigner, UnaryOperator,
};

/// Adds `assign_timestamps_and_watermarks` to streams.
pub trait AssignTimestampsExt<T> {
    /// Gives the stream event time: every task of the new operator reads each record's
    /// timestamp with the strategy's assigner, generates watermarks by its rule, and emits
    /// them behind the records (watermarks from upstream are replaced, as in Flink, except the
    /// final one). The stream keeps the assigner for the windows and process functions
    /// downstream.
    ///
    /// # Panics
    /// If the strategy has no timestamp assigner: a job definition error, caught when the job
    /// is built.
    fn assign_timestamps_and_watermarks(self, strategy: WatermarkStrategy<T>) -> Stream<T>;
}

impl<T: Data> AssignTimestampsExt<T> for Stream<T> {
    fn assign_timestamps_and_watermarks(self, strategy: WatermarkStrategy<T>) -> Stream<T> {
        let assigner = strategy
            .assigner
            .clone()
            .expect("the watermark strategy needs with_timestamp_assigner");
        let stream = self.unary("assign-timestamps", move |task: &TaskInfo| {
            AssignTimestamps::new(strategy.clone(), task)
        });
        stream.with_assigner(Some(assigner))
    }
}

/// What the operator checkpoints: its generator, and which task it was.
#[derive(Serialize, Deserialize)]
struct GeneratorSnapshot {
    index: u32,
    parallelism: u32,
    generator: BoundedOutOfOrderness,
}

/// One task of `assign_timestamps_and_watermarks`.
pub(crate) struct AssignTimestamps<T> {
    assigner: TimestampAssigner<T>,
    strategy: WatermarkStrategy<T>,
    generator: BoundedOutOfOrderness,
    index: u32,
    parallelism: u32,
    /// Processing time of the last batch, when idleness is on.
    last_active: u64,
    idle: bool,
}

impl<T> AssignTimestamps<T> {
    pub(crate) fn new(strategy: WatermarkStrategy<T>, task: &TaskInfo) -> Self {
        let assigner = strategy
            .assigner
            .clone()
            .expect("the watermark strategy needs with_timestamp_assigner");
        let last_active = strategy.idleness.map_or(0, |_| (strategy.clock)());
        AssignTimestamps {
            assigner,
            strategy,
            generator: BoundedOutOfOrderness::default(),
            index: task.index as u32,
            parallelism: task.parallelism as u32,
            last_active,
            idle: false,
        }
    }
}

impl<T: Data> UnaryOperator<T, T> for AssignTimestamps<T> {
    fn process_batch(&mut self, batch: Vec<T>, out: &mut Output<T>) -> Result<(), BoxError> {
        if self.strategy.idleness.is_some() && !batch.is_empty() {
            self.last_active = (self.strategy.clock)();
            self.idle = false;
        }
        let (bound, interval) = (self.strategy.out_of_orderness, self.strategy.emit_interval);
        // Records between emission points pass on as one run; a due watermark splits the
        // batch there. With the default interval that is one split per 256 records.
        let mut pending = Vec::with_capacity(batch.len());
        for record in batch {
            let ts = (self.assigner)(&record);
            let due = self.generator.on_event(ts, bound, interval);
            pending.push(record);
            if let Some(wm) = due {
                let rest = Vec::with_capacity(pending.capacity() - pending.len());
                out.push_batch(std::mem::replace(&mut pending, rest));
                out.emit_watermark(wm);
            }
        }
        if !pending.is_empty() {
            out.push_batch(pending);
        }
        Ok(())
    }
}

impl<T: Data> OperatorLifecycle<T> for AssignTimestamps<T> {
    fn forwards_watermarks(&self) -> bool {
        false
    }

    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Output<T>) -> Result<(), BoxError> {
        // Upstream watermarks are replaced by this generator's, but the end of input passes:
        // every window downstream must fire before the final checkpoint.
        if watermark == Timestamp::MAX {
            self.generator.emitted = Some(u64::MAX);
            out.emit_watermark(Timestamp::MAX);
        }
        Ok(())
    }

    fn next_processing_time(&self) -> Option<u64> {
        match self.strategy.idleness {
            Some(timeout) if !self.idle => Some(self.last_active.saturating_add(timeout)),
            _ => None,
        }
    }

    fn on_processing_time(&mut self, out: &mut Output<T>) -> Result<(), BoxError> {
        if let Some(timeout) = self.strategy.idleness {
            if !self.idle && (self.strategy.clock)() >= self.last_active.saturating_add(timeout) {
                self.idle = true;
                out.mark_idle();
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>, BoxError> {
        let snapshot = GeneratorSnapshot {
            index: self.index,
            parallelism: self.parallelism,
            generator: self.generator,
        };
        Ok(Some(bincode::serialize(&snapshot)?))
    }

    /// At the same parallelism each task takes its own generator back. At another, records
    /// may reach other tasks than before, so each task starts from the most conservative of
    /// the old generators (the smallest `max_seen`): its watermarks never run ahead of what
    /// the old tasks had emitted together.
    fn restore(&mut self, state: &RestoredState) -> Result<(), BoxError> {
        let mut old = Vec::new();
        for payload in state.payloads() {
            old.push(bincode::deserialize::<GeneratorSnapshot>(payload)?);
        }
        if let Some(own) = old
            .iter()
            .find(|s| s.parallelism == self.parallelism && s.index == self.index)
        {
            self.generator = own.generator;
        } else if let Some(min) = old.iter().min_by_key(|s| s.generator.max_seen) {
            self.generator = BoundedOutOfOrderness {
                max_seen: min.generator.max_seen,
                since_emit: 0,
                emitted: old.iter().map(|s| s.generator.emitted).min().flatten(),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::test_support::{self, restore_and_open};
    use crate::time::ManualClock;
    use snapflow_engine::testing::OneInputHarness;
    use std::time::Duration;

    fn task(index: usize, parallelism: usize) -> TaskInfo {
        test_support::task("assign", index, parallelism)
    }

    fn strategy() -> WatermarkStrategy<u64> {
        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(10))
            .with_timestamp_assigner(|t: &u64| *t)
            .with_emit_interval(2)
    }

    #[test]
    fn watermarks_follow_the_records_they_cover_and_survive_a_restore() {
        let mut h = OneInputHarness::new(AssignTimestamps::new(strategy(), &task(0, 1)));
        h.open().unwrap();
        h.process(vec![100, 90, 120]).unwrap();
        assert_eq!(h.take_output(), vec![100, 90, 120]);
        assert_eq!(h.take_watermarks(), vec![Timestamp(89)]);
        let state = h.snapshot(CheckpointId(1)).unwrap().unwrap();
        h.process(vec![95, 200]).unwrap();
        assert_eq!(h.take_watermarks(), vec![Timestamp(109)]);

        // A restored instance continues from the checkpoint: same emission points, same marks.
        let mut r = OneInputHarness::new(AssignTimestamps::new(strategy(), &task(0, 1)));
        restore_and_open(&mut r, CheckpointId(1), state);
        r.process(vec![95, 200]).unwrap();
        assert_eq!(r.take_watermarks(), vec![Timestamp(109)]);
    }

    #[test]
    fn goes_idle_after_the_timeout_and_only_once() {
        let clock = ManualClock::new(1000);
        let s = strategy()
            .with_idleness(Duration::from_millis(50))
            .with_clock(clock.clock());
        let mut h = OneInputHarness::new(AssignTimestamps::new(s, &task(0, 1)));
        h.open().unwrap();
        h.process(vec![1]).unwrap();
        assert_eq!(h.next_processing_time(), Some(1050));
        clock.set(1049);
        h.processing_time().unwrap();
        assert_eq!(h.next_processing_time(), Some(1050), "not idle yet");
        clock.set(1050);
        h.processing_time().unwrap();
        assert_eq!(h.next_processing_time(), None, "idle until the next record");
        clock.set(2000);
        h.process(vec![2]).unwrap();
        assert_eq!(h.next_processing_time(), Some(2050));
    }
}
