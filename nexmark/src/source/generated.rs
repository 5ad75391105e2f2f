//! The generated source: events made by the `nexmark` crate from their event numbers.

use super::split_watermark;
use crate::event::{event_time, generator, Event};
use nexmark::EventGenerator;
use snapflow_engine::{
    BoxError, ReadStatus, Source, SourcePosition, SourceReader, TaskInfo, Timestamp,
};

/// The first `events` Nexmark events, generated: event `n` is a pure function of `n` (and the
/// pinned base time), so the source's position is just the next event number and replay after
/// a failure regenerates exactly the same events.
///
/// Task `i` of `p` emits events `i, i + p, i + 2p, ...`: every event exactly once, and all
/// tasks advance through event time together, so windows close as the stream goes rather than
/// when the slowest split ends. Each task's watermark is its latest event time minus 4 s and
/// 1 ms (events are in time order within a split).
pub struct NexmarkSource {
    events: u64,
}

impl NexmarkSource {
    /// A source of events `0..events`.
    pub fn new(events: u64) -> Self {
        NexmarkSource { events }
    }
}

impl Source for NexmarkSource {
    type Out = Event;

    fn name(&self) -> String {
        "nexmark".to_owned()
    }

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<Event>>, BoxError> {
        let (first, step) = (task.index as u64, task.parallelism as u64);
        Ok(Box::new(GeneratedReader {
            events: generator(first, step),
            first,
            next: first,
            step,
            end: self.events,
            max_seen: None,
        }))
    }
}

/// One task's split: every `step`-th event from `first`.
struct GeneratedReader {
    events: EventGenerator,
    first: u64,
    /// The number of the next event to emit.
    next: u64,
    step: u64,
    end: u64,
    /// The largest event time emitted.
    max_seen: Option<u64>,
}

impl SourceReader<Event> for GeneratedReader {
    fn read_batch(&mut self, batch: &mut Vec<Event>, max: usize) -> Result<ReadStatus, BoxError> {
        let mut room = max;
        while room > 0 && self.next < self.end {
            let event = self.events.next().expect("the generator is endless");
            let t = event_time(&event);
            self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
            batch.push(event);
            self.next += self.step;
            room -= 1;
        }
        Ok(if self.next >= self.end {
            ReadStatus::Exhausted
        } else {
            ReadStatus::More
        })
    }

    fn position(&self) -> Option<SourcePosition> {
        Some(SourcePosition {
            offset: self.next.to_le_bytes().to_vec(),
            description: format!("event {}", self.next),
        })
    }

    /// The watermark is a pure function of the position (event times grow with the event
    /// number), so nothing but the event number needs to be checkpointed for it.
    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        let bytes: [u8; 8] = position.offset.as_slice().try_into().map_err(|_| {
            format!(
                "nexmark: position {:?} is not an event number",
                position.description
            )
        })?;
        let next = u64::from_le_bytes(bytes);
        let limit = self.end.max(self.first) + self.step;
        if next < self.first || !(next - self.first).is_multiple_of(self.step) || next >= limit {
            return Err(format!(
                "nexmark: event {next} is not in this task's split (every {}th event from {} up to {})",
                self.step, self.first, self.end
            )
            .into());
        }
        self.next = next;
        self.events = generator(next, self.step);
        self.max_seen = (next > self.first).then(|| generator(next - self.step, 1).timestamp());
        Ok(())
    }

    fn watermark(&mut self) -> Option<Timestamp> {
        split_watermark(self.max_seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::generate;

    fn task(index: usize, parallelism: usize) -> TaskInfo {
        crate::source::test_task("nexmark", index, parallelism)
    }

    fn read_to_end(reader: &mut dyn SourceReader<Event>, out: &mut Vec<Event>) {
        while reader.read_batch(out, 7).unwrap() == ReadStatus::More {}
    }

    #[test]
    fn the_splits_read_every_event_once() {
        let all = generate(1000);
        for p in 1..=4 {
            let mut got = Vec::new();
            for i in 0..p {
                let mut part = Vec::new();
                let mut r = NexmarkSource::new(1000).create_reader(&task(i, p)).unwrap();
                read_to_end(r.as_mut(), &mut part);
                for (k, e) in part.iter().enumerate() {
                    assert_eq!(e, &all[i + k * p], "p={p} task {i}");
                }
                got.extend(part);
            }
            assert_eq!(got.len(), all.len(), "p={p}");
        }
    }

    #[test]
    fn a_reader_resumes_at_its_position_with_its_watermark() {
        let source = NexmarkSource::new(500);
        let mut r = source.create_reader(&task(1, 3)).unwrap();
        let mut first = Vec::new();
        r.read_batch(&mut first, 40).unwrap();
        let position = r.position().unwrap();
        let watermark = r.watermark();
        let mut rest = Vec::new();
        read_to_end(r.as_mut(), &mut rest);

        let mut resumed = source.create_reader(&task(1, 3)).unwrap();
        resumed.seek(&position).unwrap();
        assert_eq!(resumed.watermark(), watermark);
        let mut again = Vec::new();
        read_to_end(resumed.as_mut(), &mut again);
        assert_eq!(again, rest);
        let max = first.iter().map(event_time).max().unwrap();
        assert_eq!(watermark, Some(Timestamp(max - 4001)));
    }

    #[test]
    fn a_position_of_another_split_is_refused() {
        let source = NexmarkSource::new(500);
        let mut r = source.create_reader(&task(0, 2)).unwrap();
        let err = r
            .seek(&SourcePosition {
                offset: 7u64.to_le_bytes().to_vec(),
                description: "event 7".into(),
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("not in this task's split"),
            "{err}"
        );
    }
}
