//! A source task's position: for each partition it reads, the offset of the next record to
//! return. It is what a checkpoint records and the only truth a restored job reads from (the
//! consumer group's committed offsets are written for monitoring only).

use crate::error::KafkaError;

/// Marks the encoding, so that another source's position is refused rather than misread:
/// version 1 held next offsets only; version 2 also the bounded end offsets.
const MAGIC_V1: &[u8; 8] = b"SFKPOS01";
const MAGIC: &[u8; 8] = b"SFKPOS02";

/// No end offset (an unbounded reader) in the encoding.
const NO_END: i64 = -1;

/// The next offset of a partition from which no record was returned yet: read from its
/// beginning (librdkafka's `OFFSET_BEGINNING`).
pub(crate) const FROM_BEGINNING: i64 = -2;

/// Partitions of one topic and the next offset to read in each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Offsets {
    pub(crate) topic: String,
    /// `(partition, next offset)`, sorted by partition; [`FROM_BEGINNING`] where nothing was
    /// read.
    pub(crate) next: Vec<(i32, i64)>,
    /// A bounded reader's end offset of each partition of `next` (same order), captured when
    /// the job first started and kept through restores, so that a topic still being written
    /// gives the same result whatever crashed; `None` for an unbounded reader.
    pub(crate) ends: Vec<Option<i64>>,
}

impl Offsets {
    /// The bytes a checkpoint stores.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 + self.topic.len() + 4 + self.next.len() * 20);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.topic.len() as u32).to_le_bytes());
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(&(self.next.len() as u32).to_le_bytes());
        for (i, (partition, offset)) in self.next.iter().enumerate() {
            out.extend_from_slice(&partition.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            let end = self.ends.get(i).copied().flatten().unwrap_or(NO_END);
            out.extend_from_slice(&end.to_le_bytes());
        }
        out
    }

    /// Reads what [`encode`](Self::encode) wrote.
    ///
    /// # Errors
    /// Bytes that are not a Kafka source position (another source's, or damaged).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Offsets, KafkaError> {
        let bad = || {
            KafkaError::Checkpoint(
                "the checkpoint's source position is not a Kafka source's position".to_owned(),
            )
        };
        let (mut rest, with_ends) = match bytes.strip_prefix(MAGIC.as_slice()) {
            Some(rest) => (rest, true),
            None => (
                bytes.strip_prefix(MAGIC_V1.as_slice()).ok_or_else(bad)?,
                false,
            ),
        };
        let mut take = |n: usize| -> Result<&[u8], KafkaError> {
            let (head, tail) = rest.split_at_checked(n).ok_or_else(bad)?;
            rest = tail;
            Ok(head)
        };
        let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad())?) as usize;
        let topic = std::str::from_utf8(take(len)?)
            .map_err(|_| bad())?
            .to_owned();
        let count = u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad())?) as usize;
        let mut next = Vec::with_capacity(count.min(1 << 16));
        let mut ends = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let partition = i32::from_le_bytes(take(4)?.try_into().map_err(|_| bad())?);
            let offset = i64::from_le_bytes(take(8)?.try_into().map_err(|_| bad())?);
            next.push((partition, offset));
            let end = if with_ends {
                i64::from_le_bytes(take(8)?.try_into().map_err(|_| bad())?)
            } else {
                NO_END
            };
            ends.push((end != NO_END).then_some(end));
        }
        if !rest.is_empty() {
            return Err(bad());
        }
        Ok(Offsets { topic, next, ends })
    }

    /// For people: "topic 'in' partition 0 at offset 15, partition 2 from the beginning".
    pub(crate) fn describe(&self) -> String {
        let parts: Vec<String> = self
            .next
            .iter()
            .map(|(partition, offset)| match *offset {
                FROM_BEGINNING => format!("partition {partition} from the beginning"),
                offset => format!("partition {partition} at offset {offset}"),
            })
            .collect();
        format!("topic '{}' {}", self.topic, parts.join(", "))
    }
}

/// The partitions that task `index` of `parallelism` reads: every `parallelism`-th of the
/// topic's sorted partitions, starting at the `index`-th. A fixed assignment, so that a
/// checkpoint's offsets always belong to the task that restores them.
pub(crate) fn assigned(partitions: &[i32], index: usize, parallelism: usize) -> Vec<i32> {
    partitions
        .iter()
        .enumerate()
        .filter(|(i, _)| i % parallelism == index)
        .map(|(_, p)| *p)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_damage_is_refused() {
        let offsets = Offsets {
            topic: "words".to_owned(),
            next: vec![(0, 15), (2, FROM_BEGINNING)],
            ends: vec![Some(40), Some(0)],
        };
        let bytes = offsets.encode();
        assert_eq!(Offsets::decode(&bytes).unwrap(), offsets);
        let unbounded = Offsets {
            ends: vec![None, None],
            ..offsets.clone()
        };
        assert_eq!(Offsets::decode(&unbounded.encode()).unwrap(), unbounded);
        // A version-1 position (no end offsets) still reads.
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&5u32.to_le_bytes());
        v1.extend_from_slice(b"words");
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&0i32.to_le_bytes());
        v1.extend_from_slice(&15i64.to_le_bytes());
        assert_eq!(
            Offsets::decode(&v1).unwrap(),
            Offsets {
                topic: "words".to_owned(),
                next: vec![(0, 15)],
                ends: vec![None],
            }
        );
        for cut in 0..bytes.len() {
            assert!(Offsets::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Offsets::decode(&longer).is_err());
        assert_eq!(
            offsets.describe(),
            "topic 'words' partition 0 at offset 15, partition 2 from the beginning"
        );
    }

    #[test]
    fn every_partition_goes_to_exactly_one_task() {
        let partitions = [0, 1, 2, 3, 4];
        for parallelism in 1..=7 {
            let mut seen: Vec<i32> = (0..parallelism)
                .flat_map(|i| assigned(&partitions, i, parallelism))
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, partitions, "parallelism {parallelism}");
        }
        assert_eq!(assigned(&partitions, 1, 2), [1, 3]);
        assert!(assigned(&[0], 1, 2).is_empty());
    }
}
