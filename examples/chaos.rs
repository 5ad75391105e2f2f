//! Kill-and-recover driver: runs word count, the ledger, clicks or a Nexmark query, kills it at
//! random moments, reruns
//! it until it finishes, checks the committed output's invariants all along, and verifies the
//! end result against a sequential computation.
//!
//! ```text
//! cargo run --release --example chaos -- --job wordcount --kills 20 [--seed S] [--size N]
//! cargo run --release --example chaos -- --job ledger --kills 20 --mode threads
//! cargo run --release --example chaos -- --job clicks --kills 20 [--window session:3000]
//! cargo run --release --example chaos -- --job nexmark --query q7 --kills 20
//! cargo run --release --example chaos -- --job ledger --sink postgres --kills 20 \
//!     [--postgres URL] [--postgres-mode transactional|two-phase]
//! cargo run --release --example chaos -- --job wordcount --sink kafka --kills 20 [--kafka B]
//! ```
//!
//! `--mode process` (default) SIGKILLs the example's process and reruns the same command;
//! `--mode threads` kills worker threads inside one process through the failure injector and
//! lets the restart strategy recover. Exit status 1 on any violation.
//!
//! `--sink postgres` has the ledger write its tables into PostgreSQL: a private server started
//! for the run, or with `--postgres URL` a fresh schema `chaos_<pid>_<seed>` there, dropped
//! after a clean run and kept for inspection after a violation.
//!
//! `--sink kafka` has word count read its lines from a Kafka topic and write its counts
//! exactly once into another: a private Apache Kafka broker started for the run, or with
//! `--kafka BOOTSTRAP` fresh topics `chaos-<pid>-<seed>-in/out` there. Besides SIGKILLs at
//! random moments, about a third of the kills crash the job inside the sink's Kafka commit
//! (before the transaction, in its middle, or right after it: `wordcount --kafka-crash-at`).
//! A `read_committed` consumer checks the output all along and at the end.

#[path = "support/bounds.rs"]
mod bounds;
#[path = "support/chaos_pg.rs"]
mod chaos_pg;
#[path = "support/clicks_job.rs"]
mod clicks_job;
#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/kafka_server.rs"]
mod kafka_server;
#[path = "support/kafka_topics.rs"]
mod kafka_topics;
#[path = "support/kafka_wordcount.rs"]
mod kafka_wordcount;
#[path = "support/ledger_job.rs"]
mod ledger_job;
#[path = "support/ledger_model.rs"]
mod ledger_model;
#[path = "support/ledger_pg.rs"]
mod ledger_pg;
#[path = "support/logging.rs"]
mod logging;
#[path = "support/output.rs"]
mod output;
#[path = "support/pg_server.rs"]
mod pg_server;
#[path = "support/rng.rs"]
mod rng;
#[path = "support/wordcount_job.rs"]
mod wordcount_job;

