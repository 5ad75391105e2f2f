//! Kafka -> word count -> Kafka against a real Apache Kafka broker (one per test binary,
//! started on 127.0.0.1 by examples/support/kafka_server.rs; each test has its own topics):
//! a `read_committed` consumer of the output topic must see every `word<TAB>count` exactly
//! once, equal to the sequential count, whatever was killed along the way:
//!
//! - task kills (the job restarts from its latest checkpoint and the source seeks to the
//!   checkpoint's offsets);
//! - a crash of the sink's commit after the checkpoint is durable and before anything reached
//!   Kafka, in the middle of the Kafka transaction (records produced, not committed), and
//!   right after the Kafka commit (the engine does not know it happened).
//!
//! And the errors: a missing topic and an unreachable broker are clear errors naming them.

mod common;
#[path = "../examples/support/corpus.rs"]
mod corpus;
#[path = "../examples/support/kafka_server.rs"]
mod kafka_server;
#[path = "../examples/support/kafka_topics.rs"]
mod kafka_topics;
#[path = "../examples/support/kafka_wordcount.rs"]
mod kafka_wordcount;
#[path = "../examples/support/rng.rs"]
mod rng;
#[path = "../examples/support/wordcount_job.rs"]
mod wordcount_job;

use common::bounded;
use kafka_server::KafkaServer;
use kafka_wordcount::KafkaJob;
use snapflow::engine::{
    CheckpointId, ErrorChain, FailureInjector, JobReport, OperatorId, ReadStatus, RestartStrategy,
    SourceReader, TaskInfo,
};
use snapflow::kafka::{
    CommitFault, CommitPoint, DeliveryMode, FaultAction, KafkaConfig, KafkaRecord,
};
use snapflow::prelude::*;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The broker all tests of this binary share (killed when the binary exits).
fn broker() -> &'static KafkaServer {
    static BROKER: OnceLock<KafkaServer> = OnceLock::new();
    BROKER.get_or_init(|| KafkaServer::start().expect("starting the Kafka broker"))
}

/// Input partitions: more than one, so that the two source tasks both read.
const PARTITIONS: i32 = 3;

/// `lines` lines of 8 words from a 300-word vocabulary.
fn corpus_lines(lines: u64, seed: u64) -> Vec<String> {
    let corpus = corpus::Corpus::new(300, 8, seed);
    (0..lines).map(|i| corpus.line(i)).collect()
}

/// Fresh input and output topics named after the test, the input filled with `lines`.
fn topics(test: &str, lines: &[String]) -> (String, String) {
    let bootstrap = broker().bootstrap();
    let input = format!("{test}-in");
    let output = format!("{test}-out");
    kafka_topics::create_topic(&bootstrap, &input, PARTITIONS).unwrap();
    kafka_topics::create_topic(&bootstrap, &output, 2).unwrap();
    kafka_topics::produce_lines(&bootstrap, &input, PARTITIONS, lines).unwrap();
    (input, output)
}

/// Checkpoints into `dir` every 20 ms (in practice as often as the Kafka commits allow, about
/// every 100 ms).
fn config(dir: &tempfile::TempDir, injector: FailureInjector) -> JobConfig {
    JobConfig::default()
        .with_parallelism(2)
        .with_checkpointing(dir.path(), Duration::from_millis(20))
        .with_restart_strategy(RestartStrategy::FixedDelay {
            attempts: 5,
            delay: Duration::ZERO,
        })
        .with_failure_injector(injector)
}

/// Lines each source task reads between two barriers: a job over `n` lines spans at least
/// `n / (2 * STEP)` checkpoints with records (the larger task reads at least half).
const STEP: usize = 100;

/// The exactly-once word count from `input` to `output`, its source stepped by [`STEP`].
fn job(input: &str, output: &str) -> KafkaJob {
    let mut job = KafkaJob::new(&broker().bootstrap(), input, output);
    job.step = Some(STEP);
    job
}

fn run(job: KafkaJob, config: JobConfig) -> JobReport {
    bounded("the Kafka word count", move || job.build().run(&config))
        .unwrap_or_else(|e| panic!("the job failed: {}", ErrorChain(&e)))
}

/// The output topic as a read_committed consumer sees it, sorted.
fn committed_output(output: &str) -> Vec<String> {
    let mut got = kafka_topics::read_committed(&broker().bootstrap(), output).unwrap();
    got.sort();
    got
}

fn expected(lines: &[String]) -> Vec<String> {
    wordcount_job::expected_output(&lines.join("\n"))
}

