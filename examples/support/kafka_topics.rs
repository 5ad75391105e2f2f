#![allow(dead_code)] // Shared by the examples and the Kafka tests.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! Putting lines into a topic and reading a topic back as a `read_committed` consumer sees
//! it: what the Kafka tests, the chaos driver and the examples feed jobs with and check their
//! output by.

use anyhow::{bail, Context, Result};
use snapflow::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use snapflow::kafka::rdkafka::error::{KafkaError, RDKafkaErrorCode};
use snapflow::kafka::rdkafka::message::Message;
use snapflow::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use snapflow::kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// How long reading a topic to its end may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Creates `topic` with `partitions` partitions.
///
/// # Errors
/// The broker is away or refuses.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let config = snapflow::kafka::KafkaConfig::new(bootstrap);
    snapflow::kafka::create_topic(&config, topic, partitions, &[])
        .map_err(|e| anyhow::anyhow!(e))
        .with_context(|| format!("creating topic '{topic}'"))
}

/// Appends `lines` to `topic`, spread round-robin over its `partitions` partitions, without a
/// key, and waits until the broker has them all.
///
/// # Errors
/// The broker is away or refuses a record.
pub fn produce_lines<S: AsRef<str>>(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    lines: &[S],
) -> Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .create()
        .context("creating a producer")?;
    for (i, line) in lines.iter().enumerate() {
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .partition((i % partitions as usize) as i32)
            .payload(line.as_ref().as_bytes());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    // Waits for delivery reports, which make room: an event, not a guess.
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e).context(format!("producing to '{topic}'")),
            }
        }
    }
    producer
        .flush(READ_TIMEOUT)
        .with_context(|| format!("flushing records to '{topic}'"))
}

/// Every record value of `topic` that a `read_committed` consumer sees, from the beginning to
/// the end offsets the topic has now, as text, partition by partition.
///
/// # Errors
/// The broker is away, the topic does not exist, or a value is not UTF-8.
pub fn read_committed(bootstrap: &str, topic: &str) -> Result<Vec<String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "snapflow-test-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .context("creating a consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), READ_TIMEOUT)
        .with_context(|| format!("reading the metadata of '{topic}'"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("topic '{topic}' does not exist");
    }
    let mut ends = Vec::new();
    let mut list = TopicPartitionList::new();
    for &partition in &partitions {
        let (_, high) = consumer.fetch_watermarks(topic, partition, READ_TIMEOUT)?;
        ends.push((partition, high));
        list.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    let mut done: Vec<bool> = ends.iter().map(|(_, high)| *high == 0).collect();
    let mut values = Vec::new();
    let deadline = Instant::now() + READ_TIMEOUT;
    while done.iter().any(|d| !d) {
        if Instant::now() > deadline {
            bail!("reading '{topic}' to its end took longer than {READ_TIMEOUT:?}");
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                let i = partitions.iter().position(|p| *p == message.partition());
                let Some(i) = i else { continue };
                if message.offset() >= ends[i].1 {
                    continue;
                }
                let value = std::str::from_utf8(message.payload().unwrap_or(&[]))
                    .with_context(|| format!("a value in '{topic}' is not UTF-8"))?;
                values.push(value.to_owned());
                done[i] |= message.offset() + 1 >= ends[i].1;
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                let position = consumer.position()?;
                let at = position
                    .find_partition(topic, partition)
                    .and_then(|p| p.offset().to_raw());
                if let Some(i) = partitions.iter().position(|p| *p == partition) {
                    done[i] |= at.is_some_and(|at| at >= ends[i].1);
                }
            }
            Some(Err(e)) => eprintln!("kafka_topics: reading '{topic}': {e}"),
        }
    }
    Ok(values)
}

/// How many partitions `topic` has.
///
/// # Errors
/// The broker is away or the topic does not exist.
pub fn partition_count(bootstrap: &str, topic: &str) -> Result<i32> {
    Ok(watermarks(bootstrap, topic)?.len() as i32)
}

/// How many offsets `topic` holds (records and transaction markers), over all partitions.
///
/// # Errors
/// The broker is away or the topic does not exist.
pub fn count_records(bootstrap: &str, topic: &str) -> Result<i64> {
    Ok(watermarks(bootstrap, topic)?
        .iter()
        .map(|(low, high)| high - low)
        .sum())
}

fn watermarks(bootstrap: &str, topic: &str) -> Result<Vec<(i64, i64)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating a consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), READ_TIMEOUT)
        .with_context(|| format!("reading the metadata of '{topic}'"))?;
    let mut marks = Vec::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        if t.error().is_some() {
            bail!("topic '{topic}' does not exist");
        }
        for p in t.partitions() {
            marks.push(consumer.fetch_watermarks(topic, p.id(), READ_TIMEOUT)?);
        }
    }
    if marks.is_empty() {
        bail!("topic '{topic}' does not exist");
    }
    Ok(marks)
}
