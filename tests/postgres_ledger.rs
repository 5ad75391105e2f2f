//! The ledger into a real PostgreSQL (a private server per test), with a crash at the two
//! places where a two-phase sink can lose or repeat output, and with the database taken away
//! mid-run: the tables end equal to the sequential computation, and in two-phase mode no
//! prepared transaction is left behind.
//!
//! A "crash" here fails the committer of the balances table when the coordinator asks it to
//! commit: before the database commit (after the manifest is durable) or just after it. The
//! job restarts from its latest checkpoint, which is the one whose commit failed, and the
//! committer's `open` must re-drive that commit exactly once.

mod common;
#[path = "../examples/support/ledger_job.rs"]
mod ledger_job;
#[path = "../examples/support/ledger_model.rs"]
mod ledger_model;
#[path = "../examples/support/ledger_pg.rs"]
mod ledger_pg;
#[path = "../examples/support/pg_server.rs"]
mod pg_server;
#[path = "../examples/support/rng.rs"]
mod rng;

use common::bounded;
use crossbeam_channel::{Receiver, Sender};
use ledger_job::{Balance, Outputs};
use pg_server::PgServer;
use snapflow::engine::{
    BoxError, CheckpointEvent, CheckpointId, Committer, Data, RestartStrategy, RestoredState, Sink,
    SinkWriter, TaskInfo,
};
use snapflow::postgres::PgMode;
use snapflow::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where the committer fails.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Crash {
    /// Before the database commit: the checkpoint is complete, nothing of it is applied.
    BeforeCommit,
    /// After the database commit: the database has it, the engine does not know.
    AfterCommit,
    /// Never.
    None,
}

/// A sink like `inner` whose committer fails once, at its `at`-th commit, and reports every
/// `open` (each start and restart of the job).
struct Faulty<S> {
    inner: S,
    committer: Arc<dyn Committer>,
}

struct FaultyCommitter {
    inner: Arc<dyn Committer>,
    crash: Crash,
    at: u64,
    commits: AtomicU64,
    opens: Sender<()>,
    /// A commit that waits, before reaching the database, until the test sends on the
    /// receiver: the job cannot finish before then.
    hold: Option<(u64, Receiver<()>)>,
}

impl<S> Faulty<S> {
    fn new<T>(inner: S, crash: Crash, at: u64, opens: Sender<()>) -> Faulty<S>
    where
        S: Sink<T>,
    {
        let committer = Arc::new(FaultyCommitter {
            inner: inner.committer().expect("a two-phase sink"),
            crash,
            at,
            commits: AtomicU64::new(0),
            opens,
            hold: None,
        });
        Faulty { inner, committer }
    }

    /// A sink like `inner` whose `at`-th commit waits until `release` receives (or its sender
    /// is dropped), and that reports every `open`.
    fn held_at<T>(inner: S, at: u64, release: Receiver<()>, opens: Sender<()>) -> Faulty<S>
    where
        S: Sink<T>,
    {
        let committer = Arc::new(FaultyCommitter {
            inner: inner.committer().expect("a two-phase sink"),
            crash: Crash::None,
            at,
            commits: AtomicU64::new(0),
            opens,
            hold: Some((at, release)),
        });
        Faulty { inner, committer }
    }
}

impl<T: Data, S: Sink<T>> Sink<T> for Faulty<S> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn create_writer(&self, task: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>, BoxError> {
        self.inner.create_writer(task)
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(self.committer.clone())
    }
}

impl Committer for FaultyCommitter {
    fn directories(&self) -> Vec<PathBuf> {
        self.inner.directories()
    }

    fn open(&self, restored: Option<&RestoredState>) -> Result<(), BoxError> {
        let _ = self.opens.send(());
        self.inner.open(restored)
    }

    fn close(&self, interrupted: bool) {
        self.inner.close(interrupted);
    }

