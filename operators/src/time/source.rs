//! Watermarks generated in the source, per split (Flink's `fromSource(source, strategy)`):
//! any [`Source`] wrapped so that each of its readers runs its own watermark generator.

use crate::time::clock::ProcessingClock;
use crate::time::generator::BoundedOutOfOrderness;
use crate::time::strategy::WatermarkStrategy;
use snapflow_engine::{
    BoxError, CheckpointId, Job, ReadStatus, Source, SourcePosition, SourceReader, Stream,
    TaskInfo, Timestamp, TimestampAssigner,
};

/// Adds `source_with_watermarks` to jobs.
pub trait SourceWatermarksExt {
    /// Adds `source`, each of whose tasks (splits) reads timestamps with the strategy's
    /// assigner and generates watermarks by its rule, emitted after the batch in which they
    /// fall due. The generator's state is part of the source's checkpointed position, so a
    /// resumed source continues with the watermarks it had. With the strategy's idleness, a
    /// split that reads nothing for that long is idle until its next record. The stream
    /// carries the assigner.
    ///
    /// # Panics
    /// If the strategy has no timestamp assigner.
    fn source_with_watermarks<S: Source>(
        &self,
        source: S,
        strategy: WatermarkStrategy<S::Out>,
    ) -> Stream<S::Out>;
}

impl SourceWatermarksExt for Job {
    fn source_with_watermarks<S: Source>(
        &self,
        source: S,
        strategy: WatermarkStrategy<S::Out>,
    ) -> Stream<S::Out> {
        let assigner = strategy
            .assigner
            .clone()
            .expect("the watermark strategy needs with_timestamp_assigner");
        self.source(WithWatermarks {
            inner: source,
            assigner: assigner.clone(),
            bound: strategy.out_of_orderness,
            interval: strategy.emit_interval,
            idleness: strategy.idleness,
            clock: strategy.clock.clone(),
        })
        .with_assigner(Some(assigner))
    }
}

struct WithWatermarks<S: Source> {
    inner: S,
    assigner: TimestampAssigner<S::Out>,
    bound: u64,
    interval: u64,
    idleness: Option<u64>,
    clock: ProcessingClock,
}

/// A position is the generator (bincode, length-prefixed) followed by the inner reader's.
fn wrap(
    generator: &BoundedOutOfOrderness,
    inner: SourcePosition,
) -> Result<SourcePosition, BoxError> {
    let state = bincode::serialize(generator)?;
    let mut offset = (state.len() as u32).to_le_bytes().to_vec();
    offset.extend_from_slice(&state);
    offset.extend_from_slice(&inner.offset);
    Ok(SourcePosition {
        offset,
        description: inner.description,
    })
}

fn unwrap(position: &SourcePosition) -> Result<(BoundedOutOfOrderness, SourcePosition), BoxError> {
    let bad = || "a source position without its watermark generator (was the job changed?)";
    let len = position.offset.get(..4).ok_or_else(bad)?;
    let len = u32::from_le_bytes(len.try_into()?) as usize;
    let state = position.offset.get(4..4 + len).ok_or_else(bad)?;
    let generator = bincode::deserialize(state)?;
    Ok((
        generator,
        SourcePosition {
            offset: position.offset[4 + len..].to_vec(),
            description: position.description.clone(),
        },
    ))
}

impl<S: Source> Source for WithWatermarks<S> {
    type Out = S::Out;

    fn name(&self) -> String {
        self.inner.name()
    }

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<S::Out>>, BoxError> {
        Ok(Box::new(WatermarkedReader {
            inner: self.inner.create_reader(task)?,
            assigner: self.assigner.clone(),
            bound: self.bound,
            interval: self.interval,
            generator: BoundedOutOfOrderness::default(),
            due: None,
            idleness: self.idleness,
            last_active: self.idleness.map_or(0, |_| (self.clock)()),
            clock: self.clock.clone(),
        }))
    }