use anyhow::{bail, Context, Result};
use chaos_pg::{PgCommit, PgInvariants, PgTarget};
use clap::{Parser, ValueEnum};
use rng::SplitMix64;
use snapflow::engine::{FailureInjector, RestartStrategy, INCREMENTAL_CHECKPOINTS_ENV};
use snapflow::kafka::{CommitFault, CommitPoint, FaultAction};
use snapflow::prelude::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum JobKind {
    Wordcount,
    Ledger,
    /// Event-time windows: no window emitted twice while running; at the end, windows and
    /// late events equal the sequential computation.
    Clicks,
    /// A Nexmark query (--query) over an event file: the committed rows are always part of
    /// the sequential result (as multisets); at the end they are all of it.
    Nexmark,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// SIGKILL the whole process and rerun it.
    Process,
    /// Kill worker threads in one process; the restart strategy recovers.
    Threads,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum SinkKind {
    /// Exactly-once files in the scratch directory.
    File,
    /// The ledger's PostgreSQL tables (--job ledger only).
    Postgres,
    /// Word count from a Kafka topic into another, exactly once (--job wordcount only).
    Kafka,
}

/// Kill a streaming job at random moments and check that its output stays exact.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Which example job to torture.
    #[arg(long, value_enum, default_value = "wordcount")]
    job: JobKind,
    /// How many kills.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1000))]
    kills: u32,
    /// Seed of the input and of the kill moments.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The query of --job nexmark.
    #[arg(long, default_value = "q7")]
    query: snapflow_nexmark::Query,
    /// The window of --job clicks: tumbling:W, sliding:W:S or session:G (ms).
    #[arg(long, default_value = "tumbling:60000")]
    window: clicks_job::WindowKind,
    /// Input size: lines (word count, clicks), transfers (ledger) or events (nexmark), built
    /// in memory.
    #[arg(long, default_value_t = 200_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    size: u64,
    /// Tasks per operator.
    #[arg(long, default_value_t = 2,
          value_parser = bounds::usize_in(bounds::MAX_PARALLELISM))]
    parallelism: usize,
    /// Process or thread kills.
    #[arg(long, value_enum, default_value = "process")]
    mode: Mode,
    /// Where the job writes.
    #[arg(long, value_enum, default_value = "file")]
    sink: SinkKind,
    /// PostgreSQL URL for --sink postgres (default: a private server for the run); the run
    /// writes into a fresh schema there.
    #[arg(long)]
    postgres: Option<String>,
    /// Kafka bootstrap servers for --sink kafka (default: a private broker for the run); the
    /// run uses fresh topics there.
    #[arg(long)]
    kafka: Option<String>,
    /// How the PostgreSQL sink commits (default transactional).
    #[arg(long, value_enum)]
    postgres_mode: Option<PgCommit>,
    /// Time between checkpoints, in milliseconds.
    #[arg(long, default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=bounds::MAX_CHECKPOINT_INTERVAL_MS))]
    checkpoint_interval_ms: u64,
    /// Source rate limit in lines per second (default: the input over 0.3 s per kill, at least
    /// 3 s), so that there is time for every kill.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=bounds::MAX_RATE))]
    max_rate: Option<u64>,
    /// Serve the job's live view on this address, e.g. 127.0.0.1:8081: passed to every run of
    /// the job (process mode), or set on the job (thread mode; each restart binds it again).
    #[arg(long, value_name = "ADDR")]
    web: Option<String>,
    /// Write every checkpoint in full (`--no-incremental-checkpoints` to the job, or
    /// `JobConfig::with_incremental_checkpoints(false)` in thread mode). Without it, the
    /// environment variable SNAPFLOW_INCREMENTAL_CHECKPOINTS (on by default) decides, in the
    /// driver and in every job it starts.
    #[arg(long)]
    no_incremental_checkpoints: bool,
    /// Process mode: plant the first kills inside the checkpoint machinery (the job's
    /// `--crash-at`): the first in the middle of a snapshot file's write, the second in
    /// retention's delete of an old checkpoint; the rest are SIGKILLs at random moments.
    #[arg(long)]
    crash_points: bool,
}

struct Paths {
    input: PathBuf,
    out: PathBuf,
    dead: PathBuf,
    checkpoints: PathBuf,
}

/// Where the job's output goes.
enum Sink {
    /// `Paths::out` (and `Paths::dead`).
    File,
    Postgres(PgTarget, PgCommit),
    Kafka(KafkaTarget),
}

/// The broker and topics of `--sink kafka`.
struct KafkaTarget {
    bootstrap: String,
    input_topic: String,
    output_topic: String,
    /// The private broker, when no --kafka was given.
    _server: Option<kafka_server::KafkaServer>,
}

impl KafkaTarget {
    fn open(bootstrap: Option<&str>, name: &str, partitions: i32) -> Result<KafkaTarget> {
        let server = match bootstrap {
            Some(_) => None,
            None => Some(kafka_server::KafkaServer::start()?),
        };
        let bootstrap = match (&server, bootstrap) {
            (Some(server), _) => server.bootstrap(),
            (None, Some(bootstrap)) => bootstrap.to_owned(),
            (None, None) => unreachable!("a server is started without --kafka"),
        };
        let target = KafkaTarget {
            input_topic: format!("{name}-in"),
            output_topic: format!("{name}-out"),
            bootstrap,
            _server: server,
        };
        kafka_topics::create_topic(&target.bootstrap, &target.input_topic, partitions)?;
        kafka_topics::create_topic(&target.bootstrap, &target.output_topic, partitions)?;
        Ok(target)
    }

