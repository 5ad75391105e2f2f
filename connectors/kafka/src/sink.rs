//! [`KafkaSink`]: a stream into one topic, exactly once (write-ahead + transactional commit)
//! or at least once (idempotent producer, flushed at every barrier).

use crate::client::KafkaConfig;
use crate::commit::{KafkaCommitter, Shared, TxnSettings};
use crate::error::{self, KafkaError};
use crate::fault::CommitFault;
use crate::staged::{Segment, WriterState};
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use snapflow_engine::{BoxError, CheckpointId, Committer, Sink, SinkWriter, TaskInfo};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Writes a record's key and value into the buffers it is given (both empty); an empty key is
/// sent as a record without a key.
pub type Serializer<T> = dyn Fn(&T, &mut Vec<u8>, &mut Vec<u8>) + Send + Sync;

/// How a [`KafkaSink`] delivers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Each checkpoint's records become visible to `read_committed` consumers when the
    /// checkpoint completes, exactly once, across crashes at any point.
    ExactlyOnce,
    /// Records are produced as they come (idempotent producer, no transactions) and flushed at
    /// every barrier: visible at once, never lost, repeated after a crash (the records since
    /// the last completed checkpoint are produced again).
    AtLeastOnce,
}

/// A stream into one Kafka topic.
///
/// **Exactly once** ([`KafkaSink::exactly_once`]) is a write-ahead, because librdkafka cannot
/// resume a transaction that another producer (the crashed attempt's) began: a producer with
/// the same `transactional.id` aborts it. So no transaction is open across a barrier:
///
/// 1. Each sink task keeps the records it writes between two barriers (a *segment*) and, at
///    the barrier, stores every segment not yet known committed in its checkpoint state: the
///    records are durable once the checkpoint is.
/// 2. When the checkpoint is complete, the committer produces the staged segments of that
///    checkpoint (and of earlier aborted ones) in ONE Kafka transaction that also writes a
///    marker `(run, checkpoint)` for the sink's transactional id to a compacted marker topic,
///    and commits it. Readers see all of a checkpoint's records or none.
/// 3. When a job resumes from checkpoint N, the committer first fences the crashed attempt's
///    producer (`init_transactions` aborts a transaction it left open), reads the marker back,
///    and produces, in one transaction with marker N, exactly the restored segments past the
///    marker: none if N's commit happened before the crash, all of them if it did not, also
///    when the crash came in the middle of the commit.
///
/// A transaction lives only inside one commit (seconds), not across a checkpoint interval, so
/// `transaction.timeout.ms` only needs to cover one commit. A transaction the broker aborts
/// (a timeout, a broker restart) fails the commit; the job restarts and redoes it from the
/// checkpoint. The cost: a checkpoint interval's output is held in memory by the writers and
/// written into the checkpoint.
///
/// **At least once** ([`KafkaSink::at_least_once`]): each task produces directly with an
/// idempotent producer and waits for every record to be acknowledged at each barrier.
pub struct KafkaSink<T> {
    config: KafkaConfig,
    topic: String,
    mode: DeliveryMode,
    serialize: Arc<Serializer<T>>,
    committer: Option<Arc<KafkaCommitter>>,
    shared: Arc<Shared>,
}

