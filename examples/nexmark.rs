//! Nexmark queries over the deterministic Nexmark generator, with throughput figures.
//!
//! ```text
//! cargo run --release --example nexmark -- --query q5 --events 10000000 [--parallelism P]
//!     [--checkpoint-interval-ms MS] [--checkpoint-dir DIR] [--check]
//! cargo run --release --example nexmark -- --query q5 --input EVENTS.json   # the Flink peer's file
//! ```
//!
//! Runs q0, q1, q2, q3, q4, q5, q7, q8, q11 and q18 (Flink's Nexmark SQL semantics, as in the
//! Flink peer's queries; q4 and q18 emit their final result when the input ends); the rows go
//! to a counting sink. Events are generated (the `nexmark`
//! crate, base time pinned to the peer's) or read from a JSON-lines event file made by
//! `peers/nexmark_gen.sh`, so that snapflow and Flink can run on identical data. Prints events/s, and events/s per core (events over the CPU time of all
//! tasks). `--check` also compares the rows with a sequential computation (for small
//! `--events`).

#[path = "support/bounds.rs"]
mod bounds;
#[path = "support/checkpoint_log.rs"]
mod checkpoint_log;
#[path = "support/defaults.rs"]
mod defaults;
#[path = "support/engine_args.rs"]
mod engine_args;
#[path = "support/nexmark_job.rs"]
mod nexmark_job;

use anyhow::{bail, Context, Result};
use clap::Parser;
use snapflow::prelude::*;

/// Nexmark queries with throughput figures.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The query: q0, q1, q2, q3, q4, q5, q7, q8, q11 or q18.
    #[arg(long, default_value = "q5")]
    query: String,
    /// Events to generate (Person:Auction:Bid = 1:3:46).
    #[arg(long, default_value_t = 1_000_000, conflicts_with = "input",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000_000))]
    events: u64,
    /// Read the events from this JSON-lines file instead of generating them.
    #[arg(long)]
    input: Option<std::path::PathBuf>,
    /// Compare the rows with the sequential computation (keeps them in memory).
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    engine: engine_args::EngineArgs,
}

fn main() {
    if let Err(error) = run(Args::parse()) {
        eprintln!("nexmark: error: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if !nexmark_job::QUERIES.contains(&args.query.as_str()) {
        bail!(
            "--query {}: snapflow runs {}",
            args.query,
            nexmark_job::QUERIES.join(", ")
        );
    }
    let checkpoint_dir = defaults::checkpoint_dir(args.engine.checkpoint_dir.clone(), "nexmark");
    let config = args.engine.config(Some(&checkpoint_dir));
    let input = match &args.input {
        Some(path) => {
            std::fs::metadata(path)
                .with_context(|| format!("cannot open event file {}", path.display()))?;
            nexmark_job::Input::File(path.clone())
        }
        None => nexmark_job::Input::Generate(args.events),
    };
    let (report, rows) = if args.check {
        let sink = CollectSink::new();
        let results = sink.results();
        let report = nexmark_job::build_from(&args.query, &input, sink).run(&config)?;
        (report, Some(results.take()))
    } else {
        let report =
            nexmark_job::build_from(&args.query, &input, DiscardSink::new()).run(&config)?;
        (report, None)
    };
    let events = report.operator("nexmark").map_or(0, |m| m.records_out);
    let secs = report.elapsed.as_secs_f64();
    let cpu: f64 = report
        .operators
        .iter()
        .map(|m| m.cpu_time.as_secs_f64())
        .sum();
    let out = report.operator("write").map_or(0, |m| m.records_in);
    println!(
        "nexmark {}  events {events}{}, parallelism {}, rows {out}",
        args.query,
        args.input
            .as_ref()
            .map(|p| format!(" from {}", p.display()))
            .unwrap_or_default(),
        args.engine.parallelism()
    );
    println!(
        "  elapsed {secs:.3} s, {:.0} events/s, {} events/s per core (CPU {cpu:.2} s)",
        events as f64 / secs,
        if cpu > 0.0 {
            format!("{:.0}", events as f64 / cpu)
        } else {
            "n/a".to_owned()
        }
    );
    if let Some(mut rows) = rows {
        rows.sort();
        let want = match &input {
            nexmark_job::Input::Generate(n) => nexmark_job::expected(&args.query, *n),
            nexmark_job::Input::File(path) => nexmark_job::expected_of(
                &args.query,
                &nexmark_job::read_events(path).map_err(|e| anyhow::anyhow!("{e}"))?,
            ),
        };
        if rows != want {
            bail!(
                "{} rows, {} expected by the sequential computation, or different ones",
                rows.len(),
                want.len()
            );
        }
        println!("  matches the sequential computation ({} rows)", want.len());
    }
    Ok(())
}
