//! What the source reads: a Kafka record's bytes and where it came from.

/// A record as the source's deserializer sees it, borrowed from the client's buffer.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    /// The key, if the record has one.
    pub key: Option<&'a [u8]>,
    /// The value (empty for a record without one).
    pub value: &'a [u8],
    /// The partition.
    pub partition: i32,
    /// The record's offset in its partition.
    pub offset: i64,
    /// The record's timestamp (milliseconds since the Unix epoch, create or log-append time
    /// as the topic is configured), if it has one: the event time, once the job uses one.
    pub timestamp: Option<i64>,
}

/// A record owned by the stream: what [`KafkaSource::records`](crate::KafkaSource::records)
/// produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaRecord {
    /// The key, if the record has one.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Vec<u8>,
    /// The partition.
    pub partition: i32,
    /// The record's offset in its partition.
    pub offset: i64,
    /// The record's timestamp in milliseconds since the Unix epoch, if it has one.
    pub timestamp: Option<i64>,
}

impl From<RecordRef<'_>> for KafkaRecord {
    fn from(record: RecordRef<'_>) -> Self {
        KafkaRecord {
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.to_vec(),
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
        }
    }
}
