//! A double-entry ledger with exactly-once output.
//!
//! ```text
//! cargo run --release --example ledger        # generated workload, report, self-check
//! cargo run --release --example ledger -- --input FILE --output DIR --dead-letter DIR \
//!     --checkpoint-dir DIR [--parallelism N] [--checkpoint-interval-ms MS] [--max-rate R]
//! cargo run --release --example ledger -- --input FILE --sink postgres --postgres URL \
//!     --checkpoint-dir DIR [--schema NAME] [--postgres-mode two-phase]
//! cargo run --release --example ledger -- --input FILE --sink discard   # throughput only
//! cargo run --release --example ledger -- --transfers 5000000 --generate FILE
//! cargo run --release --example ledger -- --kafka HOST:PORT|local --input-topic IN \
//!     --output-topic OUT [--dead-letter-topic DEAD] --checkpoint-dir DIR
//! ```
//!
//! Input lines `id,from,to,amount` (see `support/ledger_model.rs`). Each transfer is
//! de-duplicated by id, split into a debit of `from` and a credit of `to`, and applied to the
//! accounts' balances; every applied entry yields `account<TAB>balance<TAB>version`. Malformed
//! lines and resubmitted ids go to the dead-letter output as `malformed<TAB>line` and
//! `duplicate<TAB>line`. The job graph is in `support/ledger_job.rs`.

#[path = "support/bounds.rs"]
mod bounds;
#[path = "support/checkpoint_log.rs"]
mod checkpoint_log;
#[path = "support/checkpoint_report.rs"]
mod checkpoint_report;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/defaults.rs"]
mod defaults;
#[path = "support/engine_args.rs"]
mod engine_args;
#[path = "support/graceful.rs"]
mod graceful;
#[path = "support/kafka_server.rs"]
mod kafka_server;
#[path = "support/kafka_topics.rs"]
mod kafka_topics;
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
#[path = "support/peak_rss.rs"]
mod peak_rss;
#[path = "support/progress.rs"]
mod progress;
#[path = "support/rng.rs"]
mod rng;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum SinkKind {
    /// Exactly-once files under --output and --dead-letter.
    File,
    /// Count and drop balances and dead letters (for measuring the job).
    Discard,
    /// Exactly-once into PostgreSQL (--postgres): tables `balances` (the latest balance and
    /// version per account) and `dead_letters`, created if missing.
    Postgres,
}

/// How the PostgreSQL sink commits.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum PostgresMode {
    /// One transaction per checkpoint for all tasks: readers see whole checkpoints.
    Transactional,
    /// One prepared transaction per task and checkpoint, committed after the checkpoint.
    TwoPhase,
}

/// A double-entry ledger over transfer lines, with exactly-once balances and dead letters.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Transfers, one `id,from,to,amount` per line. Without it, a workload is generated.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output directory of `account<TAB>balance<TAB>version` lines.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Output directory of malformed and duplicate lines.
    #[arg(long)]
    dead_letter: Option<PathBuf>,
    /// Where balances and dead letters go.
    #[arg(long, value_enum, default_value_t = SinkKind::File)]
    sink: SinkKind,
    /// PostgreSQL URL for --sink postgres, e.g. postgres://user:password@127.0.0.1:5432/db.
    #[arg(long)]
    postgres: Option<String>,
    /// Schema of the ledger's tables (--sink postgres).
    #[arg(long, default_value = "public")]
    schema: String,
    /// How the PostgreSQL sink commits.
    #[arg(long, value_enum, default_value_t = PostgresMode::Transactional)]
    postgres_mode: PostgresMode,
    #[command(flatten)]
    engine: engine_args::EngineArgs,
    /// Transfers of the generated workload, when there is no --input (built in memory).
    #[arg(long, default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    transfers: u64,
    /// Accounts of the generated workload.
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    accounts: u64,
    /// Only write the generated workload to this file, for later runs with --input.
    #[arg(long, conflicts_with = "input")]
    generate: Option<PathBuf>,
    /// Read transfers from Kafka and write balances and dead letters to Kafka, exactly once:
    /// the bootstrap servers (HOST:PORT,...), or `local` to start a private broker for the run.
    #[arg(long, value_name = "BOOTSTRAP", conflicts_with_all = ["input", "output", "dead_letter"])]
    kafka: Option<String>,
    /// With --kafka: the topic of transfer lines; when missing or empty it is created and
    /// filled with the generated workload (--transfers, --accounts), which the run then checks
    /// its output against.
    #[arg(long, requires = "kafka", default_value = "ledger-in")]
    input_topic: String,
    /// With --kafka: the topic of balance lines (keyed by account).
    #[arg(long, requires = "kafka", default_value = "ledger-balances")]
    output_topic: String,
    /// With --kafka: the topic of dead letters.
    #[arg(long, requires = "kafka", default_value = "ledger-dead-letters")]
    dead_letter_topic: String,
}