/// Word count with a crash planted at `point` of the sink's 2nd commit.
fn commit_crash(test: &str, point: CommitPoint) {
    let lines = corpus_lines(1_500, 7);
    let (input, output) = topics(test, &lines);
    let fault = Arc::new(CommitFault::new(point, 2, FaultAction::Fail));
    let mut job = job(&input, &output);
    job.fault = Some(Arc::clone(&fault));
    let dir = tempfile::tempdir().unwrap();
    let report = run(job, config(&dir, FailureInjector::new()));
    assert!(fault.fired(), "the commit crash never happened");
    assert!(report.restarts >= 1, "the job did not restart");
    assert_eq!(committed_output(&output), expected(&lines));
}

#[test]
fn exactly_once_word_count_equals_the_sequential_count() {
    let dir_plain = tempfile::tempdir().unwrap();
    let lines = corpus_lines(1_500, 1);
    let (input, output) = topics("plain", &lines);
    let report = run(
        job(&input, &output),
        config(&dir_plain, FailureInjector::new()),
    );
    assert!(
        report.checkpoints.len() >= 3,
        "only {} checkpoints: the test should span several",
        report.checkpoints.len()
    );
    assert_eq!(report.restarts, 0);
    assert_eq!(committed_output(&output), expected(&lines));
}

#[test]
fn task_kills_replay_from_the_checkpointed_offsets_exactly_once() {
    let dir_kills = tempfile::tempdir().unwrap();
    let lines = corpus_lines(2_000, 2);
    let (input, output) = topics("kills", &lines);
    let injector = FailureInjector::new()
        .fail_task_after_checkpoint("read", 0, 1)
        .fail_task_after_checkpoint("count", 1, 2)
        .fail_task_after_checkpoint("write", 0, 3);
    let report = run(job(&input, &output), config(&dir_kills, injector.clone()));
    assert_eq!(injector.fired(), 3, "not every kill happened");
    assert_eq!(report.restarts, 3);
    assert_eq!(committed_output(&output), expected(&lines));
}

#[test]
fn a_crash_after_the_checkpoint_and_before_the_kafka_commit_is_committed_once() {
    commit_crash("before-txn", CommitPoint::BeforeTransaction);
}

#[test]
fn a_crash_in_the_middle_of_the_kafka_transaction_is_fenced_and_committed_once() {
    commit_crash("mid-txn", CommitPoint::BeforeCommit);
}

#[test]
fn a_crash_right_after_the_kafka_commit_is_not_committed_again() {
    commit_crash("after-commit", CommitPoint::AfterCommit);
}

#[test]
fn at_least_once_loses_nothing_under_kills() {
    let dir_at_least_once = tempfile::tempdir().unwrap();
    let lines = corpus_lines(1_500, 3);
    let (input, output) = topics("at-least-once", &lines);
    let injector = FailureInjector::new().fail_task_after_checkpoint("write", 0, 1);
    let mut job = job(&input, &output);
    job.mode = DeliveryMode::AtLeastOnce;
    run(job, config(&dir_at_least_once, injector.clone()));
    assert_eq!(injector.fired(), 1);
    let got = committed_output(&output);
    let mut distinct = got.clone();
    distinct.dedup();
    assert_eq!(distinct, expected(&lines), "a count is missing or wrong");
}

#[test]
fn the_source_reads_a_transactional_topic_to_its_end() {
    let dir_reread_2 = tempfile::tempdir().unwrap();
    let dir_reread = tempfile::tempdir().unwrap();
    // The word count's output topic ends in transaction markers, which hold offsets but no
    // records: a bounded source must still finish, with exactly the committed records.
    let lines = corpus_lines(500, 4);
    let (input, output) = topics("reread", &lines);
    run(
        job(&input, &output),
        config(&dir_reread, FailureInjector::new()),
    );
    let bootstrap = broker().bootstrap();
    let config = config(&dir_reread_2, FailureInjector::new());
    let collected = bounded("reading the output back", move || {
        let source =
            snapflow::kafka::KafkaSource::new(KafkaConfig::new(bootstrap), &output, |record| {
                Ok(String::from_utf8_lossy(record.value).into_owned())
            })
            .bounded(true);
        let collect = CollectSink::new();
        let collected = collect.results();
        let job = Job::new("reread");
        job.source(source).sink(collect);
        job.run(&config).map(|_| collected)
    })
    .unwrap();
    let mut got = collected.take();
    got.sort();
    assert_eq!(got, expected(&lines));
}

