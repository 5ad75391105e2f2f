//! The exactly-once sink's committer: after a checkpoint is durable, it produces the
//! checkpoint's staged records and the sink's marker in ONE Kafka transaction; at open it
//! reads the marker back to redo exactly the restored segments that never reached Kafka.

use crate::client::{self, KafkaConfig};
use crate::error::{self, KafkaError};
use crate::fault::{CommitFault, CommitPoint};
use crate::marker::{self, Marker, Restored};
use crate::staged::{Segment, WriterState};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use snapflow_engine::{BoxError, CheckpointId, Committer, RestoredState};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a send waits for room in the client's queue before trying again.
const QUEUE_WAIT: Duration = Duration::from_millis(10);

/// What the committer and the sink's writers share: the run's epoch and the segments staged
/// for checkpoints not yet committed.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    state: Mutex<SharedState>,
}

#[derive(Debug, Default)]
struct SharedState {
    epoch: u64,
    /// By (checkpoint, task).
    staged: BTreeMap<(u64, u32), Arc<Segment>>,
}

impl Shared {
    /// A writer hands over its segment at the barrier (once per checkpoint and task).
    pub(crate) fn stage(&self, segment: Arc<Segment>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .staged
            .insert((segment.checkpoint, segment.task), segment);
    }

    /// The epoch the committer's `open` chose for this run.
    pub(crate) fn epoch(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).epoch
    }

    /// Takes the staged segments of checkpoints up to `checkpoint`.
    fn take_up_to(&self, checkpoint: u64) -> Vec<Arc<Segment>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let later = state.staged.split_off(&(checkpoint + 1, 0));
        std::mem::replace(&mut state.staged, later)
            .into_values()
            .collect()
    }

    fn reset(&self, epoch: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.epoch = epoch;
        state.staged.clear();
    }
}

/// The settings of an exactly-once sink.
#[derive(Clone, Debug)]
pub(crate) struct TxnSettings {
    pub(crate) config: KafkaConfig,
    pub(crate) topic: String,
    pub(crate) transactional_id: String,
    pub(crate) marker_topic: String,
    pub(crate) transaction_timeout: Duration,
}

/// The sink's global committer.
pub(crate) struct KafkaCommitter {
    pub(crate) settings: Arc<TxnSettings>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) fault: Option<Arc<CommitFault>>,
    /// The transactional producer of this attempt: made (and zombies fenced) by `open`.
    producer: Mutex<Option<BaseProducer>>,
}

impl KafkaCommitter {
    pub(crate) fn new(
        settings: Arc<TxnSettings>,
        shared: Arc<Shared>,
        fault: Option<Arc<CommitFault>>,
    ) -> Self {
        Self {
            settings,
            shared,
            fault,
            producer: Mutex::new(None),
        }
    }

    fn bootstrap(&self) -> &str {
        &self.settings.config.bootstrap
    }

    /// A transactional producer with the sink's id, after `init_transactions`: that fences
    /// any earlier producer with the id (a zombie of a crashed attempt) and aborts its open
    /// transaction, so that nothing of it ever becomes visible.
    fn new_producer(&self) -> Result<BaseProducer, BoxError> {
        let s = &self.settings;
        let timeout = s.transaction_timeout.as_millis().to_string();
        let producer: BaseProducer = s
            .config
            .client_config(&[
                ("transactional.id", &s.transactional_id),
                ("enable.idempotence", "true"),
                ("transaction.timeout.ms", &timeout),
                ("linger.ms", "5"),
                // Retries of a partition's addition to the transaction while the broker
                // still writes the previous one's markers come sooner (default 100 ms).
                ("retry.backoff.ms", "5"),
            ])?
            .create()
            .map_err(|e| error::client(self.bootstrap(), "creating a producer", e))?;
        producer
            .init_transactions(s.config.timeout)
            .map_err(|e| match e.rdkafka_error_code() {
                // No answer: the broker is away (retried under the restart strategy).
                Some(
                    RDKafkaErrorCode::MessageTimedOut
                    | RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::NetworkException,
                ) => client::unreachable(&s.config, e),
                // Anything else says what it is; fatal when a restart cannot cure it.
                _ => error::client(
                    self.bootstrap(),
                    format!("initializing transactions of '{}'", s.transactional_id),
                    e,
                ),
            })?;
        Ok(producer)
    }

