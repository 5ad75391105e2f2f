//! The broker goes away in the middle of a Kafka -> word count -> Kafka job and comes back:
//! the commit of the checkpoint in flight fails, the job restarts under its restart strategy
//! (its committer cannot reach the broker either, an `Unavailable` error that is retried), and
//! once the broker is back the job finishes with every count exactly once, equal to the
//! sequential count. The broker is killed (SIGKILL, as in a crash) right after a checkpoint
//! completes, and started again on the same data directory once the job has restarted.

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

use common::TIMEOUT;
use kafka_server::KafkaServer;
use kafka_wordcount::KafkaJob;
use snapflow::engine::{CheckpointEvent, ErrorChain, RestartStrategy};
use snapflow::prelude::*;
use std::time::Duration;

#[test]
fn a_broker_restart_mid_run_loses_and_repeats_nothing() {
    let mut broker = KafkaServer::start().expect("starting the Kafka broker");
    let bootstrap = broker.bootstrap();
    let corpus = corpus::Corpus::new(300, 8, 11);
    let lines: Vec<String> = (0..3_000).map(|i| corpus.line(i)).collect();
    kafka_topics::create_topic(&bootstrap, "restart-in", 2).unwrap();
    kafka_topics::create_topic(&bootstrap, "restart-out", 2).unwrap();
    kafka_topics::produce_lines(&bootstrap, "restart-in", 2, &lines).unwrap();

    let (opens_tx, opens) = crossbeam_channel::unbounded();
    let (events_tx, events) = crossbeam_channel::unbounded();
    let mut job = KafkaJob::new(&bootstrap, "restart-in", "restart-out");
    // Short, so that the attempts while the broker is away fail fast.
    job.config = job.config.clone().timeout(Duration::from_secs(5));
    job.opens = Some(opens_tx);
    // At most 100 lines per source task between two barriers: the job spans at least 15
    // checkpoints, so it is still running when the broker dies after the 3rd.
    job.step = Some(100);
    let checkpoints = tempfile::tempdir().unwrap();
    let config = JobConfig::default()
        .with_parallelism(2)
        .with_checkpointing(checkpoints.path(), Duration::from_millis(100))
        .with_checkpoint_listener(events_tx)
        .with_restart_strategy(RestartStrategy::FixedDelay {
            attempts: 30,
            delay: Duration::from_millis(200),
        });
    // The job's result comes through a channel, so that every wait on it is bounded.
    let (done_tx, done) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = done_tx.send(job.build().run(&config));
    });
    let result = || {
        done.recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("the job did not end within {TIMEOUT:?}: {e}"))
    };

    opens
        .recv_timeout(TIMEOUT)
        .expect("the job never opened its sink");
    let mut completed = 0;
    while completed < 3 {
        let Ok(event) = events.recv_timeout(TIMEOUT) else {
            match result() {
                Ok(report) => panic!("the job ended before 3 checkpoints: {report:?}"),
                Err(e) => panic!("the job failed before 3 checkpoints: {}", ErrorChain(&e)),
            }
        };
        match event {
            CheckpointEvent::Completed(_) => completed += 1,
            CheckpointEvent::Aborted { .. } => {}
        }
    }
    kafka_server::note(&broker, "killed by the test after 3 checkpoints");
    broker.kill().unwrap();
    // The job notices (a failed commit) and restarts: its committer opens again.
    opens
        .recv_timeout(TIMEOUT)
        .expect("the job did not restart while the broker was away");
    broker.start_again().unwrap();
    kafka_server::note(&broker, "started again by the test");

    let report = result().unwrap_or_else(|e| panic!("the job failed: {}", ErrorChain(&e)));
    assert!(report.restarts >= 1, "the job never restarted");
    let mut got = kafka_topics::read_committed(&bootstrap, "restart-out").unwrap();
    got.sort();
    assert_eq!(got, wordcount_job::expected_output(&lines.join("\n")));
}
