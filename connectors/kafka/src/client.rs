//! Connection settings shared by the source and the sink, and the checks every connection
//! starts with: a broker answers (within a bounded time) and the topic exists.

use crate::error::{self, KafkaError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::types::RDKafkaErrorCode;
use snapflow_engine::BoxError;
use std::time::Duration;

/// Where the brokers are and how to talk to them.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`, the client's `bootstrap.servers`.
    pub bootstrap: String,
    /// How long a connection check, a metadata request or a commit may take before it counts
    /// as the broker being away (an [`Unavailable`](snapflow_engine::Unavailable) error).
    pub timeout: Duration,
    /// More librdkafka properties (`client.id`, `socket.timeout.ms`, ...), applied last. This
    /// build of librdkafka has no TLS and no SASL: a `security.protocol` other than
    /// `plaintext` is refused when the client is created (a fatal configuration error).
    pub properties: Vec<(String, String)>,
}

impl KafkaConfig {
    /// Brokers at `bootstrap`, a 30 s timeout, no extra properties.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            timeout: Duration::from_secs(30),
            properties: Vec::new(),
        }
    }

    /// Sets the timeout of connection checks, metadata requests and commits.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a librdkafka property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// A client configuration with the bootstrap servers, `base` and then the user's
    /// properties.
    ///
    /// # Errors
    /// A user property sets one the connector's guarantees rest on ([`KafkaError::Config`]
    /// naming it; see [`protocol_property`]).
    pub(crate) fn client_config(&self, base: &[(&str, &str)]) -> Result<ClientConfig, BoxError> {
        self.check_properties()?;
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        // librdkafka logs every failed connection attempt to stderr; the errors that matter
        // reach the job as errors.
        config.set("log_level", "3");
        for (key, value) in base {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        Ok(config)
    }

    /// Refuses a user property that would override a protocol setting of the connector.
    ///
    /// # Errors
    /// [`KafkaError::Config`] naming the first such property and what it would break.
    pub(crate) fn check_properties(&self) -> Result<(), KafkaError> {
        for (key, _) in &self.properties {
            if let Some(why) = protocol_property(key) {
                return Err(KafkaError::Config(format!(
                    "the property '{key}' cannot be set: {why}"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn timeout_ms(&self) -> u64 {
        self.timeout.as_millis() as u64
    }
}

/// The partition ids of `topic`, sorted.
///
/// # Errors
/// No broker answered within the timeout ([`KafkaError::BrokerUnreachable`], an
/// [`Unavailable`](snapflow_engine::Unavailable) error), or the topic does not exist
/// ([`KafkaError::TopicMissing`]).
pub(crate) fn partitions(
    config: &KafkaConfig,
    consumer: &BaseConsumer,
    topic: &str,
) -> Result<Vec<i32>, BoxError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), config.timeout)
        .map_err(|source| unreachable(config, source))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(missing(config, topic));
    };
    if let Some(code) = found.error() {
        let code = RDKafkaErrorCode::from(code);
        if code == RDKafkaErrorCode::UnknownTopicOrPartition {
            return Err(missing(config, topic));
        }
        return Err(error::client(
            &config.bootstrap,
            format!("reading the metadata of topic '{topic}'"),
            ClientError::MetadataFetch(code),
        ));
    }
    let mut ids: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    if ids.is_empty() {
        return Err(missing(config, topic));
    }
    ids.sort_unstable();
    Ok(ids)
}

/// A metadata request that got no answer: the broker is away (or never was there).
pub(crate) fn unreachable(config: &KafkaConfig, source: ClientError) -> BoxError {
    error::unavailable(KafkaError::BrokerUnreachable {
        bootstrap: config.bootstrap.clone(),
        timeout_ms: config.timeout_ms(),
        source: Box::new(source),
    })
}

/// Why the connector sets property `key` itself (so that a user's value would break a
/// guarantee), or `None` for a property a user may set. Keys are compared as librdkafka does,
/// without regard to case.
pub(crate) fn protocol_property(key: &str) -> Option<&'static str> {
    Some(match key.trim().to_ascii_lowercase().as_str() {
        "bootstrap.servers" | "metadata.broker.list" => "the brokers are KafkaConfig::bootstrap",
        "isolation.level" => {
            "the source reads read_committed (records of aborted transactions must never be seen)"
        }
        "transactional.id" => {
            "the exactly-once sink's transactional id is its commit identity; give it to \
             KafkaSink::exactly_once"
        }
        "transaction.timeout.ms" => "use KafkaSink::transaction_timeout",
        "enable.idempotence" | "acks" => {
            "the sinks need the idempotent producer (acks=all) not to lose or repeat records \
             on a retry"
        }
        "enable.auto.commit" | "enable.auto.offset.store" | "auto.commit.interval.ms" => {
            "the source's offsets live in the checkpoint; group offsets are committed after \
             a checkpoint completes (KafkaSource::group_id)"
        }
        "group.id" => "use KafkaSource::group_id",
        "auto.offset.reset" => {
            "a checkpointed offset the topic no longer holds must be an error, never a \
             silent jump"
        }
        "enable.partition.eof" => "the bounded source and the commit marker read need it",
        _ => return None,
    })
}

fn missing(config: &KafkaConfig, topic: &str) -> BoxError {
    Box::new(KafkaError::TopicMissing {
        topic: topic.to_owned(),
        bootstrap: config.bootstrap.clone(),
    })
}

/// Creates `topic` with `partitions` partitions, the broker's default replication and the
/// topic settings `configs`; a topic that exists already is left as it is.
///
/// # Errors
/// No broker answered, or the broker refused (the error names the topic).
pub fn create_topic(
    config: &KafkaConfig,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<(), BoxError> {
    let admin: AdminClient<DefaultClientContext> = config
        .client_config(&[])?
        .create()
        .map_err(|e| error::client(&config.bootstrap, "creating an admin client", e))?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    for (key, value) in configs {
        new = new.set(key, value);
    }
    let options = AdminOptions::new().request_timeout(Some(config.timeout));
    let action = || format!("creating topic '{topic}'");
    let results = futures_executor::block_on(admin.create_topics([&new], &options))
        .map_err(|e| error::client(&config.bootstrap, action(), e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(error::client(
                    &config.bootstrap,
                    action(),
                    ClientError::AdminOp(code),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_property_that_overrides_a_protocol_setting_is_refused_naming_it() {
        for key in [
            "isolation.level",
            "transactional.id",
            "Enable.Idempotence",
            "enable.auto.commit",
            "group.id",
            "auto.offset.reset",
            "bootstrap.servers",
        ] {
            let config = KafkaConfig::new("b:9092")
                .property("client.id", "mine")
                .property(key, "x");
            let error = config
                .client_config(&[])
                .err()
                .unwrap_or_else(|| panic!("'{key}' was accepted"));
            assert!(
                error.to_string().contains(&format!("property '{key}'")),
                "{error}"
            );
        }
        let tuning = KafkaConfig::new("b:9092")
            .property("linger.ms", "20")
            .property("socket.timeout.ms", "5000");
        assert!(tuning.client_config(&[]).is_ok());
    }
}