#[test]
fn a_missing_topic_is_an_error_naming_it() {
    let bootstrap = broker().bootstrap();
    kafka_topics::create_topic(&bootstrap, "missing-out-in", 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let no_retry =
        |_| config(&dir, FailureInjector::new()).with_restart_strategy(RestartStrategy::None);
    for (input, output, missing) in [
        ("no-such-input", "missing-out-in", "no-such-input"),
        ("missing-out-in", "no-such-output", "no-such-output"),
    ] {
        let job = KafkaJob::new(&bootstrap, input, output);
        let config = no_retry(missing);
        let error = bounded("a job on a missing topic", move || job.build().run(&config))
            .expect_err("a job on a missing topic must fail");
        let message = ErrorChain(&error).to_string();
        assert!(
            message.contains(&format!("topic '{missing}' does not exist")),
            "{message}"
        );
    }
}

#[test]
fn a_broker_that_is_not_there_is_an_error_naming_it() {
    let dir_no_broker = tempfile::tempdir().unwrap();
    // A port nobody listens on (taken from the OS, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bootstrap = format!("127.0.0.1:{port}");
    let mut job = KafkaJob::new(&bootstrap, "in", "out");
    job.config = job.config.clone().timeout(Duration::from_secs(2));
    let config =
        config(&dir_no_broker, FailureInjector::new()).with_restart_strategy(RestartStrategy::None);
    let error = bounded("a job without a broker", move || job.build().run(&config))
        .expect_err("a job without a broker must fail");
    let message = ErrorChain(&error).to_string();
    assert!(
        message.contains(&format!("no Kafka broker at '{bootstrap}'")),
        "{message}"
    );
}

#[test]
fn a_restored_source_returns_each_record_after_its_checkpointed_offset_exactly_once() {
    // One task reads part of a partition and records its position; a new reader (as after a
    // restart) seeks there and must return exactly the records after it: none from before
    // (a fetch the new consumer began from the beginning) and none twice.
    use snapflow::engine::Source;
    let bootstrap = broker().bootstrap();
    kafka_topics::create_topic(&bootstrap, "seek-in", 1).unwrap();
    let lines: Vec<String> = (0..20_000).map(|i| format!("line {i}")).collect();
    kafka_topics::produce_lines(&bootstrap, "seek-in", 1, &lines).unwrap();
    let source = snapflow::kafka::KafkaSource::new(
        KafkaConfig::new(bootstrap.as_str()),
        "seek-in",
        |record| Ok(String::from_utf8_lossy(record.value).into_owned()),
    )
    .bounded(true);
    let task = only_task();
    let mut first = source.create_reader(&task).unwrap();
    let mut read = read_exactly(first.as_mut(), 5_000);
    let position = first.position().expect("a Kafka source has a position");
    drop(first);
    let mut second = source.create_reader(&task).unwrap();
    second.seek(&position).unwrap();
    read.extend(read_all(second.as_mut()));
    assert_eq!(read, lines, "records lost, repeated or out of order");
}

/// The one task of a source of parallelism 1, as the engine describes it to a reader.
fn only_task() -> TaskInfo {
    TaskInfo {
        operator: OperatorId(0),
        name: "read".into(),
        uid: "read".into(),
        index: 0,
        parallelism: 1,
        max_parallelism: 128,
        first_checkpoint: CheckpointId(1),
    }
}

/// Reads from `reader` until it is exhausted (batches of an odd size; each read gets an
/// empty batch, as the runtime gives it).
fn read_all<T>(reader: &mut dyn SourceReader<T>) -> Vec<T> {
    let mut read = Vec::new();
    loop {
        let mut batch = Vec::new();
        let status = reader.read_batch(&mut batch, 777).unwrap();
        read.extend(batch);
        if status == ReadStatus::Exhausted {
            return read;
        }
    }
}

/// Reads exactly `n` records from `reader` (the position is then right after the `n`-th).
fn read_exactly<T>(reader: &mut dyn SourceReader<T>, n: usize) -> Vec<T> {
    let mut read = Vec::new();
    while read.len() < n {
        let mut batch = Vec::new();
        reader.read_batch(&mut batch, n - read.len()).unwrap();
        read.extend(batch);
    }
    read
}

/// (partition, offset) of each record, in order.
fn offsets(records: &[KafkaRecord]) -> Vec<(i32, i64)> {
    records.iter().map(|r| (r.partition, r.offset)).collect()
}

/// Reads `reader` until it is exhausted; (partition, offset) of each record in order.
fn read_to_end(reader: &mut dyn SourceReader<KafkaRecord>) -> Vec<(i32, i64)> {
    offsets(&read_all(reader))
}

/// For each of `partitions`, the offset after the last of `read` in it (0 if none).
fn next_offsets(read: &[(i32, i64)], partitions: &[i32]) -> Vec<(i32, i64)> {
    partitions
        .iter()
        .map(|&p| {
            let last = read.iter().filter(|(q, _)| *q == p).map(|(_, o)| *o).max();
            (p, last.map_or(0, |o| o + 1))
        })
        .collect()
}

/// Asserts that `read` holds, per partition, exactly offsets `from[p]..end` in order.
fn assert_exactly_from(read: &[(i32, i64)], from: &[(i32, i64)], end: i64, what: &str) {
    for &(partition, first) in from {
        let got: Vec<i64> = read
            .iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, o)| *o)
            .collect();
        let want: Vec<i64> = (first..end).collect();
        assert!(
            got == want,
            "{what}: partition {partition} returned {} records starting {:?}, want {}..{end}",
            got.len(),
            got.first(),
            first
        );
    }
}