fn main() {
    cli::exit_on_error("ledger", run(Args::parse()));
}

fn generate(args: &Args, path: &Path) -> Result<()> {
    eprintln!(
        "generating {} transfers between {} accounts into {} ...",
        args.transfers,
        args.accounts,
        path.display()
    );
    std::fs::write(
        path,
        ledger_model::workload(args.transfers, args.accounts, 7),
    )
    .with_context(|| format!("cannot write {}", path.display()))
}

fn run(args: Args) -> Result<()> {
    logging::init()?;
    if let Some(path) = &args.generate {
        return generate(&args, path);
    }
    if args.kafka.is_some() {
        return run_kafka(&args);
    }
    let parallelism = args.engine.parallelism();
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let generated = args.input.is_none();
    let input = match &args.input {
        Some(path) => path.clone(),
        None => {
            let path = scratch.path().join("transfers.csv");
            generate(&args, &path)?;
            path
        }
    };
    std::fs::metadata(&input)
        .with_context(|| format!("cannot open input file {}", input.display()))?;
    if args.sink == SinkKind::Postgres {
        return run_postgres(&args, &input, generated);
    }
    if args.postgres.is_some() {
        bail!("--postgres goes with --sink postgres");
    }
    let outputs = match (args.sink, &args.output, &args.dead_letter) {
        (SinkKind::Postgres, _, _) => unreachable!("handled above"),
        (SinkKind::Discard, None, None) => None,
        (SinkKind::Discard, _, _) => bail!("--sink discard writes no --output or --dead-letter"),
        (SinkKind::File, Some(o), Some(d)) => {
            check_disjoint(o, d)?;
            Some((o.clone(), d.clone()))
        }
        (SinkKind::File, None, None) if generated => Some((
            scratch.path().join("balances"),
            scratch.path().join("dead-letter"),
        )),
        (SinkKind::File, _, _) => {
            bail!("give both --output and --dead-letter, or --sink discard (or neither, with a generated workload)")
        }
    };
    let checkpoint_dir = defaults::checkpoint_dir(args.engine.checkpoint_dir.clone(), "ledger");

    let (job, discarded) = match &outputs {
        Some((output, dead_letter)) => (ledger_job::build(&input, output, dead_letter), None),
        None => {
            let (job, counters) = ledger_job::build_discarding(&input);
            (job, Some(counters))
        }
    };
    let Some(report) = run_job(&job, &args, &checkpoint_dir, "output is published")? else {
        return Ok(());
    };
    // Before the checks below read the whole output into memory.
    let peak_rss = peak_rss::describe();
    let sink = match &outputs {
        Some((o, d)) => format!("file ({}, {})", o.display(), d.display()),
        None => "discard".to_owned(),
    };
    print_run(&report, &input, parallelism, &sink, &checkpoint_dir);
    println!("  {peak_rss}");

    let Some((output, dead_letter)) = outputs else {
        let counters = discarded.expect("the discarding job has counters");
        println!(
            "  {} balance lines and {} dead letters discarded; no self-check (--sink discard)",
            counters.balances.get(),
            counters.dead_letters.get()
        );
        return Ok(());
    };
    let balances = latest_balances(&output)?;
    let sum: i128 = balances.values().map(|(b, _)| b).sum();
    let dead = output::committed_lines(&dead_letter)?;
    println!(
        "  {} accounts, balances sum to {sum}; {} malformed and {} duplicate lines in {}",
        balances.len(),
        dead.iter().filter(|l| l.starts_with("malformed\t")).count(),
        dead.iter().filter(|l| l.starts_with("duplicate\t")).count(),
        dead_letter.display()
    );
    if sum != 0 {
        bail!("the committed balances sum to {sum}, not 0");
    }
    if generated {
        let text = std::fs::read_to_string(&input)?;
        check_against_reference(&text, &balances, dead)?;
    }
    Ok(())
}

