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
    pub(crate) fn client_config(&self, base: &[(&str, &str)]) -> ClientConfig {
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
        config
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
        .client_config(&[])
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