    /// The output as a read_committed consumer sees it now.
    fn committed(&self) -> Result<Vec<String>, String> {
        kafka_topics::read_committed(&self.bootstrap, &self.output_topic)
            .map_err(|e| format!("{e:#}"))
    }
}

fn main() {
    match run(Args::parse()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("chaos: error: {error:#}");
            std::process::exit(1);
        }
    }
}

fn run(args: Args) -> Result<bool> {
    logging::init()?;
    let sink = match (args.sink, args.job) {
        (SinkKind::File, _) => {
            if args.postgres.is_some() || args.postgres_mode.is_some() {
                bail!("--postgres and --postgres-mode go with --sink postgres");
            }
            if args.kafka.is_some() {
                bail!("--kafka goes with --sink kafka");
            }
            Sink::File
        }
        (SinkKind::Kafka, JobKind::Ledger | JobKind::Clicks | JobKind::Nexmark) => {
            bail!("--sink kafka is for --job wordcount")
        }
        (SinkKind::Kafka, JobKind::Wordcount) => {
            let name = format!("chaos-{}-{}", std::process::id(), args.seed);
            Sink::Kafka(KafkaTarget::open(
                args.kafka.as_deref(),
                &name,
                args.parallelism as i32,
            )?)
        }
        (SinkKind::Postgres, JobKind::Wordcount | JobKind::Clicks | JobKind::Nexmark) => {
            bail!("--sink postgres is for --job ledger: the other jobs write files only")
        }
        (SinkKind::Postgres, JobKind::Ledger) => {
            let schema = format!("chaos_{}_{}", std::process::id(), args.seed);
            let target = PgTarget::open(args.postgres.as_deref(), schema)?;
            Sink::Postgres(
                target,
                args.postgres_mode.unwrap_or(PgCommit::Transactional),
            )
        }
    };
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let paths = Paths {
        input: scratch.path().join("input.txt"),
        out: scratch.path().join("out"),
        dead: scratch.path().join("dead"),
        checkpoints: scratch.path().join("checkpoints"),
    };
    let text = match args.job {
        JobKind::Wordcount => {
            let corpus = corpus::Corpus::new(20_000, 10, args.seed);
            (0..args.size)
                .map(|i| corpus.line(i) + "\n")
                .collect::<String>()
        }
        JobKind::Ledger => ledger_model::workload(args.size, 1_000, args.seed),
        JobKind::Clicks => clicks_job::generate(args.size, args.seed),
        JobKind::Nexmark => nexmark_events(args.size),
    };
    std::fs::write(&paths.input, &text).context("cannot write the input")?;
    if let Sink::Kafka(target) = &sink {
        let lines: Vec<&str> = text.lines().collect();
        let partitions = args.parallelism as i32;
        kafka_topics::produce_lines(&target.bootstrap, &target.input_topic, partitions, &lines)?;
    }
    let reference = (args.job == JobKind::Ledger).then(|| ledger_model::reference(&text));
    let nexmark_rows = (args.job == JobKind::Nexmark).then(|| nexmark_expected(&args, &text));
    let lines = text.lines().count() as u64;
    // Enough input time for every kill to land mid-run: each attempt runs 1 to 3 checkpoints.
    let seconds = (f64::from(args.kills) * 0.3).max(3.0);
    let rate = args
        .max_rate
        .unwrap_or(((lines as f64 / seconds) as u64).max(1_000));

    // The invariant checker reads the committed output while the job runs.
    let stop = AtomicBool::new(false);
    let checks = AtomicU64::new(0);
    let violations = AtomicU64::new(0);
    let started = Instant::now();
    let mut rng = SplitMix64(args.seed ^ 0xc4a05);
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut pg = match (&sink, &reference) {
                (Sink::Postgres(target, commit), Some(reference)) => {
                    Some((target, PgInvariants::new(reference, *commit)))
                }
                _ => None,
            };
            while !stop.load(Ordering::Relaxed) {
                let checked = match (&mut pg, &sink) {
                    (Some((target, invariants)), _) => invariants
                        .check(target)
                        .map_err(|e| format!("{e} (snapflow_commits now: {})", target.commits())),
                    (None, Sink::Kafka(target)) => target
                        .committed()
                        .and_then(|lines| check_lines(args.job, &lines)),
                    (None, _) => match &nexmark_rows {
                        Some(expected) => check_nexmark_rows(&paths.out, expected, false),
                        None => check_invariants(args.job, &paths.out),
                    },
                };
                if let Err(violation) = checked {
                    eprintln!("chaos: VIOLATION while running: {violation}");
                    violations.fetch_add(1, Ordering::Relaxed);
                }
                checks.fetch_add(1, Ordering::Relaxed);
                // Leave the cores to the job most of the time (a database or topic read
                // costs more).
                let pause = match (&pg, &sink) {
                    (Some(_), _) => 20,
                    (None, Sink::Kafka(_)) => 200,
                    (None, _) => 5,
                };
                std::thread::sleep(Duration::from_millis(pause));
            }
        });
        let outcome = match args.mode {
            Mode::Process => run_processes(&args, &paths, &sink, rate, &mut rng),
            Mode::Threads => run_threads(&args, &paths, &sink, rate, &mut rng),
        };
        stop.store(true, Ordering::Relaxed);
        outcome
    })?;

    let final_check = match (&sink, &reference) {
        (Sink::Postgres(target, _), Some(reference)) => {
            chaos_pg::verify(target, reference).map_err(|e| format!("{e:#}"))
        }
        (Sink::Kafka(target), _) => target
            .committed()
            .and_then(|lines| verify_wordcount(lines, &text)),
        _ => match &nexmark_rows {
            Some(expected) => check_nexmark_rows(&paths.out, expected, true),
            None => verify(&args, &paths, &text),
        },
    };
    if let Err(e) = &final_check {
        eprintln!("chaos: VIOLATION at the end: {e}");
    }
    let violations = violations.load(Ordering::Relaxed) + u64::from(final_check.is_err());
    let recoveries: Vec<String> = outcome
        .recovery
        .iter()
        .map(|d| format!("{:.0} ms", d.as_secs_f64() * 1e3))
        .collect();
    println!(
        "chaos  job {:?}, mode {:?}, seed {}, parallelism {}",
        args.job, args.mode, args.seed, args.parallelism
    );
    if let Sink::Postgres(target, commit) = &sink {
        let server = if target.is_private() {
            "a private server"
        } else {
            "--postgres"
        };
        println!(
            "  sink postgres ({}, schema {} on {server})",
            commit.arg(),
            target.schema
        );
    }
    println!(
        "  input {lines} lines; ran {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "  attempts {}, kills {}, failures without a kill {}",
        outcome.attempts, outcome.kills, outcome.failures
    );
    if matches!(sink, Sink::Kafka(_)) {
        println!(
            "  of the kills, crashes inside the Kafka commit: {}",
            outcome.commit_crashes
        );
    }
    if args.crash_points {
        println!(
            "  of the kills, crashes in a snapshot write {}, in retention's delete {}",
            outcome.planted[0], outcome.planted[1]
        );
    }
    println!(
        "  incremental checkpoints {}",
        if args.no_incremental_checkpoints {
            "off (--no-incremental-checkpoints)".to_owned()
        } else {
            match std::env::var(INCREMENTAL_CHECKPOINTS_ENV) {
                Ok(value) => format!("as {INCREMENTAL_CHECKPOINTS_ENV}={value}"),
                Err(_) => "on (the default)".to_owned(),
            }
        }
    );
    println!(
        "  time to first checkpoint after each restart: [{}]",
        recoveries.join(", ")
    );
    println!("  checkpoints completed {}", outcome.checkpoints);
    println!("  invariant checks made {}", checks.load(Ordering::Relaxed));
    println!("  violations {violations}");
    if let Sink::Kafka(target) = &sink {
        println!(
            "  sink kafka ({}, topics {} -> {}, exactly once)",
            target.bootstrap, target.input_topic, target.output_topic
        );
    }
    if let Sink::Postgres(target, _) = &sink {
        if violations == 0 {
            target
                .drop_schema()
                .context("cannot drop the run's schema")?;
        } else if !target.is_private() {
            println!("  tables kept for inspection in schema {}", target.schema);
        }
    }
    Ok(violations == 0)
}