/// Fails unless `balances` and the dead letters `dead` (in any order) are what the sequential
/// ledger computes from the transfer lines `text`.
fn check_against_reference(
    text: &str,
    balances: &HashMap<String, (i128, u64)>,
    mut dead: Vec<String>,
) -> Result<()> {
    let expected = ledger_model::reference(text);
    if *balances != expected.balances {
        bail!("the balances differ from a sequential computation");
    }
    dead.sort();
    if dead != expected.dead_letters() {
        bail!("the dead letters differ from a sequential computation");
    }
    println!(
        "  checked against a sequential computation: balances, versions and dead letters match"
    );
    Ok(())
}

/// The ledger into PostgreSQL: runs the job, then reads the tables back in one snapshot and
/// checks them (balances sum to zero; against a sequential computation for a generated
/// workload).
fn run_postgres(args: &Args, input: &Path, generated: bool) -> Result<()> {
    let url = args
        .postgres
        .as_deref()
        .context("--sink postgres needs --postgres URL")?;
    if args.output.is_some() || args.dead_letter.is_some() {
        bail!("--sink postgres writes no --output or --dead-letter");
    }
    let mode = match args.postgres_mode {
        PostgresMode::Transactional => snapflow::postgres::PgMode::Transactional,
        PostgresMode::TwoPhase => snapflow::postgres::PgMode::TwoPhase,
    };
    let checkpoint_dir = defaults::checkpoint_dir(args.engine.checkpoint_dir.clone(), "ledger");
    let job = ledger_job::build_postgres(input, url, &args.schema, mode);
    let Some(report) = run_job(&job, args, &checkpoint_dir, "rows are committed")? else {
        return Ok(());
    };
    let sink = format!(
        "postgres ({:?}, schema {})",
        args.postgres_mode, args.schema
    );
    print_run(
        &report,
        input,
        args.engine.parallelism(),
        &sink,
        &checkpoint_dir,
    );
    let tables =
        ledger_pg::read(url, &args.schema).context("cannot read the ledger's tables back")?;
    let sum: i128 = tables.balances.values().map(|(b, _)| b).sum();
    println!(
        "  {} accounts, balances sum to {sum}; {} dead letters",
        tables.balances.len(),
        tables.dead_letters.len()
    );
    if sum != 0 {
        bail!("the committed balances sum to {sum}, not 0");
    }
    if generated {
        let text = std::fs::read_to_string(input)?;
        check_against_reference(&text, &tables.balances, tables.dead_letters)?;
    }
    Ok(())
}

/// Runs the job with progress and graceful stop; `None` after a graceful stop, which it
/// reports (`published` says what happened to the last checkpoint's output).
fn run_job(
    job: &snapflow::engine::Job,
    args: &Args,
    checkpoint_dir: &Path,
    published: &str,
) -> Result<Option<snapflow::engine::JobReport>> {
    let config = args.engine.config(Some(checkpoint_dir));
    let handle = job.launch(&config)?;
    engine_args::announce_web(&handle);
    engine_args::stop_on_signal(&args.engine, &handle);
    let progress = progress::Progress::start(handle.metrics(), "dedup", "transfers", None);
    let report = handle.join()?;
    drop(progress);
    if let Some(id) = report.stopped_at {
        println!(
            "ledger: stopped at checkpoint {id}: its {published}; to resume, rerun the same command with --checkpoint-dir {}",
            checkpoint_dir.display()
        );
        engine_args::announce_savepoint(&report);
        return Ok(None);
    }
    Ok(Some(report))
}

/// Prints what a finished run did: input, sink, throughput and checkpoints.
fn print_run(
    report: &snapflow::engine::JobReport,
    input: &Path,
    parallelism: usize,
    sink: &str,
    checkpoint_dir: &Path,
) {
    // Every non-blank line, malformed ones included, reaches `dedup`.
    let transfers = report.operator("dedup").map_or(0, |m| m.records_in);
    let secs = report.elapsed.as_secs_f64();
    println!("ledger  input {}", input.display());
    if let Some(id) = report.restored_from {
        println!("  resumed from checkpoint {id}");
    }
    println!("  parallelism {parallelism}, sink {sink}");
    println!(
        "  {transfers} transfers (non-blank lines, malformed ones included) in {secs:.3} s: {:.2} M transfers/s",
        transfers as f64 / secs / 1e6,
    );
    checkpoint_report::print(report, checkpoint_dir);
}