    fn verify_restore(&self, positions: &[SourcePosition]) -> Result<(), BoxError> {
        let inner: Vec<SourcePosition> = positions
            .iter()
            .map(|p| unwrap(p).map(|(_, inner)| inner))
            .collect::<Result<_, _>>()?;
        self.inner.verify_restore(&inner)
    }
}

struct WatermarkedReader<T> {
    inner: Box<dyn SourceReader<T>>,
    assigner: TimestampAssigner<T>,
    bound: u64,
    interval: u64,
    generator: BoundedOutOfOrderness,
    /// The newest watermark due in the last batch.
    due: Option<Timestamp>,
    idleness: Option<u64>,
    /// Processing time of the last batch with records, when idleness is on.
    last_active: u64,
    clock: ProcessingClock,
}

impl<T> SourceReader<T> for WatermarkedReader<T> {
    fn read_batch(&mut self, batch: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        let start = batch.len();
        let status = self.inner.read_batch(batch, max)?;
        if self.idleness.is_some() && batch.len() > start {
            self.last_active = (self.clock)();
        }
        for record in &batch[start..] {
            if let Some(wm) =
                self.generator
                    .on_event((self.assigner)(record), self.bound, self.interval)
            {
                self.due = Some(wm);
            }
        }
        Ok(status)
    }

    fn watermark(&mut self) -> Option<Timestamp> {
        self.due.take()
    }

    fn is_idle(&mut self) -> bool {
        self.idleness
            .is_some_and(|timeout| (self.clock)() >= self.last_active.saturating_add(timeout))
    }

    fn position(&self) -> Option<SourcePosition> {
        let inner = self.inner.position()?;
        // Serializing a few integers cannot fail; a position that cannot be made fails the
        // checkpoint as a source without positions would.
        wrap(&self.generator, inner).ok()
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        let (generator, inner) = unwrap(position)?;
        self.inner.seek(&inner)?;
        self.generator = generator;
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.inner.notify_checkpoint_complete(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;
    use snapflow_engine::{OperatorId, TaskInfo};
    use std::sync::Arc;
    use std::time::Duration;

    /// Returns the records it is given, one batch per call, then nothing (but more to come).
    struct Trickle(Vec<Vec<u64>>);

    impl SourceReader<u64> for Trickle {
        fn read_batch(&mut self, batch: &mut Vec<u64>, _: usize) -> Result<ReadStatus, BoxError> {
            if !self.0.is_empty() {
                batch.extend(self.0.remove(0));
            }
            Ok(ReadStatus::More)
        }
    }

    struct TrickleSource;

    impl Source for TrickleSource {
        type Out = u64;
        fn create_reader(&self, _: &TaskInfo) -> Result<Box<dyn SourceReader<u64>>, BoxError> {
            Ok(Box::new(Trickle(vec![vec![10, 20], vec![], vec![30]])))
        }
    }

    #[test]
    fn a_split_reading_nothing_for_the_timeout_is_idle_until_its_next_record() {
        let clock = ManualClock::new(1_000);
        let source = WithWatermarks {
            inner: TrickleSource,
            assigner: Arc::new(|t: &u64| *t),
            bound: 0,
            interval: 1,
            idleness: Some(Duration::from_millis(50).as_millis() as u64),
            clock: clock.clock(),
        };
        let task = TaskInfo {
            operator: OperatorId(0),
            name: Arc::from("s"),
            uid: Arc::from("s"),
            index: 0,
            parallelism: 1,
            max_parallelism: 128,
            first_checkpoint: CheckpointId(1),
        };
        let mut reader = source.create_reader(&task).unwrap();
        let mut batch = Vec::new();
        reader.read_batch(&mut batch, 10).unwrap();
        assert_eq!(reader.watermark(), Some(Timestamp(19)));
        assert!(!reader.is_idle());
        clock.set(1_049);
        reader.read_batch(&mut batch, 10).unwrap(); // nothing
        assert!(!reader.is_idle());
        clock.set(1_050);
        assert!(reader.is_idle());
        reader.read_batch(&mut batch, 10).unwrap(); // 30
        assert!(!reader.is_idle(), "a record makes the split active again");
        assert_eq!(reader.watermark(), Some(Timestamp(29)));
    }
}