struct Outcome {
    attempts: u32,
    kills: u32,
    checkpoints: u64,
    /// From each restart to its first completed checkpoint.
    recovery: Vec<Duration>,
    /// Attempts that failed without being killed (and were rerun).
    failures: u32,
    /// Of the kills, crashes planted inside the Kafka sink's commit.
    commit_crashes: u32,
    /// Of the kills, crashes planted in a snapshot write and in retention's delete.
    planted: [u32; 2],
}

/// How many times in a row a rerun after a kill may fail on its own before the driver gives up.
const MAX_FAILURES_IN_A_ROW: u32 = 3;

/// The pause before rerunning an attempt that failed on its own.
const RERUN_PAUSE: Duration = Duration::from_millis(200);

/// Runs the example as a child process, SIGKILLs it at random moments, and reruns the same
/// command until it finishes.
fn run_processes(
    args: &Args,
    paths: &Paths,
    sink: &Sink,
    rate: u64,
    rng: &mut SplitMix64,
) -> Result<Outcome> {
    let name = match args.job {
        JobKind::Wordcount => "wordcount",
        JobKind::Ledger => "ledger",
        JobKind::Clicks => "clicks",
        JobKind::Nexmark => "nexmark",
    };
    let exe = std::env::current_exe()?;
    let binary = exe.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        bail!(
            "{} is missing: build the examples first (cargo build --release --examples)",
            binary.display()
        );
    }
    let mut command = Command::new(&binary);
    if !matches!(sink, Sink::Kafka(_)) {
        command.arg("--input").arg(&paths.input);
    }
    command
        .arg("--checkpoint-dir")
        .arg(&paths.checkpoints)
        .args(["--parallelism", &args.parallelism.to_string()])
        .args([
            "--checkpoint-interval-ms",
            &args.checkpoint_interval_ms.to_string(),
        ])
        .args(["--max-rate", &rate.to_string()])
        .arg("--log-checkpoints");
    if let Some(addr) = &args.web {
        command.args(["--web", addr]);
    }
    if args.no_incremental_checkpoints {
        command.arg("--no-incremental-checkpoints");
    }
    match sink {
        Sink::File => {
            command.arg("--output").arg(&paths.out);
            if args.job == JobKind::Ledger {
                command.arg("--dead-letter").arg(&paths.dead);
            }
            if args.job == JobKind::Clicks {
                command.arg("--late").arg(&paths.dead);
                command.args(["--window", &args.window.to_string()]);
            }
            if args.job == JobKind::Nexmark {
                command.args(["--query", &args.query.to_string()]);
            }
        }
        Sink::Postgres(target, commit) => {
            command
                .args(["--sink", "postgres", "--postgres", &target.url])
                .args(["--schema", &target.schema])
                .args(["--postgres-mode", commit.arg()]);
        }
        Sink::Kafka(target) => {
            command
                .args(["--kafka", &target.bootstrap])
                .args(["--input-topic", &target.input_topic])
                .args(["--output-topic", &target.output_topic]);
        }
    }
    let mut outcome = Outcome {
        attempts: 0,
        kills: 0,
        checkpoints: 0,
        recovery: Vec::new(),
        failures: 0,
        commit_crashes: 0,
        planted: [0, 0],
    };
    let mut failures_in_a_row = 0;
    loop {
        outcome.attempts += 1;
        let killing = outcome.kills < args.kills;
        // Kafka: about a third of the kills are crashes inside the sink's Kafka commit.
        let mut attempt = Command::new(command.get_program());
        attempt.args(command.get_args());
        let commit_crash =
            killing && matches!(sink, Sink::Kafka(_)) && rng.next().is_multiple_of(3);
        if commit_crash {
            let point =
                ["before-transaction", "before-commit", "after-commit"][(rng.next() % 3) as usize];
            let nth = 1 + rng.next() % 3;
            attempt.args(["--kafka-crash-at", &format!("{point}:{nth}")]);
        }
        // The first kills land inside a snapshot write, then inside retention's delete.
        let planted = (killing && !commit_crash && args.crash_points)
            .then_some(outcome.kills as usize)
            .filter(|&kill| kill < 2);
        if let Some(kill) = planted {
            let point = ["snapshot-write", "retention-delete"][kill];
            let nth = 1 + rng.next() % 4;
            attempt.args(["--crash-at", &format!("{point}:{nth}")]);
        }
        let spawned = Instant::now();
        let mut child = attempt
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().expect("piped");
        // Every completed checkpoint of this attempt, with the time since the spawn.
        let (completed_tx, completed_rx) = crossbeam_channel::unbounded();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("checkpoint ") && line.ends_with(" complete") {
                    let _ = completed_tx.send(spawned.elapsed());
                }
            }
        });
        let mut seen = Vec::new();
        let mut killed = false;
        if killing && !commit_crash && planted.is_none() {
            // Kill after 1 to 3 checkpoints of this attempt (so every attempt makes progress)
            // plus a random part of an interval: a random moment of the checkpoint cycle.
            let wait_for = 1 + rng.next() % 3;
            while (seen.len() as u64) < wait_for {
                match completed_rx.recv() {
                    Ok(at) => seen.push(at),
                    Err(_) => break, // the child ended
                }
            }
            let jitter = rng.next() % args.checkpoint_interval_ms.max(1);
            std::thread::sleep(Duration::from_millis(jitter));
            if child.try_wait()?.is_none() {
                child.kill()?; // SIGKILL
                outcome.kills += 1;
                killed = true;
            }
        }
        let status = child.wait()?;
        if commit_crash && !status.success() {
            use std::os::unix::process::ExitStatusExt;
            // SIGABRT: the planted crash in the Kafka commit.
            if status.signal() == Some(6) {
                outcome.kills += 1;
                outcome.commit_crashes += 1;
                killed = true;
            }
        }
        if let (Some(kill), false) = (planted, status.success()) {
            use std::os::unix::process::ExitStatusExt;
            // SIGABRT: the planted crash in the checkpoint machinery.
            if status.signal() == Some(6) {
                outcome.kills += 1;
                outcome.planted[kill] += 1;
                killed = true;
            }
        }
        let _ = reader.join();
        seen.extend(completed_rx.try_iter());
        outcome.checkpoints += seen.len() as u64;
        if outcome.attempts > 1 {
            if let Some(first) = seen.first() {
                outcome.recovery.push(*first);
            }
        }
        if status.success() {
            return Ok(outcome);
        }
        if killed {
            failures_in_a_row = 0;
            continue;
        }
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        // A rerun right after a kill may fail on its own: the killed process's PostgreSQL
        // session can hold the sink's advisory lock until the server notices that it is gone.
        // Rerun it a few times, after a pause, and say why.
        outcome.failures += 1;
        failures_in_a_row += 1;
        if outcome.kills == 0 || failures_in_a_row > MAX_FAILURES_IN_A_ROW {
            bail!(
                "{name} failed without being killed ({status}): {}",
                stderr.trim()
            );
        }
        eprintln!(
            "chaos: attempt {} failed without being killed ({status}): {}",
            outcome.attempts,
            stderr.trim()
        );
        std::thread::sleep(RERUN_PAUSE);
    }
}