    /// Checks the output topic, makes the marker topic if it is missing, and reads this
    /// sink's latest marker.
    fn read_marker(&self) -> Result<Option<Marker>, BoxError> {
        let s = &self.settings;
        let consumer: BaseConsumer = s
            .config
            .client_config(&[
                // Needed by librdkafka for an assignment; nothing is committed to it.
                ("group.id", "snapflow-marker-reader"),
                ("enable.auto.commit", "false"),
                ("isolation.level", "read_committed"),
                ("enable.partition.eof", "true"),
            ])?
            .create()
            .map_err(|e| error::client(self.bootstrap(), "creating a consumer", e))?;
        client::partitions(&s.config, &consumer, &s.topic)?;
        let partitions = match client::partitions(&s.config, &consumer, &s.marker_topic) {
            Ok(partitions) => partitions,
            Err(e) if is_topic_missing(&e) => {
                self.create_marker_topic()?;
                self.created_topic_partitions(&consumer)?
            }
            Err(e) => return Err(e),
        };
        // Read every partition up to its high watermark as it is now, after
        // `init_transactions` aborted this sink's own open transaction: a read_committed
        // consumer gets there once no older transaction on the partition is open. The high
        // watermark, not the last stable offset (which a read_committed consumer's
        // `fetch_watermarks` answers): a marker behind another producer's open transaction
        // must make the read wait (and, past the timeout, fail clearly), never be missed, or
        // the restart would commit the same records again.
        let uncommitted: BaseConsumer = s
            .config
            .client_config(&[
                ("group.id", "snapflow-marker-reader"),
                ("enable.auto.commit", "false"),
                ("isolation.level", "read_uncommitted"),
            ])?
            .create()
            .map_err(|e| error::client(self.bootstrap(), "creating a consumer", e))?;
        let mut ends = Vec::new();
        let mut list = TopicPartitionList::new();
        for partition in partitions {
            let (low, high) = uncommitted
                .fetch_watermarks(&s.marker_topic, partition, s.config.timeout)
                .map_err(|e| client::unreachable(&s.config, e))?;
            if high > low {
                ends.push((partition, high));
                list.add_partition_offset(&s.marker_topic, partition, Offset::Beginning)
                    .map_err(|e| error::client(self.bootstrap(), "assigning", e))?;
            }
        }
        if ends.is_empty() {
            return Ok(None);
        }
        consumer
            .assign(&list)
            .map_err(|e| error::client(self.bootstrap(), "assigning", e))?;
        let deadline = Instant::now() + s.config.timeout;
        let mut latest = None;
        let mut at_end = vec![false; ends.len()];
        while at_end.iter().any(|done| !done) {
            if Instant::now() > deadline {
                return Err(error::unavailable(KafkaError::Checkpoint(format!(
                    "Kafka at '{}': the marker topic '{}' could not be read to its end within \
                     {} ms (a transaction of another producer may hold it back)",
                    s.config.bootstrap,
                    s.marker_topic,
                    s.config.timeout_ms()
                ))));
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(message)) => {
                    if message.key() == Some(s.transactional_id.as_bytes()) {
                        if let Some(marker) = message.payload().and_then(Marker::decode) {
                            latest = Some(marker);
                        }
                    }
                    let next = message.offset() + 1;
                    if let Some(i) = ends.iter().position(|(p, _)| *p == message.partition()) {
                        at_end[i] |= next >= ends[i].1;
                    }
                }
                Some(Err(ClientError::PartitionEOF(partition))) => {
                    // At end-of-partition the position has moved past transaction markers.
                    let positions = consumer
                        .position()
                        .map_err(|e| error::client(self.bootstrap(), "reading positions", e))?;
                    let position = positions
                        .find_partition(&s.marker_topic, partition)
                        .and_then(|p| p.offset().to_raw());
                    if let Some(i) = ends.iter().position(|(p, _)| *p == partition) {
                        at_end[i] |= position.is_some_and(|at| at >= ends[i].1);
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "reading the marker topic"),
            }
        }
        Ok(latest)
    }

    /// The partitions of the marker topic just created. The broker answers a topic's
    /// creation before every metadata answer knows of it, so a read right after can still
    /// find it missing: read again until it is there or the timeout has passed.
    fn created_topic_partitions(&self, consumer: &BaseConsumer) -> Result<Vec<i32>, BoxError> {
        let s = &self.settings;
        let deadline = Instant::now() + s.config.timeout;
        retry_while_missing(deadline, METADATA_RETRY, || {
            client::partitions(&s.config, consumer, &s.marker_topic)
        })
    }

