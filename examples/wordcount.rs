//! Streaming word count: one `word<TAB>running_count` line per word occurrence.
//!
//! ```text
//! cargo run --release --example wordcount                  # generated corpus, short report
//! cargo run --release --example wordcount -- --input FILE --output DIR --parallelism 4
//! ```
//!
//! A word is a token of `str::split_whitespace`; the n-th occurrence of a word yields count n.

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/progress.rs"]
mod progress;

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
    /// Tasks per operator (default: the number of CPUs).
    #[arg(long)]
    parallelism: Option<usize>,
    /// Where the counts go (default: file when --output is given, else discard).
    #[arg(long, value_enum)]
    sink: Option<SinkKind>,
    /// Lines of the generated corpus (10 words each), when there is no --input.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Records per batch on every channel.
    #[arg(long, default_value_t = 1024)]
    batch_size: usize,
    /// Limit the sources to about this many lines per second.
    #[arg(long)]
    max_rate: Option<u64>,
    /// Checkpoint directory (checkpointing is not implemented yet: accepted, not used).
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Checkpoint interval in milliseconds (not used yet, like --checkpoint-dir).
    #[arg(long, default_value_t = 1000)]
    checkpoint_interval_ms: u64,
}

fn main() {
    if let Err(error) = run(Args::parse()) {
        eprintln!("wordcount: error: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let parallelism = args
        .parallelism
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let sink = args.sink.unwrap_or(if args.output.is_some() {
        SinkKind::File
    } else {
        SinkKind::Discard
    });
    if sink == SinkKind::File && args.output.is_none() {
        bail!("--sink file needs --output DIR");
    }
    if args.checkpoint_dir.is_some() {
        eprintln!("note: checkpointing is not implemented yet; --checkpoint-dir and --checkpoint-interval-ms are ignored");
    }

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
            corpus::Corpus::new(100_000, 10, 1)
                .write_to(&path, args.lines)
                .with_context(|| format!("cannot write corpus {}", path.display()))?;
            _generated = Some(dir);
            path
        }
    };

    let distinct = Arc::new(AtomicU64::new(0));
    let job = Job::new("wordcount");
    let counts = job
        .source(TextFileSource::new(&input))
        .name("read")
        .flat_map(|line: String| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .name("tokenize")
        .key_by(|word: &String| word.clone())
        .process({
            let distinct = distinct.clone();
            move |_, word: String, count: &mut ValueState<u64>, out: &mut Output<(String, u64)>| {
                let n = count.get().copied().unwrap_or(0) + 1;
                count.set(n);
                if n == 1 {
                    distinct.fetch_add(1, Ordering::Relaxed);
                }
                out.push((word, n));
                Ok(())
            }
        })
        .name("count");
    match (sink, &args.output) {
        (SinkKind::File, Some(dir)) => {
            counts
                .sink(FileSink::with_format(
                    dir,
                    |(word, n): &(String, u64), buf: &mut Vec<u8>| {
                        buf.extend_from_slice(word.as_bytes());
                        buf.push(b'\t');
                        buf.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
                    },
                ))
                .name("write");
        }
        _ => {
            counts.sink(DiscardSink::new()).name("write");
        }
    }

    let config = JobConfig::default()
        .with_parallelism(parallelism)
        .with_batch_size(args.batch_size)
        .with_max_rate(args.max_rate);
    let handle = job.launch(&config)?;
    let progress = progress::Progress::start(handle.metrics(), "tokenize", "lines");
    let report = handle.join()?;
    drop(progress);

    let lines = report.operator("read").map_or(0, |m| m.records_out);
    let words = report.operator("count").map_or(0, |m| m.records_in);
    let secs = report.elapsed.as_secs_f64();
    println!("wordcount  input {}", input.display());
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
    Ok(())
}