#[test]
fn a_reader_restored_at_a_position_returns_exactly_the_records_after_it() {
    // The position recorded at a barrier is the offset after the last record returned; a
    // reader restored there (create + seek, as the engine does after a crash) and a reader that
    // already fetched ahead and then seeks (stale records in the client's queue) must both
    // return exactly the records from that offset on: the first one exactly, none twice.
    use snapflow::engine::Source;
    let bootstrap = broker().bootstrap();
    kafka_topics::create_topic(&bootstrap, "restore-at", 2).unwrap();
    let lines: Vec<String> = (0..40_000).map(|i| format!("line {i}")).collect();
    kafka_topics::produce_lines(&bootstrap, "restore-at", 2, &lines).unwrap();
    let end = 20_000; // per partition
    let source =
        snapflow::kafka::KafkaSource::records(KafkaConfig::new(bootstrap.as_str()), "restore-at")
            .bounded(true);
    let task = only_task();
    let mut warm = source.create_reader(&task).unwrap();
    let everything = read_to_end(warm.as_mut());
    assert_exactly_from(&everything, &[(0, 0), (1, 0)], end, "a fresh reader");
    for (round, stop) in [1usize, 999, 12_345, 25_000, 39_999]
        .into_iter()
        .enumerate()
    {
        // The position after exactly `stop` records, as a barrier after them records it.
        let mut first = source.create_reader(&task).unwrap();
        let before = offsets(&read_exactly(first.as_mut(), stop));
        let position = first.position().expect("a Kafka source has a position");
        let next = next_offsets(&before, &[0, 1]);
        // The same reader, its queue full of records fetched ahead, goes back there...
        first.seek(&position).unwrap();
        let again = read_to_end(first.as_mut());
        assert_exactly_from(
            &again,
            &next,
            end,
            &format!("round {round}: seek on a warm reader"),
        );
        drop(first);
        // ...and so does a new reader, as after a restart.
        let mut restored = source.create_reader(&task).unwrap();
        restored.seek(&position).unwrap();
        let after = read_to_end(restored.as_mut());
        assert_exactly_from(
            &after,
            &next,
            end,
            &format!("round {round}: a restored reader"),
        );
        // The warm reader, exhausted, seeks back to the same position too.
        warm.seek(&position).unwrap();
        let rewound = read_to_end(warm.as_mut());
        assert_exactly_from(
            &rewound,
            &next,
            end,
            &format!("round {round}: a rewound reader"),
        );
    }
}

