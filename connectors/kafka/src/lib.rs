//! Kafka in and out of a snapflow job, with the proof standard of the file sink.
//!
//! - [`KafkaSource`] reads a topic's partitions, assigned to the source tasks once; the
//!   offsets in the checkpoint are the only truth, restored by seeking; `read_committed`;
//!   bounded (read to the end offsets seen at start, then finish) or unbounded. Each record's
//!   timestamp is handed to the deserializer ([`RecordRef::timestamp`]).
//! - [`KafkaSink`] writes a topic exactly once ([`DeliveryMode::ExactlyOnce`]: a write-ahead
//!   in the checkpoint, then one Kafka transaction per completed checkpoint with a commit
//!   marker, so that a commit re-driven after a crash knows whether it already happened; see
//!   [`KafkaSink`] for why this and not a transaction held across the checkpoint) or at least
//!   once ([`DeliveryMode::AtLeastOnce`]: idempotent producer, flushed at every barrier).
//!
//! A broker that cannot be reached is an [`Unavailable`](snapflow_engine::Unavailable) error
//! naming the bootstrap servers (a restart strategy retries it); a topic that does not exist
//! is an error naming it. Topics are never created on first use, except the sink's marker
//! topic.
//!
//! The client is librdkafka through the [`rdkafka`] crate (re-exported for tests and tools).

mod at_least_once;
mod client;
mod commit;
mod error;
mod fault;
mod marker;
mod position;
mod record;
mod sink;
mod source;
mod staged;

pub use client::{create_topic, KafkaConfig};
pub use error::KafkaError;
pub use fault::{CommitFault, CommitPoint, FaultAction};
pub use rdkafka;
pub use record::{KafkaRecord, RecordRef};
pub use sink::{DeliveryMode, KafkaSink, Serializer};
pub use source::{Deserializer, KafkaSource};
