//! Nexmark queries on snapflow, on generated events or on the Flink peer's event file.
//!
//! ```text
//! cargo run --release --example nexmark -- --query q5 --events 1000000 --parallelism 2
//! cargo run --release --example nexmark -- --query q5 --input events-1000000.json --output DIR
//! cargo run --release --example nexmark -- --query q7 --events 200000 --check
//! cargo run --release --example nexmark -- --generate-file FILE --events 100000
//! ```
//!
//! Prints events/s and events/s per core (events / wall seconds / min(parallelism, CPUs)),
//! and a `RESULT key=value ...` line for scripts. `--output DIR` writes the result rows as CSV
//! into an exactly-once file sink (the committed files under DIR, concatenated, are what the
//! Flink peer's `compare.py` reads); without it the rows are counted and dropped. `--check`
//! compares the rows with the sequential computation of the query over the same events.
//! Checkpoints every `--checkpoint-interval-ms` (1 s) into `--checkpoint-dir` (default: a new
//! temporary directory); rerunning with the same directory resumes.

#[path = "support/bounds.rs"]
mod bounds;
#[path = "support/checkpoint_log.rs"]
mod checkpoint_log;
#[path = "support/checkpoint_report.rs"]
mod checkpoint_report;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/cpu_report.rs"]
mod cpu_report;
#[path = "support/defaults.rs"]
mod defaults;
#[path = "support/engine_args.rs"]
mod engine_args;
#[path = "support/graceful.rs"]
mod graceful;
#[path = "support/output.rs"]
mod output;
#[path = "support/peak_rss.rs"]
mod peak_rss;

use anyhow::{bail, Context, Result};
use clap::Parser;
use snapflow::prelude::*;
use snapflow_nexmark::event::{event_time, generate, generator};
use snapflow_nexmark::source::{NexmarkFileSource, NexmarkSource};
use snapflow_nexmark::{sequential, Event, Query, Row};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Nexmark queries with Flink's Nexmark SQL semantics.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The query: q0 q1 q2 q3 q4 q5 q7 q8 q11 q18.
    #[arg(long, required_unless_present = "generate_file")]
    query: Option<Query>,
    /// Events to generate (without --input).
    #[arg(long, default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000_000))]
    events: u64,
    /// Read the events from this JSON-lines file (made by ../shared/peers/nexmark_gen.sh)
    /// instead of generating them.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Write the result rows as CSV into this directory (an exactly-once file sink).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Compare the result with the sequential computation of the query.
    #[arg(long)]
    check: bool,
    /// No periodic checkpoints.
    #[arg(long)]
    no_checkpoints: bool,
    /// Only write the first --events generated events to FILE as JSON lines (the peer's file
    /// format, byte for byte) and exit.
    #[arg(long, conflicts_with_all = ["query", "input", "output", "check"])]
    generate_file: Option<PathBuf>,
    #[command(flatten)]
    engine: engine_args::EngineArgs,
}

fn main() {
    cli::exit_on_error("nexmark", run(Args::parse()));
}

fn run(args: Args) -> Result<()> {
    if let Some(path) = &args.generate_file {
        return write_events(path, args.events);
    }
    let query = args.query.expect("clap requires --query");
    if let Some(input) = &args.input {
        cli::check_input(input)?;
    }
    let checkpoint_dir = (!args.no_checkpoints)
        .then(|| defaults::checkpoint_dir(args.engine.checkpoint_dir.clone(), "nexmark"));
    let config = args.engine.config(checkpoint_dir.as_deref());

    let job = Job::new(format!("nexmark-{query}"));
    let events = match &args.input {
        Some(path) => job.source(NexmarkFileSource::new(path)),
        None => job.source(NexmarkSource::new(args.events)),
    }
    .name("events")
    .uid("events")
    .with_timestamp_assigner(event_time);
    let rows = query.build(events);
    let collected = match (&args.output, args.check) {
        (Some(dir), _) => {
            rows.sink(FileSink::with_format(
                dir,
                |row: &Row, line: &mut Vec<u8>| row.write_csv(line),
            ))
            .name("write")
            .uid("write");
            None
        }
        (None, true) => {
            let sink = CollectSink::new();
            let results = sink.results();
            rows.sink(sink).name("write").uid("write");
            Some(results)
        }
        (None, false) => {
            rows.sink(DiscardSink::new()).name("write").uid("write");
            None
        }
    };
    let handle = job.launch(&config)?;
    engine_args::stop_on_signal(&args.engine, &handle);
    let report = handle.join()?;
    engine_args::announce_savepoint(&report);
    print_report(&report, &args, query);
    if let Some(dir) = &checkpoint_dir {
        checkpoint_report::print(&report, dir);
    }

    if args.check {
        let got: Vec<String> = match (&args.output, collected) {
            (Some(dir), _) => output::committed_lines(dir).context("cannot read the output")?,
            (None, Some(results)) => results.take().iter().map(Row::to_csv).collect(),
            (None, None) => unreachable!("--check collects the rows"),
        };
        let events = match &args.input {
            Some(path) => read_events(path)?,
            None => generate(args.events),
        };
        let want: Vec<String> = sequential::run(query, &events)
            .iter()
            .map(Row::to_csv)
            .collect();
        compare(got, want)?;
    }
    Ok(())
}

