//! [`KafkaSink`]: a stream into one topic, exactly once (write-ahead + transactional commit)
//! or at least once (idempotent producer, flushed at every barrier).

use crate::at_least_once::{AtLeastOnceCommitter, DirectProducer, DirectWriter};
use crate::client::KafkaConfig;
use crate::commit::{KafkaCommitter, Shared, TxnSettings};
use crate::fault::CommitFault;
use crate::staged::{Segment, WriterState};
use snapflow_engine::{BoxError, CheckpointId, Committer, Sink, SinkWriter, TaskInfo};
use std::sync::{Arc, OnceLock};
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
    serialize: Arc<Serializer<T>>,
    /// Exactly once: the committer's settings; `None` for at least once.
    txn: Option<TxnSettings>,
    /// Exactly once: a fault planted in the committer.
    fault: Option<Arc<CommitFault>>,
    /// What the exactly-once writers and the committer share.
    shared: Arc<Shared>,
    /// Made at the first [`Sink::committer`] call from the settings as they are then; a
    /// builder method called after it makes a new one (never a panic).
    committer: OnceLock<Arc<dyn Committer>>,
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
        let txn = TxnSettings {
            config: config.clone(),
            topic: topic.clone(),
            marker_topic: crate::marker::topic_for(&transactional_id),
            transactional_id,
            transaction_timeout: Duration::from_secs(60),
        };
        Self {
            config,
            topic,
            serialize: Arc::new(serialize),
            txn: Some(txn),
            fault: None,
            shared: Arc::new(Shared::default()),
            committer: OnceLock::new(),
        }
    }

    /// An at-least-once sink into `topic`. Resumed from a checkpoint that an exactly-once run
    /// of the sink wrote, it first produces the records that run staged in the checkpoint
    /// (some may then appear twice; none is lost).
    pub fn at_least_once(
        config: KafkaConfig,
        topic: impl Into<String>,
        serialize: impl Fn(&T, &mut Vec<u8>, &mut Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        Self {
            config,
            topic: topic.into(),
            serialize: Arc::new(serialize),
            txn: None,
            fault: None,
            shared: Arc::new(Shared::default()),
            committer: OnceLock::new(),
        }
    }

    /// How the sink delivers.
    pub fn mode(&self) -> DeliveryMode {
        match self.txn {
            Some(_) => DeliveryMode::ExactlyOnce,
            None => DeliveryMode::AtLeastOnce,
        }
    }

    /// Exactly once: the compacted topic the commit markers go to (default
    /// `snapflow-commits.<transactional id>`). Give each sink its own: a restart reads the
    /// topic to its end, and another producer's transaction open on it holds that read back
    /// (until the transaction ends or `transaction.timeout.ms` passes). No effect at least
    /// once.
    pub fn marker_topic(self, topic: impl Into<String>) -> Self {
        self.with_settings(|s| s.marker_topic = topic.into())
    }

    /// Exactly once: the producer's `transaction.timeout.ms` (default 60 s). It bounds one
    /// commit; it must not exceed the broker's `transaction.max.timeout.ms`. No effect at
    /// least once.
    pub fn transaction_timeout(self, timeout: Duration) -> Self {
        self.with_settings(|s| s.transaction_timeout = timeout)
    }

    /// Exactly once: plants a fault in the committer (tests and chaos experiments). No effect
    /// at least once.
    pub fn commit_fault(mut self, fault: Arc<CommitFault>) -> Self {
        self.fault = Some(fault);
        self.committer = OnceLock::new();
        self
    }

    fn with_settings(mut self, change: impl FnOnce(&mut TxnSettings)) -> Self {
        if let Some(settings) = &mut self.txn {
            change(settings);
        }
        self.committer = OnceLock::new();
        self
    }

    fn make_committer(&self) -> Arc<dyn Committer> {
        match &self.txn {
            Some(settings) => Arc::new(KafkaCommitter::new(
                Arc::new(settings.clone()),
                Arc::clone(&self.shared),
                self.fault.clone(),
            )),
            None => Arc::new(AtLeastOnceCommitter {
                config: self.config.clone(),
                topic: self.topic.clone(),
            }),
        }
    }
}

impl<T: snapflow_engine::Data> Sink<T> for KafkaSink<T> {
    fn name(&self) -> String {
        format!("kafka:{}", self.topic)
    }

    fn create_writer(&self, task: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>, BoxError> {
        match self.mode() {
            DeliveryMode::ExactlyOnce => Ok(Box::new(StagingWriter {
                shared: Arc::clone(&self.shared),
                serialize: Arc::clone(&self.serialize),
                task: task.index as u32,
                current: Segment::default(),
                pending: Vec::new(),
                key: Vec::new(),
                value: Vec::new(),
            })),
            DeliveryMode::AtLeastOnce => Ok(Box::new(DirectWriter {
                producer: DirectProducer::new(&self.config, &self.topic)?,
                serialize: Arc::clone(&self.serialize),
                key: Vec::new(),
                value: Vec::new(),
            })),
        }
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(Arc::clone(
            self.committer.get_or_init(|| self.make_committer()),
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn value(line: &String, _key: &mut Vec<u8>, value: &mut Vec<u8>) {
        value.extend_from_slice(line.as_bytes());
    }

    #[test]
    fn builder_methods_after_the_committer_was_asked_for_do_not_panic() {
        let sink = KafkaSink::<String>::exactly_once(KafkaConfig::new("b:9092"), "t", "id", value);
        let first = sink.committer().expect("exactly once has a committer");
        let sink = sink
            .marker_topic("markers")
            .transaction_timeout(Duration::from_secs(5))
            .commit_fault(Arc::new(CommitFault::new(
                crate::CommitPoint::AfterCommit,
                1,
                crate::FaultAction::Fail,
            )));
        let second = sink.committer().expect("still a committer");
        assert!(
            !Arc::ptr_eq(&first, &second),
            "the settings changed, so the committer is a new one"
        );
        assert!(
            Arc::ptr_eq(&second, &sink.committer().unwrap()),
            "asked again, the same"
        );
        let at_least_once =
            KafkaSink::<String>::at_least_once(KafkaConfig::new("b:9092"), "t", value)
                .marker_topic("ignored");
        assert_eq!(at_least_once.mode(), DeliveryMode::AtLeastOnce);
        assert!(at_least_once.committer().is_some());
    }
}
