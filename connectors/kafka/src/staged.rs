//! The exactly-once sink's write-ahead: the records a sink task wrote between two barriers
//! (a [`Segment`]), and a task's checkpoint state ([`WriterState`]): the run's epoch and every
//! segment not yet known to be committed to Kafka.

use crate::error::KafkaError;
use std::sync::Arc;

/// Marks a writer's state, so that another sink's state is refused rather than misread.
const MAGIC: &[u8; 8] = b"SFKSINK1";

/// A null key in a segment.
const NO_KEY: u32 = u32::MAX;

/// The records one sink task wrote for one checkpoint: `[key length or NO_KEY][key]
/// [value length][value]` per record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) checkpoint: u64,
    pub(crate) task: u32,
    pub(crate) count: u64,
    pub(crate) bytes: Vec<u8>,
}

impl Segment {
    /// Appends one record.
    pub(crate) fn push(&mut self, key: Option<&[u8]>, value: &[u8]) {
        match key {
            Some(key) => {
                self.bytes
                    .extend_from_slice(&(key.len() as u32).to_le_bytes());
                self.bytes.extend_from_slice(key);
            }
            None => self.bytes.extend_from_slice(&NO_KEY.to_le_bytes()),
        }
        self.bytes
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(value);
        self.count += 1;
    }

    /// The records, in the order written.
    pub(crate) fn records(&self) -> Records<'_> {
        Records { rest: &self.bytes }
    }
}

/// Iterates a segment's records; a damaged segment ends in one `Err`.
pub(crate) struct Records<'a> {
    rest: &'a [u8],
}

/// A record of a segment: key (if any) and value.
pub(crate) type RecordBytes<'a> = (Option<&'a [u8]>, &'a [u8]);

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordBytes<'a>, KafkaError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = (|| {
            let key_len = take_u32(&mut self.rest)?;
            let key = if key_len == NO_KEY {
                None
            } else {
                Some(take(&mut self.rest, key_len as usize)?)
            };
            let value_len = take_u32(&mut self.rest)?;
            let value = take(&mut self.rest, value_len as usize)?;
            Ok((key, value))
        })();
        if result.is_err() {
            self.rest = &[];
        }
        Some(result)
    }
}

/// A sink task's state in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WriterState {
    /// The run of the sink these segments belong to (see `marker.rs`).
    pub(crate) epoch: u64,
    /// Segments not yet known to be committed, oldest first.
    pub(crate) segments: Vec<Arc<Segment>>,
}

impl WriterState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let size: usize = self.segments.iter().map(|s| 28 + s.bytes.len()).sum();
        let mut out = Vec::with_capacity(20 + size);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        for segment in &self.segments {
            out.extend_from_slice(&segment.checkpoint.to_le_bytes());
            out.extend_from_slice(&segment.task.to_le_bytes());
            out.extend_from_slice(&segment.count.to_le_bytes());
            out.extend_from_slice(&(segment.bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&segment.bytes);
        }
        out
    }

    /// # Errors
    /// Bytes that are not a Kafka sink task's state.
    pub(crate) fn decode(bytes: &[u8]) -> Result<WriterState, KafkaError> {
        let mut rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| damaged("it is not a Kafka sink's state"))?;
        let epoch = take_u64(&mut rest)?;
        let count = take_u32(&mut rest)?;
        let mut segments = Vec::new();
        for _ in 0..count {
            let checkpoint = take_u64(&mut rest)?;
            let task = take_u32(&mut rest)?;
            let records = take_u64(&mut rest)?;
            let len = usize::try_from(take_u64(&mut rest)?).map_err(|_| damaged("too long"))?;
            let bytes = take(&mut rest, len)?.to_vec();
            segments.push(Arc::new(Segment {
                checkpoint,
                task,
                count: records,
                bytes,
            }));
        }
        if !rest.is_empty() {
            return Err(damaged("bytes follow its end"));
        }
        Ok(WriterState { epoch, segments })
    }
}

fn damaged(why: &str) -> KafkaError {
    KafkaError::Checkpoint(format!(
        "a Kafka sink task's state in the checkpoint is damaged: {why}"
    ))
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], KafkaError> {
    let (head, tail) = rest
        .split_at_checked(n)
        .ok_or_else(|| damaged("it ends early"))?;
    *rest = tail;
    Ok(head)
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, KafkaError> {
    let bytes = take(rest, 4)?;
    Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
}

fn take_u64(rest: &mut &[u8]) -> Result<u64, KafkaError> {
    let bytes = take(rest, 8)?;
    Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(checkpoint: u64, task: u32, records: &[(Option<&str>, &str)]) -> Arc<Segment> {
        let mut segment = Segment {
            checkpoint,
            task,
            ..Segment::default()
        };
        for (key, value) in records {
            segment.push(key.map(str::as_bytes), value.as_bytes());
        }
        Arc::new(segment)
    }

    #[test]
    fn segments_keep_their_records_and_states_round_trip() {
        let a = segment(3, 1, &[(Some("k"), "v"), (None, ""), (Some(""), "x")]);
        let records: Vec<_> = a.records().map(Result::unwrap).collect();
        assert_eq!(
            records,
            [
                (Some(&b"k"[..]), &b"v"[..]),
                (None, &b""[..]),
                (Some(&b""[..]), &b"x"[..])
            ]
        );
        assert_eq!(a.count, 3);
        let state = WriterState {
            epoch: 7,
            segments: vec![a, segment(4, 1, &[])],
        };
        let bytes = state.encode();
        assert_eq!(WriterState::decode(&bytes).unwrap(), state);
        for cut in 0..bytes.len() {
            assert!(WriterState::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_segment_ends_in_an_error() {
        let mut damaged = (*segment(1, 0, &[(Some("key"), "value")])).clone();
        damaged.bytes.truncate(damaged.bytes.len() - 1);
        let results: Vec<_> = damaged.records().collect();
        assert_eq!(results.len(), 1);
        assert!(results[0].is_err());
    }
}
