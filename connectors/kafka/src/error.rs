//! The connector's errors. Those that a later attempt may not meet (a broker that cannot be
//! reached, a commit cut short) are wrapped in [`Unavailable`] by [`unavailable`], so that a
//! restart strategy retries them.

use rdkafka::error::KafkaError as ClientError;
use snapflow_engine::{BoxError, Unavailable};

/// What went wrong talking to Kafka or reading its answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// No broker answered within the timeout.
    #[error("no Kafka broker at '{bootstrap}' answered within {timeout_ms} ms ({source})")]
    BrokerUnreachable {
        /// The bootstrap servers tried.
        bootstrap: String,
        /// How long the client waited.
        timeout_ms: u64,
        /// The client's error.
        source: Box<ClientError>,
    },
    /// The topic does not exist (topics are never created on first use by the connector).
    #[error("Kafka topic '{topic}' does not exist on '{bootstrap}'")]
    TopicMissing {
        /// The topic.
        topic: String,
        /// The bootstrap servers asked.
        bootstrap: String,
    },
    /// A client call failed.
    #[error("Kafka at '{bootstrap}': {action}: {source}")]
    Client {
        /// The bootstrap servers.
        bootstrap: String,
        /// What the connector was doing.
        action: String,
        /// The client's error.
        source: Box<ClientError>,
    },
    /// A record could not be turned into the stream's type.
    #[error("Kafka topic '{topic}' partition {partition} offset {offset}: {message}")]
    BadRecord {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// What the deserializer said.
        message: String,
    },
    /// A checkpoint's state (a source position or a sink's staged records) is not one the
    /// connector wrote, or the output disagrees with it.
    #[error("{0}")]
    Checkpoint(String),
    /// The broker did not take a record (at-least-once delivery).
    #[error("Kafka at '{bootstrap}': {message}")]
    Delivery {
        /// The bootstrap servers.
        bootstrap: String,
        /// What failed, naming the topic.
        message: String,
    },
    /// A configuration value that cannot work.
    #[error("Kafka connector configuration: {0}")]
    Config(String),
}

/// `error` as an [`Unavailable`] error: a later attempt may succeed.
pub(crate) fn unavailable(error: KafkaError) -> BoxError {
    Box::new(Unavailable(Box::new(error)))
}

/// A failed client call as [`Unavailable`] when a retry can cure it (the broker is away, a
/// request timed out), as a plain error otherwise (a fatal producer error, bad settings).
pub(crate) fn client(bootstrap: &str, action: impl Into<String>, source: ClientError) -> BoxError {
    let mut action = action.into();
    let hint = source.rdkafka_error_code().and_then(fatal_hint);
    let fatal = matches!(&source, ClientError::ClientConfig(..)) || hint.is_some();
    if let Some(hint) = hint {
        action = format!("{action} ({hint})");
    }
    let error = KafkaError::Client {
        bootstrap: bootstrap.to_owned(),
        action,
        source: Box::new(source),
    };
    if fatal {
        Box::new(error)
    } else {
        unavailable(error)
    }
}

/// Why an error code cannot be cured by restarting the job (it is then fatal), or `None`.
pub(crate) fn fatal_hint(code: rdkafka::types::RDKafkaErrorCode) -> Option<&'static str> {
    use rdkafka::types::RDKafkaErrorCode as Code;
    Some(match code {
        Code::TopicAuthorizationFailed
        | Code::ClusterAuthorizationFailed
        | Code::TransactionalIdAuthorizationFailed
        | Code::GroupAuthorizationFailed => "not authorized: check the broker's ACLs",
        Code::InvalidTransactionTimeout => {
            "the broker refuses the transaction timeout: it exceeds the broker's \
             transaction.max.timeout.ms; lower the sink's transaction_timeout or raise that"
        }
        Code::ProducerFenced | Code::Fenced => {
            "another producer with the same transactional id took over: a second job or a \
             second sink uses this transactional id"
        }
        Code::NotImplemented => {
            "this client cannot handle what the broker sent (e.g. a compression codec it was \
             built without)"
        }
        Code::BadMessage => "the broker sent a record this client cannot decode",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode as Code;

    #[test]
    fn fencing_and_a_refused_timeout_are_fatal_and_say_why_timeouts_are_retried() {
        for (code, words) in [
            (Code::ProducerFenced, "same transactional id"),
            (
                Code::InvalidTransactionTimeout,
                "transaction.max.timeout.ms",
            ),
            (Code::NotImplemented, "compression codec"),
        ] {
            let error = client("b:9092", "committing", ClientError::Global(code));
            assert!(
                error.downcast_ref::<KafkaError>().is_some(),
                "{code:?} must be fatal, not retried: {error}"
            );
            assert!(error.to_string().contains(words), "{error}");
        }
        let error = client(
            "b:9092",
            "committing",
            ClientError::Global(Code::RequestTimedOut),
        );
        assert!(
            error.downcast_ref::<KafkaError>().is_none(),
            "a timeout is retried under the restart strategy: {error}"
        );
    }
}
