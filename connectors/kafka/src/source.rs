//! [`KafkaSource`]: a topic's partitions read by the job's source tasks, with the offsets in
//! the checkpoint as the only truth.

use crate::client::{self, KafkaConfig};
use crate::error::{self, KafkaError};
use crate::position::{self, Offsets, FROM_BEGINNING};
use crate::record::{KafkaRecord, RecordRef};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use snapflow_engine::{
    BoxError, CheckpointId, ReadStatus, Source, SourcePosition, SourceReader, TaskInfo,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Turns a record into the stream's type; an `Err` names what is wrong with it.
pub type Deserializer<T> = dyn Fn(RecordRef<'_>) -> Result<T, String> + Send + Sync;

/// How long a read waits for records when none are buffered: short, so that a barrier behind
/// an idle partition waits at most this long.
const POLL_WAIT: Duration = Duration::from_millis(20);

/// Reads one topic. Its partitions are assigned to the source tasks once, by position in the
/// sorted partition list (task `i` of `p` reads every `p`-th partition from the `i`-th), and
/// never move while the job runs; a task with no partition reads nothing and never holds
/// back a barrier.
///
/// Each task records in every checkpoint the next offset of each of its partitions and, on
/// restore, seeks there: the checkpoint is the only truth (Flink's `KafkaSource`). With a
/// [`group_id`](Self::group_id), the consumer group's offsets are committed after each
/// checkpoint completes, for monitoring tools only. Reads are `read_committed`: records of
/// aborted or still open transactions are never seen.
///
/// Without any broker for longer than [`KafkaConfig::timeout`], a task fails with an
/// [`Unavailable`](snapflow_engine::Unavailable) error naming the bootstrap servers, so that
/// the job restarts under its restart strategy instead of waiting without end.
///
/// [`bounded`](Self::bounded) makes the job finish: each partition is read up to the end
/// offset it had when the job first started (Flink's `setBounded(OffsetsInitializer.latest())`);
/// the end offsets are part of the checkpointed position, so a restore reads to the same ends.
pub struct KafkaSource<T> {
    config: KafkaConfig,
    topic: String,
    group_id: Option<String>,
    bounded: bool,
    deserialize: Arc<Deserializer<T>>,
}

impl KafkaSource<KafkaRecord> {
    /// Reads `topic` as [`KafkaRecord`]s (key, value, partition, offset, timestamp).
    pub fn records(config: KafkaConfig, topic: impl Into<String>) -> Self {
        Self::new(config, topic, |record| Ok(KafkaRecord::from(record)))
    }
}

impl<T> KafkaSource<T> {
    /// Reads `topic`, turning each record into a `T` with `deserialize`; a record it refuses
    /// fails the job with an error naming the topic, partition and offset.
    pub fn new(
        config: KafkaConfig,
        topic: impl Into<String>,
        deserialize: impl Fn(RecordRef<'_>) -> Result<T, String> + Send + Sync + 'static,
    ) -> Self {
        let topic = topic.into();
        Self {
            group_id: None,
            config,
            topic,
            bounded: false,
            deserialize: Arc::new(deserialize),
        }
    }

    /// Reads each partition only up to the end offset it had when the job first started (kept
    /// in every checkpoint, so that a restore reads to the same ends), then the source is
    /// exhausted (the job finishes). Unbounded (the default) reads forever.
    pub fn bounded(mut self, bounded: bool) -> Self {
        self.bounded = bounded;
        self
    }

    /// Commits each completed checkpoint's offsets to this consumer group, for monitoring
    /// (lag dashboards); they are never read back. Off by default: librdkafka's consumer with
    /// a group waits for the group coordinator when it closes, so while no broker answers a
    /// failed task's restart waits until one does.
    pub fn group_id(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }
}

impl<T: snapflow_engine::Data> Source for KafkaSource<T> {
    type Out = T;

    fn name(&self) -> String {
        format!("kafka:{}", self.topic)
    }

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<T>>, BoxError> {
        // librdkafka wants a group id also for a fixed assignment; without a user's group
        // nothing is ever committed to it.
        let default_group = format!("snapflow-{}", self.topic);
        let group = self.group_id.as_deref().unwrap_or(&default_group);
        let mut settings: Vec<(&str, &str)> = vec![("group.id", group)];
        settings.extend([
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("isolation.level", "read_committed"),
            ("enable.partition.eof", "true"),
            // A checkpointed offset that the topic no longer holds (retention deleted
            // it) is an error, never a silent jump to another offset.
            ("auto.offset.reset", "error"),
        ]);
        let consumer: BaseConsumer = self
            .config
            .client_config(&settings)?
            .create()
            .map_err(|e| error::client(&self.config.bootstrap, "creating a consumer", e))?;
        let all = client::partitions(&self.config, &consumer, &self.topic)?;
        let mine = position::assigned(&all, task.index, task.parallelism);
        let mut partitions = Vec::with_capacity(mine.len());
        for id in mine {
            let end = if self.bounded {
                let (low, high) = consumer
                    .fetch_watermarks(&self.topic, id, self.config.timeout)
                    .map_err(|e| client::unreachable(&self.config, e))?;
                // Empty (also when retention deleted every record, low == high > 0): nothing
                // to read, done at once. Reading it would wait for a record that never comes
                // (the client reports no position at the end of an empty partition).
                Some(if high <= low { 0 } else { high })
            } else {
                None
            };
            partitions.push(PartitionState {
                id,
                next: FROM_BEGINNING,
                end,
                done: false,
            });
        }
        let reader = KafkaReader {
            consumer,
            config: self.config.clone(),
            topic: self.topic.clone(),
            partitions,
            deserialize: Arc::clone(&self.deserialize),
            bounded: self.bounded,
            assigned: false,
            reported: Mutex::new(None),
            commits_offsets: self.group_id.is_some(),
            down_since: None,
        };
        // Assigned at the first read, after a restore's `seek`: an assignment made now would
        // start fetching from the beginning, and a fetch already under way could deliver
        // records from before the restored offsets.
        Ok(Box::new(reader))
    }
}

/// One partition of a task.
#[derive(Debug)]
struct PartitionState {
    id: i32,
    /// The offset after the last record returned, or [`FROM_BEGINNING`].
    next: i64,
    /// Bounded mode: the end offset captured at start; 0 for a partition with nothing to read.
    end: Option<i64>,
    /// Bounded mode: read up to `end`.
    done: bool,
}

impl PartitionState {
    /// Bounded and `next` reached the end (an empty partition is done at once).
    fn reached_end(&self) -> bool {
        self.end.is_some_and(|end| end <= 0 || self.next >= end)
    }
}

struct KafkaReader<T> {
    consumer: BaseConsumer,
    config: KafkaConfig,
    topic: String,
    partitions: Vec<PartitionState>,
    deserialize: Arc<Deserializer<T>>,
    /// Reads to the end offsets captured at start, then is exhausted.
    bounded: bool,
    /// The partitions are assigned to the consumer (at the first read).
    assigned: bool,
    /// The offsets last recorded in a checkpoint: committed to the group once it completes.
    /// Locked once per checkpoint, never per record.
    reported: Mutex<Option<Offsets>>,
    /// A group id is set: commit `reported` when a checkpoint completes.
    commits_offsets: bool,
    /// Since when the client has reported every broker down (and nothing was read since).
    down_since: Option<Instant>,
}

impl<T> KafkaReader<T> {
    /// Assigns the partitions not yet done, each at its next offset.
    fn assign(&mut self) -> Result<(), BoxError> {
        for partition in &mut self.partitions {
            partition.done = partition.reached_end();
        }
        let mut list = TopicPartitionList::new();
        for partition in self.partitions.iter().filter(|p| !p.done) {
            let offset = match partition.next {
                FROM_BEGINNING => Offset::Beginning,
                next => Offset::Offset(next),
            };
            list.add_partition_offset(&self.topic, partition.id, offset)
                .map_err(|e| error::client(&self.config.bootstrap, "assigning partitions", e))?;
        }
        self.consumer
            .assign(&list)
            .map_err(|e| error::client(&self.config.bootstrap, "assigning partitions", e))?;
        // A partition paused at its bounded end stays paused through a new assignment (the
        // pause is the application's): a seek back must fetch it again.
        self.consumer
            .resume(&list)
            .map_err(|e| error::client(&self.config.bootstrap, "resuming partitions", e))?;
        self.assigned = true;
        Ok(())
    }

    fn offsets(&self) -> Offsets {
        Offsets {
            topic: self.topic.clone(),
            next: self.partitions.iter().map(|p| (p.id, p.next)).collect(),
            ends: self.partitions.iter().map(|p| p.end).collect(),
        }
    }

    fn state(&mut self, partition: i32) -> Option<&mut PartitionState> {
        self.partitions.iter_mut().find(|p| p.id == partition)
    }

    /// Stops fetching a partition that reached its end.
    fn finish_partition(&mut self, partition: i32) {
        if let Some(state) = self.state(partition) {
            state.done = true;
        }
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.topic, partition);
        // Pausing only saves fetches: records past the end are dropped anyway.
        let _ = self.consumer.pause(&list);
    }

    /// A partition reported end-of-partition: in bounded mode it is done once the consumer's
    /// position (which moves past transaction markers) is at its end offset.
    fn on_partition_eof(&mut self, partition: i32) -> Result<(), BoxError> {
        let Some(end) = self.state(partition).and_then(|s| s.end) else {
            return Ok(());
        };
        let positions = self
            .consumer
            .position()
            .map_err(|e| error::client(&self.config.bootstrap, "reading positions", e))?;
        let at = positions
            .find_partition(&self.topic, partition)
            .and_then(|p| p.offset().to_raw());
        if at.is_some_and(|at| at >= end) {
            self.finish_partition(partition);
        }
        Ok(())
    }

    /// The client reported all brokers down. Past the timeout, and if a metadata request
    /// still gets no answer, the task fails with an `Unavailable` error naming the bootstrap
    /// servers, so that the job restarts under its restart strategy rather than wait forever.
    fn on_brokers_down(&mut self) -> Result<(), BoxError> {
        let since = *self.down_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.config.timeout {
            return Ok(());
        }
        match self
            .consumer
            .fetch_metadata(Some(&self.topic), self.config.timeout)
        {
            Ok(_) => {
                self.down_since = None;
                Ok(())
            }
            Err(e) => Err(client::unreachable(&self.config, e)),
        }
    }

    fn bounded_done(&self) -> bool {
        self.partitions.iter().all(|p| p.done)
    }
}

impl<T: Send> SourceReader<T> for KafkaReader<T> {
    fn read_batch(&mut self, batch: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        if !self.assigned {
            self.assign()?;
        }
        let bounded = self.bounded;
        if bounded && self.bounded_done() {
            return Ok(ReadStatus::Exhausted);
        }
        if self
            .down_since
            .is_some_and(|since| since.elapsed() >= self.config.timeout)
        {
            self.on_brokers_down()?;
        }
        let mut wait = POLL_WAIT;
        while batch.len() < max {
            // Wait only while nothing was read: return what there is rather than hold it.
            let Some(result) = self.consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            let message = match result {
                Ok(message) => message,
                Err(ClientError::PartitionEOF(partition)) => {
                    self.down_since = None;
                    self.on_partition_eof(partition)?;
                    continue;
                }
                Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) => {
                    self.on_brokers_down()?;
                    continue;
                }
                Err(e) => {
                    if is_fatal_consumer_error(&e) {
                        return Err(error::client(
                            &self.config.bootstrap,
                            format!("reading topic '{}'", self.topic),
                            e,
                        ));
                    }
                    // The client retries connections itself; a broker that stays away
                    // fails the job through the sink's commit or the checkpoint timeout.
                    tracing::debug!(topic = %self.topic, error = %e, "Kafka consumer");
                    continue;
                }
            };
            self.down_since = None;
            let partition = message.partition();
            let offset = message.offset();
            let Some(state) = self.partitions.iter_mut().find(|p| p.id == partition) else {
                continue;
            };
            if state.done || state.end.is_some_and(|end| offset >= end) {
                // Past the bounded end: not part of this run.
                continue;
            }
            if offset < state.next {
                // Already returned (a fetch from before a seek): never twice.
                continue;
            }
            let record = RecordRef {
                key: message.key(),
                value: message.payload().unwrap_or(&[]),
                partition,
                offset,
                timestamp: message.timestamp().to_millis(),
            };
            let value = (self.deserialize)(record).map_err(|message| KafkaError::BadRecord {
                topic: self.topic.clone(),
                partition,
                offset,
                message,
            })?;
            batch.push(value);
            state.next = offset + 1;
            if state.reached_end() {
                self.finish_partition(partition);
            }
        }
        if bounded && self.bounded_done() {
            return Ok(ReadStatus::Exhausted);
        }
        Ok(ReadStatus::More)
    }

    fn position(&self) -> Option<SourcePosition> {
        let offsets = self.offsets();
        let position = SourcePosition {
            offset: offsets.encode(),
            description: offsets.describe(),
        };
        if let Ok(mut reported) = self.reported.lock() {
            *reported = Some(offsets);
        }
        Some(position)
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        let offsets = Offsets::decode(&position.offset)?;
        let mine: Vec<i32> = self.partitions.iter().map(|p| p.id).collect();
        let theirs: Vec<i32> = offsets.next.iter().map(|(p, _)| *p).collect();
        if offsets.topic != self.topic || mine != theirs {
            return Err(Box::new(KafkaError::Checkpoint(format!(
                "the checkpoint's source position ({}) is not this task's (topic '{}' \
                 partitions {mine:?}): the topic or its partition count changed",
                offsets.describe(),
                self.topic
            ))));
        }
        for (i, (state, (_, next))) in self.partitions.iter_mut().zip(&offsets.next).enumerate() {
            state.next = *next;
            // A bounded run keeps the end offsets of its first start: records written to the
            // topic since then are not part of it, whatever crashed in between. (A checkpoint
            // without them, from an unbounded run or an older version, keeps this start's.)
            if state.end.is_some() {
                if let Some(end) = offsets.ends.get(i).copied().flatten() {
                    state.end = Some(end);
                }
            }
        }
        // Assigned at the next read, at these offsets.
        self.assigned = false;
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, _checkpoint: CheckpointId) -> Result<(), BoxError> {
        if !self.commits_offsets {
            return Ok(());
        }
        let reported = self.reported.lock().ok().and_then(|mut r| r.take());
        let Some(offsets) = reported else {
            return Ok(());
        };
        let mut list = TopicPartitionList::new();
        for (partition, next) in offsets.next.iter().filter(|(_, n)| *n >= 0) {
            let _ = list.add_partition_offset(&offsets.topic, *partition, Offset::Offset(*next));
        }
        if list.count() > 0 {
            // For monitoring only (lag dashboards): a failure here loses nothing.
            if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
                tracing::debug!(topic = %self.topic, error = %e, "committing group offsets");
            }
        }
        Ok(())
    }
}

/// Consumer errors that retrying cannot cure: the partition or topic is gone, an offset is
/// out of range (retention deleted records a checkpoint still needs), or a record cannot be
/// decoded by this client. Others are logged and retried by the client.
fn is_fatal_consumer_error(error: &ClientError) -> bool {
    // Also what no retry can decode (a compression codec this build lacks, a damaged record).
    error
        .rdkafka_error_code()
        .and_then(error::fatal_hint)
        .is_some()
        || matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::OffsetOutOfRange
                    | RDKafkaErrorCode::AutoOffsetReset
                    | RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::UnknownPartition
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::Fatal
            )
        )
}