/// Runs the job in this process with `kills` injected task failures and a restart strategy.
fn run_threads(
    args: &Args,
    paths: &Paths,
    sink: &Sink,
    rate: u64,
    rng: &mut SplitMix64,
) -> Result<Outcome> {
    // Injected kills are panics: one line each is enough.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        eprintln!("chaos: thread {} {info}", thread.name().unwrap_or("?"));
    }));
    let nexmark_operators: Vec<&str> = ["events"]
        .into_iter()
        .chain(args.query.stateful_operator())
        .collect();
    let operators: &[&str] = match args.job {
        JobKind::Nexmark => &nexmark_operators,
        JobKind::Wordcount => &["read", "tokenize", "count", "write"],
        JobKind::Ledger => &ledger_job::OPERATORS,
        JobKind::Clicks => &[
            "read",
            "parse",
            "watermarks",
            "count",
            "write",
            "write-late",
        ],
    };
    let mut injector = FailureInjector::new();
    let mut after = 0;
    for _ in 0..args.kills {
        after += 1 + rng.next() % 3;
        let operator = operators[(rng.next() % operators.len() as u64) as usize];
        let tasks = match args.job {
            JobKind::Wordcount => args.parallelism,
            JobKind::Ledger => ledger_job::tasks(operator, args.parallelism),
            // Reading, parsing and watermarking run as one task each.
            JobKind::Clicks if ["read", "parse", "watermarks"].contains(&operator) => 1,
            JobKind::Clicks | JobKind::Nexmark => args.parallelism,
        };
        let task = (rng.next() % tasks as u64) as usize;
        injector = injector.fail_task_after_checkpoint(operator, task, after);
    }
    let mut config = JobConfig::default()
        .with_parallelism(args.parallelism)
        .with_max_rate(Some(rate))
        .with_checkpointing(
            &paths.checkpoints,
            Duration::from_millis(args.checkpoint_interval_ms),
        )
        .with_restart_strategy(RestartStrategy::FixedDelay {
            // One more for the planted crash in a Kafka commit.
            attempts: args.kills + 1,
            delay: Duration::ZERO,
        })
        .with_failure_injector(injector.clone());
    if let Some(addr) = &args.web {
        config = config.with_web(addr.clone());
    }
    if args.no_incremental_checkpoints {
        // Otherwise SNAPFLOW_INCREMENTAL_CHECKPOINTS decides.
        config = config.with_incremental_checkpoints(false);
    }
    let mut fault: Option<Arc<CommitFault>> = None;
    let job = match (args.job, sink) {
        (JobKind::Wordcount, Sink::Kafka(target)) => {
            let mut job = kafka_wordcount::KafkaJob::new(
                &target.bootstrap,
                &target.input_topic,
                &target.output_topic,
            );
            let points = [
                CommitPoint::BeforeTransaction,
                CommitPoint::BeforeCommit,
                CommitPoint::AfterCommit,
            ];
            let point = points[(rng.next() % 3) as usize];
            let planted = Arc::new(CommitFault::new(
                point,
                1 + rng.next() % 3,
                FaultAction::Fail,
            ));
            fault = Some(Arc::clone(&planted));
            job.fault = Some(planted);
            job.build()
        }
        (JobKind::Wordcount, _) => {
            wordcount_job::build(&paths.input, Some(&paths.out), Arc::default())
        }
        (JobKind::Ledger, Sink::File | Sink::Kafka(_)) => {
            ledger_job::build(&paths.input, &paths.out, &paths.dead)
        }
        (JobKind::Clicks, _) => clicks_job::build(
            &paths.input,
            &paths.out,
            &paths.dead,
            args.window,
            CLICKS_OUT_OF_ORDERNESS_MS,
        ),
        (JobKind::Nexmark, _) => nexmark_job(args.query, &paths.input, &paths.out),
        (JobKind::Ledger, Sink::Postgres(target, commit)) => {
            ledger_job::build_postgres(&paths.input, &target.url, &target.schema, commit.mode())
        }
    };
    let report = job.run(&config)?;
    let commit_crashes = u32::from(fault.is_some_and(|f| f.fired()));
    Ok(Outcome {
        attempts: report.restarts + 1,
        kills: injector.fired() as u32 + commit_crashes,
        checkpoints: report.checkpoints.len() as u64,
        recovery: Vec::new(),
        failures: 0,
        commit_crashes,
        planted: [0, 0],
    })
}

