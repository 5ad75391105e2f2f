//! The ledger on Kafka: one job with TWO exactly-once Kafka sinks (balances and dead letters).
//! One sink crashes in the middle of its Kafka transaction (records and marker delivered to
//! the broker, not committed); the job restarts, and the other sink's restart must not wait
//! behind that open transaction (each sink has its own marker topic). The output topics then
//! equal the sequential ledger.

mod common;
#[path = "../examples/support/kafka_server.rs"]
mod kafka_server;
#[path = "../examples/support/kafka_topics.rs"]
mod kafka_topics;
#[path = "../examples/support/ledger_job.rs"]
mod ledger_job;
#[path = "../examples/support/ledger_model.rs"]
mod ledger_model;
#[path = "../examples/support/rng.rs"]
mod rng;

use common::bounded;
use kafka_server::KafkaServer;
use snapflow::engine::{ErrorChain, RestartStrategy};
use snapflow::kafka::{CommitFault, CommitPoint, FaultAction, KafkaConfig};
use snapflow::prelude::*;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_crash_inside_one_sinks_transaction_does_not_stall_the_other_sinks_restart() {
    // The committers open one after the other at a restart: whichever sink crashed, the one
    // opened before it must not wait behind its open transaction.
    let broker = KafkaServer::start().expect("starting the Kafka broker");
    for (crashing, name) in [(0, "balances"), (1, "dead-letters")] {
        crash_one_sink(&broker, crashing, name);
    }
}

/// The ledger with sink `crashing` (0 balances, 1 dead letters) crashing in the middle of its
/// first Kafka transaction with records; topics named after `name`.
fn crash_one_sink(broker: &KafkaServer, crashing: usize, name: &str) {
    let bootstrap = broker.bootstrap();
    let text = ledger_model::workload(4_000, 200, 5);
    let reference = ledger_model::reference(&text);
    assert!(
        !reference.dead_letters().is_empty(),
        "the workload must have dead letters for the dead-letter sink to commit"
    );
    let lines: Vec<&str> = text.lines().collect();
    let (input, output, dead_letters) = (
        format!("{name}-in"),
        format!("{name}-out"),
        format!("{name}-dead"),
    );
    for topic in [&input, &output, &dead_letters] {
        kafka_topics::create_topic(&bootstrap, topic, 2).unwrap();
    }
    kafka_topics::produce_lines(&bootstrap, &input, 2, &lines).unwrap();

    // The sink's first commit with records fails after its records and marker reached the
    // broker: its transaction stays open (as after a crash) until the restarted attempt's
    // `init_transactions` of that sink aborts it.
    let fault = Arc::new(CommitFault::new(
        CommitPoint::BeforeCommit,
        1,
        FaultAction::Fail,
    ));
    // A marker read that waited for that transaction would give up after this timeout
    // (much shorter than the transaction's own 60 s), fail the attempt and show as a restart
    // more than the one the fault causes.
    let config = KafkaConfig::new(bootstrap.as_str()).timeout(Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    let job_config = JobConfig::default()
        .with_parallelism(2)
        .with_checkpointing(dir.path(), Duration::from_millis(20))
        .with_restart_strategy(RestartStrategy::FixedDelay {
            attempts: 3,
            delay: Duration::ZERO,
        });
    let mut faults = [None, None];
    faults[crashing] = Some(Arc::clone(&fault));
    let topics = (input.clone(), output.clone(), dead_letters.clone());
    let report = bounded("the Kafka ledger", move || {
        let job = ledger_job::build_kafka(&config, &topics.0, &topics.1, &topics.2, faults);
        job.run(&job_config)
    })
    .unwrap_or_else(|e| panic!("the job failed: {}", ErrorChain(&e)));
    assert!(fault.fired(), "{name}: the commit crash never happened");
    assert_eq!(
        report.restarts, 1,
        "{name}: exactly the injected crash restarts the job; more means a restart waited and \
         failed"
    );

    let balances = kafka_topics::read_committed(&bootstrap, &output).unwrap();
    assert_eq!(
        ledger_model::latest_balances(&balances).unwrap(),
        reference.balances,
        "{name}: balances differ from the sequential ledger"
    );
    let mut versions: Vec<String> = balances
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            format!("{}\t{}", f[0], f[2])
        })
        .collect();
    let before = versions.len();
    versions.sort();
    versions.dedup();
    assert_eq!(
        versions.len(),
        before,
        "{name}: a balance update was committed twice"
    );
    let mut dead = kafka_topics::read_committed(&bootstrap, &dead_letters).unwrap();
    dead.sort();
    assert_eq!(
        dead,
        reference.dead_letters(),
        "{name}: dead letters differ"
    );
}