impl<T> KafkaSink<T> {
    /// An exactly-once sink into `topic`. `transactional_id` names the sink: it must be the
    /// same on every run of the job (a restore compares its marker) and used by no other
    /// sink or job. The marker topic defaults to `snapflow-commits.<transactional id>` (the
    /// sink's own, so that no other producer's open transaction can hold back its restart),
    /// created (compacted, one partition) when missing.
    pub fn exactly_once(
        config: KafkaConfig,
        topic: impl Into<String>,
        transactional_id: impl Into<String>,
        serialize: impl Fn(&T, &mut Vec<u8>, &mut Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        let topic = topic.into();
        let transactional_id = transactional_id.into();
        let shared = Arc::new(Shared::default());
        let settings = Arc::new(TxnSettings {
            config: config.clone(),
            topic: topic.clone(),
            marker_topic: crate::marker::topic_for(&transactional_id),
            transactional_id,
            transaction_timeout: Duration::from_secs(60),
        });
        Self {
            committer: Some(Arc::new(KafkaCommitter::new(
                settings,
                Arc::clone(&shared),
                None,
            ))),
            config,
            topic,
            mode: DeliveryMode::ExactlyOnce,
            serialize: Arc::new(serialize),
            shared,
        }
    }

    /// An at-least-once sink into `topic`.
    pub fn at_least_once(
        config: KafkaConfig,
        topic: impl Into<String>,
        serialize: impl Fn(&T, &mut Vec<u8>, &mut Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        Self {
            config,
            topic: topic.into(),
            mode: DeliveryMode::AtLeastOnce,
            serialize: Arc::new(serialize),
            committer: None,
            shared: Arc::new(Shared::default()),
        }
    }

    /// How the sink delivers.
    pub fn mode(&self) -> DeliveryMode {
        self.mode
    }

    /// Exactly once: the compacted topic the commit markers go to (default
    /// `snapflow-commits.<transactional id>`). Give each sink its own: a restart reads the
    /// topic to its end, and another producer's transaction open on it holds that read back
    /// (until the transaction ends or `transaction.timeout.ms` passes).
    pub fn marker_topic(self, topic: impl Into<String>) -> Self {
        self.with_settings(|s| s.marker_topic = topic.into())
    }

    /// Exactly once: the producer's `transaction.timeout.ms` (default 60 s). It bounds one
    /// commit; it must not exceed the broker's `transaction.max.timeout.ms`.
    pub fn transaction_timeout(self, timeout: Duration) -> Self {
        self.with_settings(|s| s.transaction_timeout = timeout)
    }

    /// Exactly once: plants a fault in the committer (tests and chaos experiments).
    pub fn commit_fault(mut self, fault: Arc<CommitFault>) -> Self {
        if let Some(committer) = self.committer.take() {
            let committer = Arc::into_inner(committer).expect("the committer is not shared yet");
            self.committer = Some(Arc::new(KafkaCommitter::new(
                committer.settings,
                committer.shared,
                Some(fault),
            )));
        }
        self
    }

    fn with_settings(mut self, change: impl FnOnce(&mut TxnSettings)) -> Self {
        if let Some(committer) = self.committer.take() {
            let committer = Arc::into_inner(committer).expect("the committer is not shared yet");
            let mut settings =
                Arc::into_inner(committer.settings).expect("the settings are not shared yet");
            change(&mut settings);
            self.committer = Some(Arc::new(KafkaCommitter::new(
                Arc::new(settings),
                committer.shared,
                committer.fault,
            )));
        }
        self
    }
}

impl<T: snapflow_engine::Data> Sink<T> for KafkaSink<T> {
    fn name(&self) -> String {
        format!("kafka:{}", self.topic)
    }

    fn create_writer(&self, task: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>, BoxError> {
        match self.mode {
            DeliveryMode::ExactlyOnce => Ok(Box::new(StagingWriter {
                shared: Arc::clone(&self.shared),
                serialize: Arc::clone(&self.serialize),
                task: task.index as u32,
                current: Segment::default(),
                pending: Vec::new(),
                key: Vec::new(),
                value: Vec::new(),
            })),
            DeliveryMode::AtLeastOnce => {
                let producer: BaseProducer<DeliveryContext> = self
                    .config
                    .client_config(&[("enable.idempotence", "true"), ("linger.ms", "5")])
                    .create_with_context(DeliveryContext::default())
                    .map_err(|e| error::client(&self.config.bootstrap, "creating a producer", e))?;
                // Fail now, naming the topic, rather than at the first flush.
                let consumer: rdkafka::consumer::BaseConsumer =
                    self.config.client_config(&[]).create().map_err(|e| {
                        error::client(&self.config.bootstrap, "creating a client", e)
                    })?;
                crate::client::partitions(&self.config, &consumer, &self.topic)?;
                Ok(Box::new(DirectWriter {
                    producer,
                    config: self.config.clone(),
                    topic: self.topic.clone(),
                    serialize: Arc::clone(&self.serialize),
                    key: Vec::new(),
                    value: Vec::new(),
                }))
            }
        }
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        self.committer
            .as_ref()
            .map(|c| Arc::clone(c) as Arc<dyn Committer>)
    }
}

/// Exactly once: stages records in memory and checkpoints them.
struct StagingWriter<T> {
    shared: Arc<Shared>,
    serialize: Arc<Serializer<T>>,
    task: u32,
    /// Records since the last barrier.
    current: Segment,
    /// Segments handed to the committer and not yet known committed (oldest first).
    pending: Vec<Arc<Segment>>,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl<T: Send> SinkWriter<T> for StagingWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), BoxError> {
        for record in &batch {
            self.key.clear();
            self.value.clear();
            (self.serialize)(record, &mut self.key, &mut self.value);
            let key = (!self.key.is_empty()).then_some(self.key.as_slice());
            self.current.push(key, &self.value);
        }
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        if self.current.count == 0 {
            return Ok(());
        }
        let mut segment = std::mem::take(&mut self.current);
        segment.checkpoint = checkpoint.0;
        segment.task = self.task;
        let segment = Arc::new(segment);
        self.pending.push(Arc::clone(&segment));
        self.shared.stage(segment);
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>, BoxError> {
        let state = WriterState {
            epoch: self.shared.epoch(),
            segments: self.pending.clone(),
        };
        Ok(Some(state.encode()))
    }

    fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        // Completed means committed: the engine notifies after the committer's commit.
        self.pending.retain(|s| s.checkpoint > checkpoint.0);
        Ok(())
    }
}

/// At least once: remembers the first failed delivery, reported at the next flush.
#[derive(Default)]
struct DeliveryContext {
    failed: Mutex<Option<String>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Err((e, message)) = result {
            let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            failed.get_or_insert_with(|| {
                format!("delivering a record to topic '{}': {e}", message.topic())
            });
        }
    }
}

/// At least once: produces directly.
struct DirectWriter<T> {
    producer: BaseProducer<DeliveryContext>,
    config: KafkaConfig,
    topic: String,
    serialize: Arc<Serializer<T>>,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl<T> DirectWriter<T> {
    /// Waits until every record sent is acknowledged.
    fn flush(&mut self) -> Result<(), BoxError> {
        self.producer.flush(self.config.timeout).map_err(|e| {
            error::client(
                &self.config.bootstrap,
                format!("flushing records to topic '{}'", self.topic),
                e,
            )
        })?;
        let failed = self
            .producer
            .context()
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match failed {
            Some(message) => Err(error::unavailable(KafkaError::Delivery {
                bootstrap: self.config.bootstrap.clone(),
                message,
            })),
            None => Ok(()),
        }
    }
}

impl<T: Send> SinkWriter<T> for DirectWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), BoxError> {
        for record in &batch {
            self.key.clear();
            self.value.clear();
            (self.serialize)(record, &mut self.key, &mut self.value);
            let mut next = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(&self.value);
            if !self.key.is_empty() {
                next = next.key(&self.key);
            }
            loop {
                match self.producer.send(next) {
                    Ok(()) => break,
                    Err((ClientError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        next = back;
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        return Err(error::client(
                            &self.config.bootstrap,
                            format!("producing to topic '{}'", self.topic),
                            e,
                        ))
                    }
                }
            }
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn pre_commit(&mut self, _checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.flush()
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.flush()
    }
}