/// `events` Nexmark events as the JSON lines of the peer's event file.
fn nexmark_events(events: u64) -> String {
    let mut text = String::new();
    for event in snapflow_nexmark::event::generator(0, 1).take(events as usize) {
        text.push_str(&serde_json::to_string(&event).expect("events serialize"));
        text.push('\n');
    }
    text
}

/// The sequential result of the query over the event file's text: each row's CSV line and
/// how often it occurs.
fn nexmark_expected(args: &Args, text: &str) -> HashMap<String, usize> {
    let events: Vec<snapflow_nexmark::Event> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("the driver's own events parse"))
        .collect();
    let mut rows = HashMap::new();
    for row in snapflow_nexmark::sequential::run(args.query, &events) {
        *rows.entry(row.to_csv()).or_default() += 1;
    }
    rows
}

/// The nexmark example's job, in this process (thread kills).
fn nexmark_job(query: snapflow_nexmark::Query, input: &Path, out: &Path) -> Job {
    let job = Job::new(format!("nexmark-{query}"));
    let events = job
        .source(snapflow_nexmark::source::NexmarkFileSource::new(input))
        .name("events")
        .uid("events")
        .with_timestamp_assigner(snapflow_nexmark::event::event_time);
    query
        .build(events)
        .sink(FileSink::with_format(
            out,
            |row: &snapflow_nexmark::Row, line: &mut Vec<u8>| row.write_csv(line),
        ))
        .name("write")
        .uid("write");
    job
}