    fn commit(&self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        let n = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some((at, release)) = &self.hold {
            if n == *at {
                let _ = release.recv();
            }
        }
        if n != self.at || self.crash == Crash::None {
            return self.inner.commit(checkpoint);
        }
        if self.crash == Crash::AfterCommit {
            self.inner.commit(checkpoint)?;
        }
        Err(format!(
            "injected crash at the commit of checkpoint {checkpoint} ({:?})",
            self.crash
        )
        .into())
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    input: PathBuf,
    checkpoints: PathBuf,
    text: String,
}

fn setup(transfers: u64, seed: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let text = ledger_model::workload(transfers, 500, seed);
    let input = dir.path().join("transfers.csv");
    std::fs::write(&input, &text).unwrap();
    Setup {
        input,
        checkpoints: dir.path().join("checkpoints"),
        text,
        _dir: dir,
    }
}

fn config(s: &Setup, attempts: u32, delay: Duration) -> JobConfig {
    JobConfig::default()
        .with_parallelism(2)
        .with_batch_size(256)
        .with_max_rate(Some(200_000))
        .with_checkpointing(&s.checkpoints, Duration::from_millis(20))
        .with_restart_strategy(RestartStrategy::FixedDelay { attempts, delay })
}

/// Runs the ledger into `url` with the balances committer failing as `crash` says at its
/// `at`-th commit.
fn run(
    s: &Setup,
    url: &str,
    mode: PgMode,
    crash: Crash,
    at: u64,
    config: JobConfig,
) -> (Result<JobReport, JobError>, Receiver<()>) {
    let (opens_tx, opens) = crossbeam_channel::unbounded();
    let outputs = ledger_job::postgres_outputs(url, "ledger", mode);
    let outputs = Outputs {
        balances: Faulty::new::<Balance>(outputs.balances, crash, at, opens_tx),
        dead_letters: outputs.dead_letters,
    };
    let input = s.input.clone();
    let result = bounded("the ledger into PostgreSQL", move || {
        ledger_job::build_with(&input, outputs).run(&config)
    });
    (result, opens)
}

fn assert_exact(s: &Setup, url: &str) {
    let expected = ledger_model::reference(&s.text);
    let tables = ledger_pg::read(url, "ledger").expect("read the tables");
    assert!(
        tables.balances == expected.balances,
        "the balances differ from the sequential computation"
    );
    assert!(
        tables.dead_letters == expected.dead_letters(),
        "the dead letters differ from the sequential computation"
    );
    assert_eq!(
        ledger_pg::prepared_transactions(url).expect("list prepared transactions"),
        Vec::<String>::new(),
        "no prepared transaction is left behind"
    );
}

fn crash_test(mode: PgMode, crash: Crash, seed: u64) {
    let server = PgServer::start().expect("start PostgreSQL");
    let s = setup(20_000, seed);
    let (result, opens) = run(
        &s,
        &server.url(),
        mode,
        crash,
        2,
        config(&s, 2, Duration::ZERO),
    );
    let report = result.unwrap_or_else(|e| panic!("{mode:?} {crash:?}: {e}"));
    assert_eq!(report.restarts, 1, "{mode:?} {crash:?}: the crash happened");
    assert_eq!(
        opens.try_iter().count(),
        2,
        "opened at the start and the restart"
    );
    assert_exact(&s, &server.url());
}

#[test]
fn transactional_crash_between_manifest_and_database_commit() {
    crash_test(PgMode::Transactional, Crash::BeforeCommit, 1);
}

#[test]
fn transactional_crash_just_after_the_database_commit() {
    crash_test(PgMode::Transactional, Crash::AfterCommit, 2);
}

#[test]
fn two_phase_crash_between_prepare_and_commit_prepared() {
    crash_test(PgMode::TwoPhase, Crash::BeforeCommit, 3);
}

#[test]
fn two_phase_crash_after_commit_prepared() {
    crash_test(PgMode::TwoPhase, Crash::AfterCommit, 4);
}

#[test]
fn a_database_restart_mid_run_loses_and_repeats_nothing() {
    for mode in [PgMode::Transactional, PgMode::TwoPhase] {
        let mut server = PgServer::start().expect("start PostgreSQL");
        let url = server.url();
        let s = setup(60_000, 5);
        let (events_tx, events) = crossbeam_channel::unbounded();
        let (opens_tx, opens) = crossbeam_channel::unbounded();
        let (release, released) = crossbeam_channel::bounded(1);
        let outputs = ledger_job::postgres_outputs(&url, "ledger", mode);
        // The third commit waits until the server is down, so the job cannot finish its
        // input before the kill however fast it runs.
        let outputs = Outputs {
            balances: Faulty::held_at::<Balance>(outputs.balances, 3, released, opens_tx),
            dead_letters: outputs.dead_letters,
        };
        // Restarts keep coming while the server is down; they are not counted on.
        let config =
            config(&s, 1000, Duration::from_millis(20)).with_checkpoint_listener(events_tx);
        let input = s.input.clone();
        let job = std::thread::spawn(move || ledger_job::build_with(&input, outputs).run(&config));
        opens
            .recv_timeout(common::TIMEOUT)
            .expect("the job opens its sink");
        // Two checkpoints committed into the database, then the server goes away.
        for _ in 0..2 {
            loop {
                if let CheckpointEvent::Completed(_) = common::next_event(&events) {
                    break;
                }
            }
        }
        server.kill().expect("kill the server");
        release.send(()).expect("the third commit waits");
        // The job fails and restarts; its sink's open finds no server.
        opens
            .recv_timeout(common::TIMEOUT)
            .expect("the job restarts while the server is down");
        server.start_again().expect("start the server again");
        let report = bounded("the job after the server is back", move || job.join())
            .expect("the job thread")
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert!(report.restarts >= 1, "{mode:?}: the job restarted");
        assert_exact(&s, &url);
    }
}

#[test]
fn the_database_down_at_start_is_a_clear_error_without_the_password() {
    let mut server = PgServer::start().expect("start PostgreSQL");
    let url = server.url().replace("postgres@", "postgres:secret@");
    server.stop().expect("stop the server");
    let s = setup(100, 6);
    let job = ledger_job::build_postgres(&s.input, &url, "ledger", PgMode::Transactional);
    let error = job
        .run(&config(&s, 0, Duration::ZERO))
        .expect_err("no server");
    let text = snapflow::engine::ErrorChain(&error).to_string();
    assert!(text.contains("cannot reach PostgreSQL"), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", server.port())),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
}

#[test]
fn a_fresh_start_into_a_table_of_an_earlier_run_is_refused() {
    let server = PgServer::start().expect("start PostgreSQL");
    let s = setup(2_000, 7);
    let job = ledger_job::build_postgres(&s.input, &server.url(), "ledger", PgMode::Transactional);
    job.run(&config(&s, 0, Duration::ZERO))
        .expect("the first run");
    let other = tempfile::tempdir().unwrap();
    let config = JobConfig::default().with_checkpointing(other.path(), Duration::from_millis(20));
    let job = ledger_job::build_postgres(&s.input, &server.url(), "ledger", PgMode::Transactional);
    let error = job
        .run(&config)
        .expect_err("a second run with other checkpoints");
    let text = snapflow::engine::ErrorChain(&error).to_string();
    assert!(
        text.contains("already holds output of an earlier run"),
        "{text}"
    );
    assert_exact(&s, &server.url());
}

#[test]
fn a_row_the_database_rejects_fails_the_job_and_shows_nothing_of_its_checkpoint() {
    let server = PgServer::start().expect("start PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..1000)
        .map(|i| {
            if i == 700 {
                "x".repeat(40)
            } else {
                format!("line {i}")
            }
        })
        .collect();
    let table = snapflow::postgres::PgTable::insert(
        "short_lines",
        &[("line", "TEXT NOT NULL CHECK (length(line) < 20)")],
    );
    let job = Job::new("constraint");
    job.source(CollectionSource::new(lines))
        .sink(snapflow::postgres::PostgresSink::new(
            &server.url(),
            table,
            |line: &String, row| {
                row.text(line);
            },
        ))
        .name("write-lines");
    let config = JobConfig::default()
        .with_parallelism(1)
        .with_checkpointing(dir.path(), Duration::from_secs(3600));
    let error = job.run(&config).expect_err("the database rejects a row");
    let text = snapflow::engine::ErrorChain(&error).to_string();
    assert!(
        matches!(error, JobError::TaskFailed { ref operator, .. } if operator == "write-lines"),
        "{text}"
    );
    assert!(text.contains("checkpoint 1"), "{text}");
    assert!(text.contains("short_lines_line_check"), "{text}");
    let mut client = postgres::Client::connect(&server.url(), postgres::NoTls).unwrap();
    let visible: i64 = client
        .query_one("SELECT count(*) FROM short_lines", &[])
        .unwrap()
        .get(0);
    assert_eq!(visible, 0, "nothing of the failed checkpoint is visible");
}

/// Two-phase mode with a checkpoint aborted while one sink task had already prepared its
/// transaction: that task's next barrier must not wait for ever on the aborted transaction's
/// locks, and the rows end exactly once.
#[test]
fn two_phase_survives_an_aborted_checkpoint() {
    const RECORDS: u64 = 200_000;
    const KEYS: u64 = 100;
    // In source task 0's share; its key belongs to one of the two counting tasks.
    const STUCK_AT: u64 = 50_000;
    let server = PgServer::start().expect("start PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let (events_tx, events) = crossbeam_channel::unbounded();
    let (stuck_tx, stuck) = crossbeam_channel::bounded::<()>(1);
    let (release_tx, release) = crossbeam_channel::bounded::<()>(1);
    let table = snapflow::postgres::PgTable::upsert(
        "counts",
        &[("key", "BIGINT NOT NULL"), ("n", "BIGINT NOT NULL")],
        &["key"],
        "n",
    );
    // Each source task waits before its last record until the gate opens: the input cannot
    // end (which would start the final checkpoint, which has no timeout) while a task is stuck.
    let (source, mut gate) = common::gated(GeneratorSource::new(RECORDS, |i| i), |task| {
        common::share(RECORDS, task.index, task.parallelism).end - 1
    });
    let job = Job::new("two-phase-abort");
    job.source(source)
        .uid("numbers")
        .key_by(|i: &u64| i % KEYS)
        .process(
            move |key: &u64, i: u64, count: &mut ValueState<u64>, out: &mut Output<(u64, u64)>| {
                if i == STUCK_AT {
                    let _ = stuck_tx.send(());
                    release
                        .recv_timeout(common::TIMEOUT)
                        .map_err(|e| format!("never released: {e}"))?;
                }
                let n = count.get().copied().unwrap_or(0) + 1;
                count.set(n);
                out.push((*key, n));
                Ok(())
            },
        )
        .uid("count")
        .sink(
            snapflow::postgres::PostgresSink::new(
                &server.url(),
                table,
                |(key, n): &(u64, u64), row| {
                    row.number(key).number(n);
                },
            )
            .with_mode(PgMode::TwoPhase),
        );
    let config = JobConfig::default()
        .with_parallelism(2)
        .with_checkpointing(dir.path(), Duration::from_millis(20))
        .with_checkpoint_timeout(Duration::from_millis(100))
        .with_checkpoint_listener(events_tx);
    let handle = job.launch(&config).expect("launch");
    stuck
        .recv_timeout(common::TIMEOUT)
        .expect("the operator gets stuck");
    // A checkpoint is aborted while one counting task is stuck (the other's sink task has
    // prepared its part of it, if it had rows).
    loop {
        if let CheckpointEvent::Aborted { .. } = common::next_event(&events) {
            break;
        }
    }
    release_tx.send(()).unwrap();
    gate.open();
    let report =
        bounded("the job after the abort", move || handle.join()).expect("the job finishes");
    assert!(report.aborted_checkpoints >= 1);
    let mut client = postgres::Client::connect(&server.url(), postgres::NoTls).unwrap();
    let rows = client.query("SELECT key, n FROM counts", &[]).unwrap();
    assert_eq!(rows.len() as u64, KEYS);
    for row in rows {
        let (key, n): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(n as u64, RECORDS / KEYS, "key {key}");
    }
    assert_eq!(
        ledger_pg::prepared_transactions(&server.url()).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn a_transactional_rerun_of_a_two_phase_run_is_refused_until_it_resumes_in_two_phase() {
    let server = PgServer::start().expect("start PostgreSQL");
    let s = setup(20_000, 8);
    // A two-phase run that dies between prepare and commit-prepared, without a restart.
    let (result, _) = run(
        &s,
        &server.url(),
        PgMode::TwoPhase,
        Crash::BeforeCommit,
        2,
        config(&s, 0, Duration::ZERO),
    );
    assert!(
        matches!(result, Err(JobError::CommitFailed { .. })),
        "{result:?}"
    );
    assert!(!ledger_pg::prepared_transactions(&server.url())
        .unwrap()
        .is_empty());
    let (result, _) = run(
        &s,
        &server.url(),
        PgMode::Transactional,
        Crash::None,
        0,
        config(&s, 0, Duration::ZERO),
    );
    let text = match result {
        Err(e) => snapflow::engine::ErrorChain(&e).to_string(),
        Ok(_) => panic!("a transactional rerun must be refused"),
    };
    assert!(text.contains("prepared by a two-phase run"), "{text}");
    let (result, _) = run(
        &s,
        &server.url(),
        PgMode::TwoPhase,
        Crash::None,
        0,
        config(&s, 0, Duration::ZERO),
    );
    result.expect("the two-phase rerun");
    assert_exact(&s, &server.url());
}
