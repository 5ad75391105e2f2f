//! Clicks per user per event-time window, with late and malformed input in a second output.
//!
//! ```text
//! cargo run --release --example clicks        # generated clicks, checked against a sequential run
//! cargo run --release --example clicks -- --input F --output DIR --late DIR --checkpoint-dir DIR \
//!     [--window tumbling:W | sliding:W:S | session:G] [--out-of-orderness-ms D] \
//!     [--parallelism N] [--checkpoint-interval-ms MS] [--max-rate R]
//! ```
//!
//! Input lines `timestamp_ms,user,page`; blank lines are ignored; malformed ones go to the
//! late output as `malformed<TAB>line`. Output: `user<TAB>window_start<TAB>window_end<TAB>count`
//! per fired window (session windows: first event to last event + gap); late events go to
//! the late output as `late<TAB>line`. Watermarks: bounded out-of-orderness D (default
//! 5000 ms), allowed lateness 0. Both outputs are exactly-once file sinks; rerunning with the
//! same --checkpoint-dir resumes.

#[path = "support/bounds.rs"]
mod bounds;
#[path = "support/checkpoint_log.rs"]
mod checkpoint_log;
#[path = "support/checkpoint_report.rs"]
mod checkpoint_report;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/clicks_job.rs"]
mod clicks_job;
#[path = "support/defaults.rs"]
mod defaults;
#[path = "support/engine_args.rs"]
mod engine_args;
#[path = "support/graceful.rs"]
mod graceful;
#[path = "support/output.rs"]
mod output;
#[path = "support/rng.rs"]
mod rng;

use anyhow::{bail, Context, Result};
use clap::Parser;
use clicks_job::WindowKind;
use std::path::PathBuf;

/// Clicks per user per event-time window.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Input file of `timestamp_ms,user,page` lines. Without it, clicks are generated and
    /// the result is checked against a sequential computation.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output directory for the window counts.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Output directory for late and malformed lines.
    #[arg(long)]
    late: Option<PathBuf>,
    /// tumbling:W, sliding:W:S or session:G, in milliseconds.
    #[arg(long, default_value = "tumbling:60000")]
    window: WindowKind,
    /// Bounded out-of-orderness of the watermarks, ms.
    #[arg(long, default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000_000_000))]
    out_of_orderness_ms: u64,
    /// Clicks to generate without --input.
    #[arg(long, default_value_t = 200_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    clicks: u64,
    #[command(flatten)]
    engine: engine_args::EngineArgs,
}

fn main() {
    cli::exit_on_error("clicks", run(Args::parse()));
}

fn run(args: Args) -> Result<()> {
    let checkpoint_dir = defaults::checkpoint_dir(args.engine.checkpoint_dir.clone(), "clicks");
    let config = args.engine.config(Some(&checkpoint_dir));
    let d = args.out_of_orderness_ms;
    match (&args.input, &args.output, &args.late) {
        (Some(input), Some(output), Some(late)) => {
            cli::check_input(input)?;
            let job = clicks_job::build(input, output, late, args.window, d);
            let handle = job.launch(&config)?;
            engine_args::stop_on_signal(&args.engine, &handle);
            let report = handle.join()?;
            engine_args::announce_savepoint(&report);
            print_report(&report, &args, input);
            checkpoint_report::print(&report, &checkpoint_dir);
            Ok(())
        }
        (None, None, None) => self_check(&args, &config),
        _ => bail!("--input, --output and --late go together (or give none of them to run a generated self-check)"),
    }
}

fn print_report(report: &snapflow::prelude::JobReport, args: &Args, input: &std::path::Path) {
    let clicks = report.operator("watermarks").map_or(0, |m| m.records_in);
    let windows = report.operator("write").map_or(0, |m| m.records_in);
    let late = report.operator("write-late").map_or(0, |m| m.records_in);
    println!("clicks  input {}", input.display());
    if let Some(id) = report.restored_from {
        println!("  resumed from checkpoint {id}");
    }
    println!(
        "  window {}, out-of-orderness {} ms, parallelism {}",
        args.window,
        args.out_of_orderness_ms,
        args.engine.parallelism()
    );
    println!("  clicks {clicks}, windows emitted {windows}, late or malformed lines {late}");
    let secs = report.elapsed.as_secs_f64();
    println!(
        "  elapsed {secs:.3} s, {:.2} M clicks/s",
        clicks as f64 / secs / 1e6
    );
}

/// No arguments: generate clicks, run, and compare with the sequential computation.
fn self_check(args: &Args, config: &snapflow::prelude::JobConfig) -> Result<()> {
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let input = scratch.path().join("clicks.txt");
    let (output, late) = (scratch.path().join("out"), scratch.path().join("late"));
    let text = clicks_job::generate(args.clicks, 1);
    std::fs::write(&input, &text).context("cannot write the generated clicks")?;
    eprintln!("generated {} clicks into {}", args.clicks, input.display());
    let job = clicks_job::build(
        &input,
        &output,
        &late,
        args.window,
        args.out_of_orderness_ms,
    );
    let report = job.run(config)?;
    print_report(&report, args, &input);
    let got = output::committed_lines(&output).context("cannot read the output")?;
    let got_late = output::committed_lines(&late).context("cannot read the late output")?;
    clicks_job::check_final(&text, args.window, args.out_of_orderness_ms, got, got_late)
        .map_err(|e| anyhow::anyhow!("the result differs from the sequential computation: {e}"))?;
    let want = clicks_job::expected(&text, args.window, args.out_of_orderness_ms);
    println!(
        "  matches the sequential computation: {} windows, {} late or malformed lines",
        want.windows.len(),
        want.late.len()
    );
    Ok(())
}