/// Nexmark's rows are final once committed: at every moment they are part of the sequential
/// result, no row more often than there; at the end (`complete`) they are all of it.
fn check_nexmark_rows(
    out: &Path,
    expected: &HashMap<String, usize>,
    complete: bool,
) -> Result<(), String> {
    let mut left = expected.clone();
    for line in output::committed_lines(out).map_err(|e| e.to_string())? {
        match left.get_mut(&line) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                return Err(format!(
                    "row {line:?} is not in the result, or is there fewer times"
                ))
            }
        }
    }
    let missing: usize = left.values().sum();
    if complete && missing > 0 {
        return Err(format!("{missing} rows of the result are missing"));
    }
    Ok(())
}

/// The clicks example's default out-of-orderness bound, which the driver runs it with.
const CLICKS_OUT_OF_ORDERNESS_MS: u64 = 5000;

/// What must hold of the committed output at every moment: word counts per word exactly 1..n;
/// ledger versions per account exactly 1..k and latest balances summing to zero; clicks: no
/// window emitted twice.
fn check_invariants(job: JobKind, out: &Path) -> Result<(), String> {
    let lines = output::committed_lines(out).map_err(|e| e.to_string())?;
    if job == JobKind::Clicks {
        return clicks_job::check_running(&lines);
    }
    check_lines(job, &lines)
}

