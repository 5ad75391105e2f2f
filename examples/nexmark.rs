//! Nexmark queries over the deterministic Nexmark generator, with throughput figures.
//!
//! ```text
//! cargo run --release --example nexmark -- --query q5 --events 10000000 [--parallelism P]
//!     [--checkpoint-interval-ms MS] [--checkpoint-dir DIR] [--check]
//! ```
//!
//! Runs so far: q0, q1, q2, q5, q7 and q11 (Flink's Nexmark SQL semantics); the rows go to a
//! counting sink. Prints events/s, and events/s per core (events over the CPU time of all
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

use anyhow::{bail, Result};
use clap::Parser;
use snapflow::prelude::*;

/// Nexmark queries with throughput figures.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The query: q0, q1, q2, q5, q7 or q11.
    #[arg(long, default_value = "q5")]
    query: String,
    /// Events to generate (Person:Auction:Bid = 1:3:46).
    #[arg(long, default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000_000))]
    events: u64,
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
            "--query {}: snapflow runs {} so far",
            args.query,
            nexmark_job::QUERIES.join(", ")
        );
    }
    let checkpoint_dir = defaults::checkpoint_dir(args.engine.checkpoint_dir.clone(), "nexmark");
    let config = args.engine.config(Some(&checkpoint_dir));
    let (report, rows) = if args.check {
        let sink = CollectSink::new();
        let results = sink.results();
        let report = nexmark_job::build(&args.query, args.events, sink).run(&config)?;
        (report, Some(results.take()))
    } else {
        let report =
            nexmark_job::build(&args.query, args.events, DiscardSink::new()).run(&config)?;
        (report, None)
    };
    let secs = report.elapsed.as_secs_f64();
    let cpu: f64 = report
        .operators
        .iter()
        .map(|m| m.cpu_time.as_secs_f64())
        .sum();
    let out = report.operator("write").map_or(0, |m| m.records_in);
    println!(
        "nexmark {}  events {}, parallelism {}, rows {out}",
        args.query,
        args.events,
        args.engine.parallelism()
    );
    println!(
        "  elapsed {secs:.3} s, {:.0} events/s, {} events/s per core (CPU {cpu:.2} s)",
        args.events as f64 / secs,
        if cpu > 0.0 {
            format!("{:.0}", args.events as f64 / cpu)
        } else {
            "n/a".to_owned()
        }
    );
    if let Some(mut rows) = rows {
        rows.sort();
        let want = nexmark_job::expected(&args.query, args.events);
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