/// Refuses output directories that are the same or nested: both sinks stage files named by
/// checkpoint and task, so they would overwrite each other's output and publish the wreck.
fn check_disjoint(output: &Path, dead_letter: &Path) -> Result<()> {
    let absolute = |p: &Path| {
        std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
    };
    let (o, d) = (absolute(output)?, absolute(dead_letter)?);
    if o.starts_with(&d) || d.starts_with(&o) {
        bail!(
            "--output {} and --dead-letter {} must be separate directories, neither inside the other",
            output.display(),
            dead_letter.display()
        );
    }
    Ok(())
}

/// The committed balance and version of every account: its line with the highest version.
fn latest_balances(dir: &Path) -> Result<HashMap<String, (i128, u64)>> {
    let lines = output::committed_lines(dir)?;
    ledger_model::latest_balances(&lines).map_err(|e| anyhow::anyhow!("{e} in {}", dir.display()))
}

/// The ledger from and into Kafka: runs the job, then reads the output topics back as a
/// read_committed consumer and checks them (balances sum to zero; against a sequential
/// computation when this run generated the input).
fn run_kafka(args: &Args) -> Result<()> {
    let requested = args.kafka.as_deref().unwrap_or_default();
    let _local;
    let bootstrap = if requested == "local" {
        let server = kafka_server::KafkaServer::start()?;
        eprintln!("started a private Kafka broker at {}", server.bootstrap());
        let bootstrap = server.bootstrap();
        _local = server;
        bootstrap
    } else {
        requested.to_owned()
    };
    let parallelism = args.engine.parallelism() as i32;
    let topics = [
        &args.input_topic,
        &args.output_topic,
        &args.dead_letter_topic,
    ];
    for topic in topics {
        kafka_topics::create_topic(&bootstrap, topic, parallelism)?;
    }
    let mut generated = None;
    if kafka_topics::count_records(&bootstrap, &args.input_topic)? == 0 {
        let text = ledger_model::workload(args.transfers, args.accounts, 7);
        eprintln!(
            "producing {} generated transfers into topic {} ...",
            args.transfers, args.input_topic
        );
        let lines: Vec<&str> = text.lines().collect();
        for chunk in lines.chunks(100_000) {
            kafka_topics::produce_lines(&bootstrap, &args.input_topic, parallelism, chunk)?;
        }
        generated = Some(text);
    }
    let checkpoint_dir = defaults::checkpoint_dir(args.engine.checkpoint_dir.clone(), "ledger");
    let config = snapflow::kafka::KafkaConfig::new(&bootstrap);
    let job = ledger_job::build_kafka(
        &config,
        &args.input_topic,
        &args.output_topic,
        &args.dead_letter_topic,
        [None, None],
    );
    let Some(report) = run_job(&job, args, &checkpoint_dir, "output is committed")? else {
        return Ok(());
    };
    let sink = format!(
        "Kafka {bootstrap}, topics {} and {}, exactly once",
        args.output_topic, args.dead_letter_topic
    );
    print_run(
        &report,
        Path::new(&format!("Kafka topic {}", args.input_topic)),
        parallelism as usize,
        &sink,
        &checkpoint_dir,
    );
    let lines = kafka_topics::read_committed(&bootstrap, &args.output_topic)?;
    let balances = ledger_model::latest_balances(&lines).map_err(|e| anyhow::anyhow!(e))?;
    let dead = kafka_topics::read_committed(&bootstrap, &args.dead_letter_topic)?;
    let sum: i128 = balances.values().map(|(b, _)| b).sum();
    println!(
        "  {} accounts, balances sum to {sum}; {} dead letters",
        balances.len(),
        dead.len()
    );
    if sum != 0 {
        bail!("the committed balances sum to {sum}, not 0");
    }
    if let Some(text) = generated {
        check_against_reference(&text, &balances, dead)?;
    }
    Ok(())
}