#[test]
fn another_producers_open_transaction_does_not_hide_the_sinks_marker() {
    // A read_committed read stops at the last stable offset: below the first record of any
    // transaction still open on the partition. Another producer (another sink, another job)
    // holds a transaction open on `snapflow-commits`, the topic all sinks' markers once shared,
    // from before the job's first commit. The job crashes right after its 2nd Kafka commit;
    // the restart must still see that commit's marker and not commit the records again.
    use snapflow::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let bootstrap = broker().bootstrap();
    kafka_topics::create_topic(&bootstrap, "snapflow-commits", 1).unwrap();
    let other: BaseProducer = snapflow::kafka::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", "another-producer")
        .set("transaction.timeout.ms", "300000")
        .create()
        .unwrap();
    other.init_transactions(Duration::from_secs(30)).unwrap();
    other.begin_transaction().unwrap();
    other
        .send(
            BaseRecord::<[u8], [u8]>::to("snapflow-commits")
                .key(b"another")
                .payload(b"open"),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    other.flush(Duration::from_secs(30)).unwrap();

    commit_crash("foreign-txn", CommitPoint::AfterCommit);

    // A sink told to share that topic cannot read its marker past the open transaction: it
    // fails clearly (here at its start, when it reads the marker for its run's epoch) rather
    // than decide from a marker it cannot see.
    let lines = corpus_lines(100, 8);
    let (input, output) = topics("shared-marker", &lines);
    let mut job = KafkaJob::new(&bootstrap, &input, &output);
    job.marker_topic = Some("snapflow-commits".into());
    job.config = job.config.clone().timeout(Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let config =
        config(&dir, FailureInjector::new()).with_restart_strategy(RestartStrategy::FixedDelay {
            attempts: 1,
            delay: Duration::ZERO,
        });
    let error = bounded("the Kafka word count", move || job.build().run(&config))
        .expect_err("the sink read its marker past another producer's open transaction");
    let message = ErrorChain(&error).to_string();
    assert!(
        message.contains("'snapflow-commits' could not be read to its end"),
        "{message}"
    );
    other.abort_transaction(Duration::from_secs(30)).unwrap();
}

#[test]
fn a_restored_bounded_reader_reads_to_the_first_starts_end_offsets() {
    // A bounded run reads to the end offsets of its first start. Records written to the topic
    // after that start and before a crash are not part of the run: the restored reader must
    // stop at the same ends, so that the result does not depend on when something crashed.
    use snapflow::engine::Source;
    let bootstrap = broker().bootstrap();
    kafka_topics::create_topic(&bootstrap, "bounded-ends", 2).unwrap();
    let first: Vec<String> = (0..10_000).map(|i| format!("first {i}")).collect();
    kafka_topics::produce_lines(&bootstrap, "bounded-ends", 2, &first).unwrap();
    let source =
        snapflow::kafka::KafkaSource::records(KafkaConfig::new(bootstrap.as_str()), "bounded-ends")
            .bounded(true);
    let task = only_task();
    let mut reader = source.create_reader(&task).unwrap();
    let before = offsets(&read_exactly(reader.as_mut(), 3_000));
    let position = reader.position().expect("a Kafka source has a position");
    drop(reader); // the crash
    let later: Vec<String> = (0..4_000).map(|i| format!("later {i}")).collect();
    kafka_topics::produce_lines(&bootstrap, "bounded-ends", 2, &later).unwrap();
    let mut restored = source.create_reader(&task).unwrap();
    restored.seek(&position).unwrap();
    let after = read_to_end(restored.as_mut());
    let next = next_offsets(&before, &[0, 1]);
    // 5000 records per partition at the first start.
    assert_exactly_from(&after, &next, 5_000, "the restored bounded reader");
    assert_eq!(before.len() + after.len(), first.len());
}

#[test]
fn a_bounded_reader_finishes_a_partition_whose_records_were_all_deleted() {
    // Partition 0 had records that retention (here: DeleteRecords) removed: low == high > 0.
    // The bounded reader must finish it and read partition 1 to its end, not wait forever.
    use snapflow::engine::Source;
    use snapflow::kafka::rdkafka::admin::{AdminClient, AdminOptions};
    use snapflow::kafka::rdkafka::client::DefaultClientContext;
    use snapflow::kafka::rdkafka::{Offset, TopicPartitionList};
    let bootstrap = broker().bootstrap();
    kafka_topics::create_topic(&bootstrap, "emptied", 2).unwrap();
    let lines: Vec<String> = (0..200).map(|i| format!("line {i}")).collect();
    kafka_topics::produce_lines(&bootstrap, "emptied", 2, &lines).unwrap();
    let admin: AdminClient<DefaultClientContext> = snapflow::kafka::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition_offset("emptied", 0, Offset::End)
        .unwrap();
    futures_executor::block_on(admin.delete_records(&list, &AdminOptions::new())).unwrap();
    let source =
        snapflow::kafka::KafkaSource::records(KafkaConfig::new(bootstrap.as_str()), "emptied")
            .bounded(true);
    let task = only_task();
    let read = bounded("reading an emptied partition", move || {
        let mut reader = source.create_reader(&task).unwrap();
        read_to_end(reader.as_mut())
    });
    assert_exactly_from(&read, &[(1, 0)], 100, "partition 1");
    assert!(
        read.iter().all(|(p, _)| *p == 1),
        "deleted records were read"
    );
}

#[test]
fn switching_an_exactly_once_checkpoint_to_at_least_once_loses_nothing() {
    // An exactly-once run stops (its commit of checkpoint 2 fails before anything reached
    // Kafka, no restart): checkpoint 2 holds records staged and never committed. The job
    // resumes from it with at-least-once delivery, which has no transactions: its committer
    // must produce those records, or they are lost (the source resumes after them).
    let lines = corpus_lines(1_500, 9);
    let (input, output) = topics("switch", &lines);
    let dir = tempfile::tempdir().unwrap();
    let fault = Arc::new(CommitFault::new(
        CommitPoint::BeforeTransaction,
        2,
        FaultAction::Fail,
    ));
    let mut exactly_once = job(&input, &output);
    exactly_once.fault = Some(Arc::clone(&fault));
    let stop = config(&dir, FailureInjector::new()).with_restart_strategy(RestartStrategy::None);
    let error = bounded("the exactly-once run", move || {
        exactly_once.build().run(&stop)
    })
    .expect_err("the planted commit failure stops the run");
    assert!(
        fault.fired(),
        "the run stopped otherwise: {}",
        ErrorChain(&error)
    );
    let mut at_least_once = job(&input, &output);
    at_least_once.mode = DeliveryMode::AtLeastOnce;
    let report = run(at_least_once, config(&dir, FailureInjector::new()));
    assert!(
        report.restored_from.is_some(),
        "the at-least-once run did not resume from the checkpoint: {report:?}"
    );
    let mut distinct = committed_output(&output);
    distinct.dedup();
    assert_eq!(
        distinct,
        expected(&lines),
        "counts staged in the exactly-once checkpoint are missing"
    );
}

#[test]
fn two_fresh_starts_with_one_transactional_id_never_share_a_run() {
    // Sink A starts fresh and commits nothing yet; sink B starts fresh with the same
    // transactional id (a second start of the job without its checkpoints), fences A and
    // commits its checkpoint 1. A's checkpoint 1 was durable but its commit failed (fenced);
    // A resumes from it. If A and B took the same run number (each read the marker before
    // either committed), B's marker "checkpoint 1 committed" reads as A's own, and A's
    // staged records are silently dropped. A must either commit them or be refused.
    use snapflow::checkpoint::{KeyGroupRange, DEFAULT_MAX_PARALLELISM};
    use snapflow::engine::{RestoredState, Sink};
    use snapflow::kafka::KafkaSink;
    let bootstrap = broker().bootstrap();
    kafka_topics::create_topic(&bootstrap, "fresh-twice-out", 1).unwrap();
    let sink = || {
        KafkaSink::<String>::exactly_once(
            KafkaConfig::new(bootstrap.as_str()),
            "fresh-twice-out",
            "fresh-twice",
            |line: &String, _key: &mut Vec<u8>, value: &mut Vec<u8>| {
                value.extend_from_slice(line.as_bytes())
            },
        )
    };
    let checkpoint = CheckpointId(1);
    let a = sink();
    let a_committer = a.committer().unwrap();
    a_committer.open(None).unwrap();
    let b = sink();
    let b_committer = b.committer().unwrap();
    b_committer.open(None).unwrap();

    let mut b_writer = b.create_writer(&only_task()).unwrap();
    b_writer.write_batch(vec!["from b".to_owned()]).unwrap();
    b_writer.pre_commit(checkpoint).unwrap();
    b_writer.snapshot(checkpoint).unwrap();
    b_committer.commit(checkpoint).unwrap();

    let mut a_writer = a.create_writer(&only_task()).unwrap();
    a_writer.write_batch(vec!["from a".to_owned()]).unwrap();
    a_writer.pre_commit(checkpoint).unwrap();
    let a_state = a_writer.snapshot(checkpoint).unwrap().unwrap();
    assert!(
        a_committer.commit(checkpoint).is_err(),
        "B's start fenced A's producer"
    );
    a_committer.close(true);

    let restored = RestoredState::from_payloads(
        checkpoint,
        KeyGroupRange::for_task(0, 1, DEFAULT_MAX_PARALLELISM),
        vec![a_state],
    );
    let resumed = sink().committer().unwrap();
    match resumed.open(Some(&restored)) {
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("a later run of the sink"), "{message}");
        }
        Ok(()) => {
            let output = committed_output("fresh-twice-out");
            assert!(
                output.contains(&"from a".to_owned()),
                "A resumed and its staged record is not in the topic: {output:?}"
            );
        }
    }
    resumed.close(false);
    b_committer.close(false);
}