fn print_report(report: &JobReport, args: &Args, query: Query) {
    let events = report.operator("events").map_or(0, |m| m.records_out);
    let rows = report.operator("write").map_or(0, |m| m.records_in);
    let parallelism = args.engine.parallelism();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cores = parallelism.min(cpus);
    let secs = report.elapsed.as_secs_f64();
    let per_s = events as f64 / secs;
    let from = match &args.input {
        Some(path) => path.display().to_string(),
        None => "generated".to_owned(),
    };
    println!("nexmark {query}: {events} events ({from}), parallelism {parallelism}");
    if let Some(id) = report.restored_from {
        println!("  resumed from checkpoint {id}");
    }
    println!("  rows {rows}, elapsed {secs:.3} s");
    println!(
        "  {:.3} M events/s, {:.3} M events/s per core ({cores} of {cpus} cores)",
        per_s / 1e6,
        per_s / cores as f64 / 1e6
    );
    let cpu = cpu_report::describe(report, events, "event");
    if !cpu.is_empty() {
        println!("  {cpu}");
    }
    println!("  {}", peak_rss::describe());
    let checkpoint_ms = if args.no_checkpoints {
        0
    } else {
        args.engine.checkpoint_interval_ms
    };
    println!(
        "RESULT query={query} events={events} parallelism={parallelism} cores={cores} checkpoint_ms={checkpoint_ms} rows={rows} elapsed_s={secs:.4} events_per_s={per_s:.0} events_per_s_per_core={:.0} checkpoints={}",
        per_s / cores as f64,
        report.checkpoints.len()
    );
}

/// Every event of the file, for the sequential computation.
fn read_events(path: &Path) -> Result<Vec<Event>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open input file {}", path.display()))?;
    let mut events = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        let event = serde_json::from_str(&line).with_context(|| {
            format!("{}: line {} is not a Nexmark event", path.display(), i + 1)
        })?;
        events.push(event);
    }
    Ok(events)
}

fn compare(mut got: Vec<String>, mut want: Vec<String>) -> Result<()> {
    got.sort();
    want.sort();
    if got != want {
        let mut count: std::collections::HashMap<&String, i64> = Default::default();
        for r in &want {
            *count.entry(r).or_default() += 1;
        }
        for r in &got {
            *count.entry(r).or_default() -= 1;
        }
        let missing: Vec<&&String> = count
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(r, _)| r)
            .take(5)
            .collect();
        let extra: Vec<&&String> = count
            .iter()
            .filter(|(_, &n)| n < 0)
            .map(|(r, _)| r)
            .take(5)
            .collect();
        bail!(
            "the result differs from the sequential computation: {} rows, expected {}; missing e.g. {missing:?}; unexpected e.g. {extra:?}",
            got.len(),
            want.len()
        );
    }
    println!("  matches the sequential computation: {} rows", want.len());
    Ok(())
}

/// `--generate-file`: the events as the peer's file has them.
fn write_events(path: &Path, count: u64) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    for event in generator(0, 1).take(count as usize) {
        serde_json::to_writer(&mut out, &event)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {count} events to {}", path.display());
    Ok(())
}
