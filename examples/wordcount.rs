//! Streaming word count: one `word<TAB>running_count` line per word occurrence.
//!
//! ```text
//! cargo run --release --example wordcount                  # generated corpus, short report
//! cargo run --release --example wordcount -- --input FILE --output DIR --parallelism 4
//! ```
//!
//! A word is a token of `str::split_whitespace`; the n-th occurrence of a word yields count n.

#[path = "support/bounds.rs"]
mod bounds;
#[path = "support/checkpoint_log.rs"]
mod checkpoint_log;
#[path = "support/checkpoint_report.rs"]
mod checkpoint_report;
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
    /// Take no periodic checkpoints (the output is still published once, at the end).
    #[arg(long, conflicts_with_all = ["checkpoint_dir"])]
    no_checkpoints: bool,
    #[command(flatten)]
    engine: engine_args::EngineArgs,
}

fn main() {
    if let Err(error) = run(Args::parse()) {
        eprintln!("wordcount: error: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    logging::init()?;
    let parallelism = args.engine.parallelism();
    let sink = args.sink.unwrap_or(if args.output.is_some() {
        SinkKind::File
    } else {
        SinkKind::Discard
    });
    if sink == SinkKind::File && args.output.is_none() {
        bail!("--sink file needs --output DIR");
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
        SinkKind::Discard => None,
    };
    let job = wordcount_job::build(&input, output, distinct.clone());

    let config = args.engine.config(checkpoint_dir.as_deref());
    let handle = job.launch(&config)?;
    graceful::stop_on_signal(handle.stopper());
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
    Ok(())
}

/// The checkpoint part of the report.
fn print_checkpoints(report: &JobReport, dir: Option<&std::path::Path>) {
    match dir {
        Some(dir) => checkpoint_report::print(report, dir),
        None => println!("  checkpoints: off (output published once, at the end)"),
    }
}
