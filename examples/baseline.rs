//! The single-thread word count with no engine, which snapflow must beat on two cores.
//!
//! ```text
//! cargo run --release --example baseline -- --input FILE [--mode emit|count]
//! ```
//!
//! The same computation as the `wordcount` example, written as one plain loop in the manner of
//! McSherry's "COST" baseline: the whole file in memory, words borrowed from it (tokens of
//! `str::split_whitespace`, found by `snapflow::operators::text::words`), counts in an
//! `FxHashMap<&str, u64>`. `emit` also formats one `word<TAB>count` update per word into a
//! 1 MiB buffered writer to the null device, which is what a streaming word count outputs;
//! `count` only counts. No checkpoints, no recovery, no parallelism.

#[path = "support/peak_rss.rs"]
mod peak_rss;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use rustc_hash::FxHashMap;
use snapflow::operators::text::words;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Count, and write one `word<TAB>count` update per word to the null device.
    Emit,
    /// Count only.
    Count,
}

/// Single-thread word count without an engine (the baseline for `benches/compare.sh`).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Input text file (UTF-8).
    #[arg(long)]
    input: PathBuf,
    /// What to do per word.
    #[arg(long, value_enum, default_value_t = Mode::Emit)]
    mode: Mode,
}

fn main() {
    if let Err(error) = run(Args::parse()) {
        eprintln!("baseline: error: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let bytes = std::fs::read(&args.input)
        .with_context(|| format!("cannot read input file {}", args.input.display()))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        anyhow::anyhow!("{}: line {line} is not valid UTF-8", args.input.display())
    })?;
    let mut counts: FxHashMap<&str, u64> = FxHashMap::default();
    let mut total = 0u64;
    match args.mode {
        Mode::Count => {
            for word in words(text) {
                *counts.entry(word).or_insert(0) += 1;
                total += 1;
            }
        }
        Mode::Emit => {
            let null =
                std::fs::File::create(null_device()).context("cannot open the null device")?;
            let mut out = BufWriter::with_capacity(1 << 20, null);
            let mut digits = itoa::Buffer::new();
            for word in words(text) {
                let n = counts.entry(word).or_insert(0);
                *n += 1;
                total += 1;
                out.write_all(word.as_bytes())?;
                out.write_all(b"\t")?;
                out.write_all(digits.format(*n).as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!("baseline  input {}", args.input.display());
    println!("  single thread, mode {:?}", args.mode);
    println!("  words {total}, distinct words {}", counts.len());
    println!(
        "  elapsed {secs:.3} s, {:.2} M words/s",
        total as f64 / secs / 1e6
    );
    println!("  {}", peak_rss::describe());
    Ok(())
}

fn null_device() -> &'static str {
    if cfg!(windows) {
        "NUL"
    } else {
        "/dev/null"
    }
}
