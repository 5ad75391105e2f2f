//! Streaming word count: one `word<TAB>running_count` line per word occurrence.
//!
//! ```text
//! cargo run --release --example wordcount                  # generated corpus, short report
//! cargo run --release --example wordcount -- --input FILE --output DIR --parallelism 4
//! cargo run --release --example wordcount -- --kafka HOST:PORT --input-topic IN --output-topic OUT
//! cargo run --release --example wordcount -- --kafka local --lines 1000000     # private broker
//! ```
//!
//! A word is a token of `str::split_whitespace`; the n-th occurrence of a word yields count n.

#[path = "support/bounds.rs"]
mod bounds;
#[path = "support/checkpoint_log.rs"]
mod checkpoint_log;
#[path = "support/checkpoint_report.rs"]
mod checkpoint_report;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/cpu_report.rs"]
mod cpu_report;
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
#[path = "support/kafka_wordcount.rs"]
mod kafka_wordcount;
#[path = "support/logging.rs"]
mod logging;
#[path = "support/peak_rss.rs"]
mod peak_rss;
#[path = "support/progress.rs"]
mod progress;
#[path = "support/rng.rs"]
mod rng;
#[path = "support/wordcount_job.rs"]
mod wordcount_job;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use snapflow::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum SinkKind {
    /// One file per sink task under --output.
    File,
    /// Count and drop the output (for measuring the engine).
    Discard,
    /// Into --output-topic (with --kafka).
    Kafka,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Delivery {
    /// Each checkpoint's counts become visible when it completes, exactly once.
    ExactlyOnce,
    /// Counts are visible at once; repeated after a crash.
    AtLeastOnce,
}

/// Streaming word count over a UTF-8 text file, or over a generated corpus.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Input text file (UTF-8). Without it, a corpus is generated into a temporary file.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output directory for the file sink.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Where the counts go (default: file when --output is given, else discard).
    #[arg(long, value_enum)]
    sink: Option<SinkKind>,
    /// Lines of the generated corpus (10 words each), when there is no --input.
    #[arg(long, default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    lines: u64,
    /// Distinct words the generated corpus draws from (Zipf 1.1).
    #[arg(long, default_value_t = 100_000, value_parser = bounds::usize_in(10_000_000))]
    vocabulary: usize,
    /// Read lines from Kafka: the bootstrap servers (HOST:PORT,...), or `local` to start a
    /// private Apache Kafka broker for this run (Java 17 and the jars of
    /// `scripts/kafka.sh install`). The job reads --input-topic to the end it has at start.
    #[arg(long, value_name = "BOOTSTRAP")]
    kafka: Option<String>,
    /// With --kafka: the topic of input lines. Without --input, it is created and filled with
    /// the generated corpus first (--lines, --vocabulary) when it is missing or empty.
    #[arg(long, requires = "kafka")]
    input_topic: Option<String>,
    /// With --kafka: the topic the counts go to (`word<TAB>count`, keyed by word; created
    /// when missing). Default sink with --kafka; `--sink discard` measures the source alone.
    #[arg(long, requires = "kafka")]
    output_topic: Option<String>,
    /// With --kafka: how the counts are delivered.
    #[arg(long, value_enum, default_value = "exactly-once", requires = "kafka")]
    kafka_delivery: Delivery,
    /// With --kafka: crash (abort the process) at POINT of the sink's N-th Kafka commit, for
    /// the chaos driver: POINT is before-transaction, before-commit (records produced, the
    /// transaction open) or after-commit.
    #[arg(long, value_name = "POINT:N", requires = "kafka", value_parser = parse_crash)]
    kafka_crash_at: Option<(snapflow::kafka::CommitPoint, u64)>,
    /// Take no periodic checkpoints (the output is still published once, at the end).
    #[arg(long, conflicts_with_all = ["checkpoint_dir"])]
    no_checkpoints: bool,
    #[command(flatten)]
    engine: engine_args::EngineArgs,
}

fn main() {
    // The recovery figures count from here: the process has just started.
    let started = (std::time::Instant::now(), std::time::SystemTime::now());
    cli::exit_on_error("wordcount", run(Args::parse(), started));
}

