//! At-least-once delivery: each sink task produces directly with an idempotent producer and
//! waits at every barrier until the broker has acknowledged every record. Its committer has
//! nothing to commit; at open it produces the records that an exactly-once run of the sink
//! staged in the checkpoint the job resumes from (the switch from exactly once to at least
//! once), since no one else ever would.

use crate::client::KafkaConfig;
use crate::error::{self, KafkaError};
use crate::sink::Serializer;
use crate::staged::{Segment, WriterState};
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use snapflow_engine::{BoxError, CheckpointId, Committer, RestoredState, SinkWriter};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Remembers the first failed delivery, reported at the next flush.
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

/// An idempotent producer into one topic.
pub(crate) struct DirectProducer {
    producer: BaseProducer<DeliveryContext>,
    config: KafkaConfig,
    topic: String,
}

impl DirectProducer {
    /// A producer into `topic`, which must exist.
    ///
    /// # Errors
    /// A refused property, no broker, or no such topic (named).
    pub(crate) fn new(config: &KafkaConfig, topic: &str) -> Result<Self, BoxError> {
        let producer: BaseProducer<DeliveryContext> = config
            .client_config(&[("enable.idempotence", "true"), ("linger.ms", "5")])?
            .create_with_context(DeliveryContext::default())
            .map_err(|e| error::client(&config.bootstrap, "creating a producer", e))?;
        // Fail now, naming the topic, rather than at the first flush.
        let consumer: rdkafka::consumer::BaseConsumer = config
            .client_config(&[])?
            .create()
            .map_err(|e| error::client(&config.bootstrap, "creating a client", e))?;
        crate::client::partitions(config, &consumer, topic)?;
        Ok(Self {
            producer,
            config: config.clone(),
            topic: topic.to_owned(),
        })
    }

    /// Sends one record, waiting while the client's queue is full.
    fn send(&self, key: Option<&[u8]>, value: &[u8]) -> Result<(), BoxError> {
        let mut next = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(value);
        if let Some(key) = key {
            next = next.key(key);
        }
        loop {
            match self.producer.send(next) {
                Ok(()) => return Ok(()),
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

    /// Waits until every record sent is acknowledged.
    fn flush(&self) -> Result<(), BoxError> {
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

/// A sink task's writer: produces directly.
pub(crate) struct DirectWriter<T> {
    pub(crate) producer: DirectProducer,
    pub(crate) serialize: Arc<Serializer<T>>,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

impl<T: Send> SinkWriter<T> for DirectWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), BoxError> {
        for record in &batch {
            self.key.clear();
            self.value.clear();
            (self.serialize)(record, &mut self.key, &mut self.value);
            let key = (!self.key.is_empty()).then_some(self.key.as_slice());
            self.producer.send(key, &self.value)?;
        }
        self.producer.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn pre_commit(&mut self, _checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.producer.flush()
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.producer.flush()
    }
}

/// The at-least-once sink's committer.
pub(crate) struct AtLeastOnceCommitter {
    pub(crate) config: KafkaConfig,
    pub(crate) topic: String,
}

impl Committer for AtLeastOnceCommitter {
    /// A checkpoint written while the sink delivered exactly once holds the records its
    /// writers staged and that may not be in Kafka yet (those of the checkpoint itself at
    /// least). Nothing else would ever produce them (the source resumes after them), so they
    /// are produced now: at least once allows a repeat, never a loss.
    fn open(&self, restored: Option<&RestoredState>) -> Result<(), BoxError> {
        let Some(restored) = restored else {
            return Ok(());
        };
        let mut states = Vec::new();
        for payload in restored.payloads() {
            let state = WriterState::decode(payload).map_err(|e| {
                KafkaError::Checkpoint(format!(
                    "Kafka sink into '{}', checkpoint {}: {e}",
                    self.topic,
                    restored.checkpoint()
                ))
            })?;
            states.push(state);
        }
        // Each task's own segments, oldest first; by (checkpoint, task) in case two hold one.
        let segments: BTreeMap<(u64, u32), Arc<Segment>> = states
            .into_iter()
            .flat_map(|s| s.segments)
            .map(|s| ((s.checkpoint, s.task), s))
            .collect();
        let records: u64 = segments.values().map(|s| s.count).sum();
        if records == 0 {
            return Ok(());
        }
        tracing::info!(
            topic = %self.topic,
            records,
            checkpoint = restored.checkpoint().0,
            "producing the records an exactly-once run staged in the checkpoint (at least once)"
        );
        let producer = DirectProducer::new(&self.config, &self.topic)?;
        for segment in segments.values() {
            for record in segment.records() {
                let (key, value) = record?;
                producer.send(key, value)?;
            }
        }
        producer.flush()
    }

    fn commit(&self, _checkpoint: CheckpointId) -> Result<(), BoxError> {
        Ok(())
    }
}