/// [`check_invariants`] of output lines however read.
fn check_lines(job: JobKind, lines: &[String]) -> Result<(), String> {
    let mut per_key: HashMap<String, Vec<(u64, i128)>> = HashMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split('\t').collect();
        let (key, number, value) = match (job, fields.as_slice()) {
            (JobKind::Wordcount, [word, n]) => (word, n, "0"),
            (JobKind::Ledger, [account, balance, version]) => (account, version, *balance),
            _ => return Err(format!("malformed output line {line:?}")),
        };
        let number: u64 = number
            .parse()
            .map_err(|_| format!("bad number in {line:?}"))?;
        let value: i128 = value
            .parse()
            .map_err(|_| format!("bad value in {line:?}"))?;
        per_key
            .entry((*key).to_owned())
            .or_default()
            .push((number, value));
    }
    let mut sum = 0i128;
    for (key, mut seen) in per_key {
        seen.sort_unstable();
        for (i, (n, _)) in seen.iter().enumerate() {
            if *n != i as u64 + 1 {
                return Err(format!(
                    "{key}: expected update {} but found {n} (a gap or a duplicate)",
                    i + 1
                ));
            }
        }
        sum += seen.last().map_or(0, |(_, v)| *v);
    }
    if job == JobKind::Ledger && sum != 0 {
        return Err(format!("committed balances sum to {sum}, not 0"));
    }
    Ok(())
}

/// The final output equals the sequential computation.
fn verify(args: &Args, paths: &Paths, text: &str) -> Result<(), String> {
    let job = args.job;
    let mut got = output::committed_lines(&paths.out).map_err(|e| e.to_string())?;
    got.sort();
    match job {
        JobKind::Nexmark => unreachable!("checked by check_nexmark_rows"),
        JobKind::Clicks => {
            let late = output::committed_lines(&paths.dead).map_err(|e| e.to_string())?;
            clicks_job::check_final(text, args.window, CLICKS_OUT_OF_ORDERNESS_MS, got, late)?;
        }
        JobKind::Wordcount => verify_wordcount(got, text)?,
        JobKind::Ledger => {
            check_invariants(job, &paths.out)?;
            let reference = ledger_model::reference(text);
            if ledger_model::latest_balances(&got)? != reference.balances {
                return Err("balances or versions differ from the sequential ledger".into());
            }
            let mut dead = output::committed_lines(&paths.dead).map_err(|e| e.to_string())?;
            dead.sort();
            if dead != reference.dead_letters() {
                return Err("dead letters differ from the sequential ledger".into());
            }
        }
    }
    Ok(())
}

/// Word count's output lines equal the sequential count.
fn verify_wordcount(mut got: Vec<String>, text: &str) -> Result<(), String> {
    got.sort();
    let expected = wordcount_job::expected_output(text);
    if got != expected {
        return Err(format!(
            "{} output lines, {} expected, or different ones",
            got.len(),
            expected.len()
        ));
    }
    Ok(())
}