fn run(args: Args, started: (std::time::Instant, std::time::SystemTime)) -> Result<()> {
    logging::init()?;
    if args.kafka.is_some() {
        return run_kafka(&args);
    }
    let parallelism = args.engine.parallelism();
    let sink = args.sink.unwrap_or(if args.output.is_some() {
        SinkKind::File
    } else {
        SinkKind::Discard
    });
    if sink == SinkKind::File && args.output.is_none() {
        bail!("--sink file needs --output DIR");
    }
    if sink == SinkKind::Kafka {
        bail!("--sink kafka needs --kafka BOOTSTRAP");
    }
    let checkpoint_dir = if args.no_checkpoints {
        None
    } else {
        Some(defaults::checkpoint_dir(
            args.engine.checkpoint_dir.clone(),
            "wordcount",
        ))
    };

    // Keep the generated corpus alive until the job has read it.
    let mut _generated = None;
    let input = match &args.input {
        Some(path) => {
            std::fs::metadata(path)
                .with_context(|| format!("cannot open input file {}", path.display()))?;
            path.clone()
        }
        None => {
            let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
            let path = dir.path().join("corpus.txt");
            eprintln!(
                "generating {} lines of corpus into {} ...",
                args.lines,
                path.display()
            );
            corpus::Corpus::new(args.vocabulary, 10, 1)
                .write_to(&path, args.lines)
                .with_context(|| format!("cannot write corpus {}", path.display()))?;
            _generated = Some(dir);
            path
        }
    };

    let distinct = Arc::new(AtomicU64::new(0));
    let output = match sink {
        SinkKind::File => args.output.as_deref(),
        SinkKind::Discard | SinkKind::Kafka => None,
    };
    let first_count = Arc::new(std::sync::OnceLock::new());
    let job = wordcount_job::build_timed(&input, output, distinct.clone(), first_count.clone());

    let config = args.engine.config(checkpoint_dir.as_deref());
    let handle = job.launch(&config)?;
    engine_args::stop_on_signal(&args.engine, &handle);
    engine_args::announce_web(&handle);
    let progress = progress::Progress::start(
        handle.metrics(),
        "tokenize",
        "lines",
        args.input.is_none().then_some(args.lines),
    );
    let report = handle.join()?;
    drop(progress);

    let lines = report.operator("read").map_or(0, |m| m.records_out);
    let words = report.operator("count").map_or(0, |m| m.records_in);
    let secs = report.elapsed.as_secs_f64();
    println!("wordcount  input {}", input.display());
    if let Some(id) = report.restored_from {
        println!("  resumed from checkpoint {id}");
        checkpoint_report::print_recovery(&report, started, first_count.get().copied());
    }
    println!(
        "  parallelism {parallelism}, sink {}",
        match (sink, &args.output) {
            (SinkKind::File, Some(dir)) => format!("file ({})", dir.display()),
            _ => "discard".to_owned(),
        }
    );
    println!(
        "  lines {lines}, words {words}, distinct words {}",
        distinct.load(Ordering::Relaxed)
    );
    println!(
        "  elapsed {secs:.3} s, {:.2} M words/s",
        words as f64 / secs / 1e6
    );
    print_checkpoints(&report, checkpoint_dir.as_deref());
    println!("  {}", peak_rss::describe());
    let cpu = cpu_report::describe(&report, words, "word");
    if !cpu.is_empty() {
        println!("  {cpu}");
    }
    if let (Some(id), Some(dir)) = (report.stopped_at, &checkpoint_dir) {
        println!(
            "  stopped at checkpoint {id}: its output is published; to resume, rerun the same command with --checkpoint-dir {}",
            dir.display()
        );
    }
    engine_args::announce_savepoint(&report);
    Ok(())
}

/// The checkpoint part of the report.
fn print_checkpoints(report: &JobReport, dir: Option<&std::path::Path>) {
    match dir {
        Some(dir) => checkpoint_report::print(report, dir),
        None => println!("  checkpoints: off (output published once, at the end)"),
    }
}