    fn create_marker_topic(&self) -> Result<(), BoxError> {
        let s = &self.settings;
        client::create_topic(
            &s.config,
            &s.marker_topic,
            1,
            &[("cleanup.policy", "compact")],
        )
    }

    /// Produces `segments` and `marker` in one transaction and commits it.
    fn transact(
        &self,
        producer: &BaseProducer,
        segments: &[Arc<Segment>],
        marker: Marker,
    ) -> Result<(), BoxError> {
        let s = &self.settings;
        let fail = |action: &str, e: ClientError| error::client(&s.config.bootstrap, action, e);
        if let Some(fault) = &self.fault {
            fault.begin_commit();
            fault.check(CommitPoint::BeforeTransaction)?;
        }
        producer
            .begin_transaction()
            .map_err(|e| fail("beginning a transaction", e))?;
        let mut sent = 0u64;
        for segment in segments {
            for record in segment.records() {
                let (key, value) = record?;
                let mut next = BaseRecord::<[u8], [u8]>::to(&s.topic).payload(value);
                if let Some(key) = key {
                    next = next.key(key);
                }
                send(producer, next).map_err(|e| fail("producing a record", e))?;
                sent += 1;
                if sent.is_multiple_of(4096) {
                    producer.poll(Duration::ZERO);
                }
            }
        }
        self.send_marker(producer, marker)?;
        if let Some(fault) = &self.fault {
            // Delivered first, so that a crash here really leaves records (and the marker) in
            // an open transaction on the broker, not only in this client's queue.
            producer
                .flush(s.config.timeout)
                .map_err(|e| fail("flushing the transaction's records", e))?;
            fault.check(CommitPoint::BeforeCommit)?;
        }
        producer
            .commit_transaction(s.config.timeout)
            .map_err(|e| fail("committing a transaction", e))?;
        if let Some(fault) = &self.fault {
            fault.check(CommitPoint::AfterCommit)?;
        }
        Ok(())
    }

    /// Commits a transaction holding only `marker` (no records, and not one of the commits a
    /// planted fault counts).
    fn claim(&self, producer: &BaseProducer, marker: Marker) -> Result<(), BoxError> {
        let s = &self.settings;
        let fail = |action: &str, e: ClientError| error::client(&s.config.bootstrap, action, e);
        producer
            .begin_transaction()
            .map_err(|e| fail("beginning a transaction", e))?;
        self.send_marker(producer, marker)?;
        producer
            .commit_transaction(s.config.timeout)
            .map_err(|e| fail("committing the run's first marker", e))
    }

    /// Sends the commit marker `marker` in the open transaction.
    fn send_marker(&self, producer: &BaseProducer, marker: Marker) -> Result<(), BoxError> {
        let s = &self.settings;
        let value = marker.encode();
        let record = BaseRecord::to(&s.marker_topic)
            .key(s.transactional_id.as_bytes())
            .payload(&value[..]);
        send(producer, record)
            .map_err(|e| error::client(&s.config.bootstrap, "producing the commit marker", e))
    }

    /// [`transact`](Self::transact) with this attempt's producer. On failure the producer is
    /// dropped (an open transaction stays open, as after a crash): the job restarts, and the
    /// next `open` fences it and redoes the commit from the checkpoint.
    fn commit_segments(&self, segments: &[Arc<Segment>], marker: Marker) -> Result<(), BoxError> {
        let mut slot = self.producer.lock().unwrap_or_else(|e| e.into_inner());
        let Some(producer) = slot.as_ref() else {
            return Err(format!(
                "Kafka sink '{}': a commit after a failed one in the same attempt",
                self.settings.transactional_id
            )
            .into());
        };
        let result = self.transact(producer, segments, marker);
        if result.is_err() {
            let failed = slot.take();
            if let (Some(fault), Some(producer)) = (&self.fault, failed) {
                if fault.fired() {
                    // A planted crash: its transaction stays open, as after a real one.
                    fault.keep(Box::new(producer));
                }
            }
        }
        result
    }
}

/// How long to wait before asking again for a topic the broker has just created.
const METADATA_RETRY: Duration = Duration::from_millis(20);

/// `read()` again, `wait` apart, while it says the topic is missing and `deadline` has not
/// passed; then its answer.
fn retry_while_missing<T>(
    deadline: Instant,
    wait: Duration,
    mut read: impl FnMut() -> Result<T, BoxError>,
) -> Result<T, BoxError> {
    loop {
        match read() {
            Err(e) if is_topic_missing(&e) && Instant::now() < deadline => {
                // No event tells when the metadata has caught up with the creation: ask again.
                std::thread::sleep(wait);
            }
            answer => return answer,
        }
    }
}