/// Word count from --input-topic into --output-topic (or discarded): the Kafka mode. Reports
/// lines and words per second through Kafka, the measure of the source alone (`--sink
/// discard`) and of source + sink.
fn run_kafka(args: &Args) -> Result<()> {
    let parallelism = args.engine.parallelism();
    let requested = args.kafka.as_deref().unwrap_or_default();
    let _local;
    let bootstrap = if requested == "local" {
        eprintln!("starting a private Kafka broker ...");
        let server = kafka_server::KafkaServer::start()?;
        let bootstrap = server.bootstrap();
        eprintln!(
            "Kafka broker at {bootstrap} (log {})",
            server.log_path().display()
        );
        _local = server;
        bootstrap
    } else {
        requested.to_owned()
    };
    let input_topic = args
        .input_topic
        .clone()
        .unwrap_or_else(|| "wordcount-in".into());
    let sink = args.sink.unwrap_or(SinkKind::Kafka);
    if sink == SinkKind::File {
        bail!("with --kafka the counts go to --output-topic (or --sink discard)");
    }
    let output_topic = args
        .output_topic
        .clone()
        .unwrap_or_else(|| "wordcount-out".into());
    if args.input.is_some() {
        bail!("with --kafka the input is --input-topic, not --input");
    }
    fill_input_topic(args, &bootstrap, &input_topic, parallelism)?;
    if sink == SinkKind::Kafka {
        kafka_topics::create_topic(&bootstrap, &output_topic, parallelism as i32)?;
    }
    let checkpoint_dir = (!args.no_checkpoints)
        .then(|| defaults::checkpoint_dir(args.engine.checkpoint_dir.clone(), "wordcount-kafka"));
    let mut job = kafka_wordcount::KafkaJob::new(&bootstrap, &input_topic, &output_topic);
    job.discard = sink == SinkKind::Discard;
    job.mode = match args.kafka_delivery {
        Delivery::ExactlyOnce => snapflow::kafka::DeliveryMode::ExactlyOnce,
        Delivery::AtLeastOnce => snapflow::kafka::DeliveryMode::AtLeastOnce,
    };
    if let Some((point, nth)) = args.kafka_crash_at {
        job.fault = Some(Arc::new(snapflow::kafka::CommitFault::new(
            point,
            nth,
            snapflow::kafka::FaultAction::Abort,
        )));
    }
    let config = args.engine.config(checkpoint_dir.as_deref());
    let handle = job.build().launch(&config)?;
    engine_args::stop_on_signal(&args.engine, &handle);
    let progress = progress::Progress::start(handle.metrics(), "tokenize", "lines", None);
    let report = handle.join()?;
    drop(progress);

    let lines = report.operator("read").map_or(0, |m| m.records_out);
    let words = report.operator("count").map_or(0, |m| m.records_in);
    let secs = report.elapsed.as_secs_f64();
    println!("wordcount  Kafka {bootstrap}, topic {input_topic}");
    if let Some(id) = report.restored_from {
        println!("  resumed from checkpoint {id}");
    }
    println!(
        "  parallelism {parallelism}, sink {}",
        match sink {
            SinkKind::Kafka => format!("Kafka topic {output_topic}, {:?}", args.kafka_delivery),
            _ => "discard".to_owned(),
        }
    );
    println!(
        "  lines {lines}, words {words}, elapsed {secs:.3} s: {:.0} lines/s, {:.2} M words/s through Kafka",
        lines as f64 / secs,
        words as f64 / secs / 1e6
    );
    print_checkpoints(&report, checkpoint_dir.as_deref());
    println!("  {}", peak_rss::describe());
    Ok(())
}

/// Creates --input-topic with one partition per task and fills it with --lines generated
/// lines when it is missing or empty; a topic with records is read as it is.
fn fill_input_topic(args: &Args, bootstrap: &str, topic: &str, parallelism: usize) -> Result<()> {
    kafka_topics::create_topic(bootstrap, topic, parallelism as i32)?;
    let existing = kafka_topics::count_records(bootstrap, topic)?;
    if existing > 0 {
        eprintln!("reading the {existing} records in topic {topic}");
        return Ok(());
    }
    eprintln!(
        "producing {} generated lines into topic {topic} ...",
        args.lines
    );
    let corpus = corpus::Corpus::new(args.vocabulary, 10, 1);
    let partitions = kafka_topics::partition_count(bootstrap, topic)?;
    let chunk = 100_000;
    let mut start = 0;
    while start < args.lines {
        let end = (start + chunk).min(args.lines);
        let lines: Vec<String> = (start..end).map(|i| corpus.line(i)).collect();
        kafka_topics::produce_lines(bootstrap, topic, partitions, &lines)?;
        start = end;
    }
    Ok(())
}

/// `POINT:N` of --kafka-crash-at.
fn parse_crash(text: &str) -> Result<(snapflow::kafka::CommitPoint, u64), String> {
    use snapflow::kafka::CommitPoint;
    let (point, nth) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not POINT:N"))?;
    let point = match point {
        "before-transaction" => CommitPoint::BeforeTransaction,
        "before-commit" => CommitPoint::BeforeCommit,
        "after-commit" => CommitPoint::AfterCommit,
        other => {
            return Err(format!(
                "{other:?} is not before-transaction, before-commit or after-commit"
            ))
        }
    };
    let nth = nth
        .parse::<u64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("{nth:?} is not a commit number (1 or more)"))?;
    Ok((point, nth))
}