/// Sends `record`, waiting while the client's queue is full.
fn send(
    producer: &BaseProducer,
    mut record: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), ClientError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((ClientError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(QUEUE_WAIT);
            }
            Err((e, _)) => return Err(e),
        }
    }
}

fn is_topic_missing(error: &BoxError) -> bool {
    matches!(
        error.downcast_ref::<KafkaError>(),
        Some(KafkaError::TopicMissing { .. })
    )
}

/// The restored checkpoint's sink state: its writers' segments, de-duplicated.
fn restored_segments(restored: &RestoredState) -> Result<Option<Restored>, BoxError> {
    let mut epoch = None;
    let mut segments: BTreeMap<(u64, u32), Arc<Segment>> = BTreeMap::new();
    for payload in restored.payloads() {
        let state = WriterState::decode(payload)?;
        match epoch {
            None => epoch = Some(state.epoch),
            Some(e) if e != state.epoch => {
                return Err(Box::new(KafkaError::Checkpoint(format!(
                    "checkpoint {}: the Kafka sink's tasks recorded different runs ({e} and {})",
                    restored.checkpoint(),
                    state.epoch
                ))))
            }
            Some(_) => {}
        }
        for segment in state.segments {
            segments.insert((segment.checkpoint, segment.task), segment);
        }
    }
    // A checkpoint without state for this sink (it is new in the job) starts a new run.
    Ok(epoch.map(|epoch| Restored {
        checkpoint: restored.checkpoint().0,
        epoch,
        segments: segments.into_values().collect(),
    }))
}

impl Committer for KafkaCommitter {
    fn open(&self, restored: Option<&RestoredState>) -> Result<(), BoxError> {
        let mut slot = self.producer.lock().unwrap_or_else(|e| e.into_inner());
        *slot = None;
        let restored = restored.map(restored_segments).transpose()?.flatten();
        let producer = self.new_producer()?;
        let marker = self.read_marker()?;
        let fresh = restored.is_none();
        let plan = marker::plan_open(&self.settings.transactional_id, marker, restored)?;
        if fresh {
            // Claim the new run's epoch now, not at its first commit: a second fresh start
            // with this transactional id (while this run has committed nothing yet) must
            // read this marker and take the next epoch, or the two runs would share one and
            // a restore of either could take the other's commits for its own.
            self.claim(&producer, plan.commit_as)?;
        }
        if !plan.redo.is_empty() {
            tracing::info!(
                sink = %self.settings.transactional_id,
                segments = plan.redo.len(),
                checkpoint = plan.commit_as.checkpoint,
                "committing the restored checkpoint's records to Kafka"
            );
            self.transact(&producer, &plan.redo, plan.commit_as)?;
        }
        self.shared.reset(plan.epoch);
        *slot = Some(producer);
        Ok(())
    }

    fn close(&self, _interrupted: bool) {
        // Dropping the producer leaves no transaction open: commits are whole inside
        // `commit`, and one cut short is fenced by the next attempt's `init_transactions`.
        self.producer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    fn commit(&self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        let segments = self.shared.take_up_to(checkpoint.0);
        if segments.iter().all(|s| s.count == 0) {
            return Ok(());
        }
        let marker = Marker {
            epoch: self.shared.epoch(),
            checkpoint: checkpoint.0,
        };
        self.commit_segments(&segments, marker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> BoxError {
        Box::new(KafkaError::TopicMissing {
            topic: "snapflow-commits.t".into(),
            bootstrap: "b:9092".into(),
        })
    }

    #[test]
    fn a_topic_just_created_is_asked_for_again_until_it_is_there() {
        let far = Instant::now() + Duration::from_secs(3_600);
        let mut answers = vec![Ok(vec![0]), Err(missing()), Err(missing())];
        let got = retry_while_missing(far, Duration::ZERO, || answers.pop().unwrap());
        assert_eq!(got.unwrap(), vec![0]);
        assert!(answers.is_empty(), "asked until it was there");
        // Other errors are answered at once; past the deadline, the topic is missing.
        let mut asked = 0;
        let got: Result<(), _> = retry_while_missing(far, Duration::ZERO, || {
            asked += 1;
            Err("broker away".into())
        });
        assert!(got.is_err());
        assert_eq!(asked, 1);
        let past = Instant::now();
        let got: Result<(), _> = retry_while_missing(past, Duration::ZERO, || Err(missing()));
        assert!(is_topic_missing(&got.unwrap_err()));
    }
}
