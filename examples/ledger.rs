//! A double-entry ledger with exactly-once output.
//!
//! ```text
//! cargo run --release --example ledger        # generated workload, report, self-check
//! cargo run --release --example ledger -- --input FILE --output DIR --dead-letter DIR \
//!     --checkpoint-dir DIR [--parallelism N] [--checkpoint-interval-ms MS] [--max-rate R]
//! ```
//!
//! Input lines `id,from,to,amount` (see `support/ledger_model.rs`). Each transfer is
//! de-duplicated by id, split into a debit of `from` and a credit of `to`, and applied to the
//! accounts' balances; every applied entry yields `account<TAB>balance<TAB>version`. Malformed
//! lines and resubmitted ids go to the dead-letter output as `malformed<TAB>line` and
//! `duplicate<TAB>line`.

#[path = "support/checkpoint_log.rs"]
mod checkpoint_log;
#[path = "support/defaults.rs"]
mod defaults;
#[path = "support/graceful.rs"]
mod graceful;
#[path = "support/ledger_job.rs"]
mod ledger_job;
#[path = "support/ledger_model.rs"]
mod ledger_model;
#[path = "support/output.rs"]
mod output;
#[path = "support/progress.rs"]
mod progress;
#[path = "support/rng.rs"]
mod rng;

use anyhow::{bail, Context, Result};
use clap::Parser;
use snapflow::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Checkpoint directory (default: a new directory under the system's temporary one).
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Tasks per operator (default: the number of CPUs).
    #[arg(long)]
    parallelism: Option<usize>,
    /// Time between checkpoints, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    checkpoint_interval_ms: u64,
    /// Limit the source to about this many lines per second.
    #[arg(long)]
    max_rate: Option<u64>,
    /// Print a line on stdout for every completed or aborted checkpoint.
    #[arg(long)]
    log_checkpoints: bool,
    /// Transfers of the generated workload, when there is no --input.
    #[arg(long, default_value_t = 1_000_000)]
    transfers: u64,
    /// Accounts of the generated workload.
    #[arg(long, default_value_t = 10_000)]
    accounts: u64,
}

fn main() {
    if let Err(error) = run(Args::parse()) {
        eprintln!("ledger: error: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let parallelism = defaults::parallelism(args.parallelism);
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let generated = args.input.is_none();
    let input = match &args.input {
        Some(path) => path.clone(),
        None => {
            let path = scratch.path().join("transfers.csv");
            eprintln!(
                "generating {} transfers into {} ...",
                args.transfers,
                path.display()
            );
            std::fs::write(
                &path,
                ledger_model::workload(args.transfers, args.accounts.max(1), 7),
            )
            .with_context(|| format!("cannot write {}", path.display()))?;
            path
        }
    };
    std::fs::metadata(&input)
        .with_context(|| format!("cannot open input file {}", input.display()))?;
    let (output, dead_letter) = match (&args.output, &args.dead_letter) {
        (Some(o), Some(d)) => (o.clone(), d.clone()),
        (None, None) if generated => (
            scratch.path().join("balances"),
            scratch.path().join("dead-letter"),
        ),
        _ => bail!("give both --output and --dead-letter (or neither, with a generated workload)"),
    };
    let checkpoint_dir = defaults::checkpoint_dir(args.checkpoint_dir.clone(), "ledger");

    let job = ledger_job::build(&input, &output, &dead_letter);
    let mut config = JobConfig::default()
        .with_parallelism(parallelism)
        .with_max_rate(args.max_rate)
        .with_checkpointing(
            &checkpoint_dir,
            Duration::from_millis(args.checkpoint_interval_ms),
        );
    if args.log_checkpoints {
        config = checkpoint_log::log_checkpoints(config);
    }
    let handle = job.launch(&config)?;
    graceful::stop_on_signal(handle.stopper());
    let progress = progress::Progress::start(handle.metrics(), "parse", "lines");
    let report = handle.join()?;
    drop(progress);

    if let Some(id) = report.stopped_at {
        println!(
            "ledger: stopped at checkpoint {id}: its output is published; to resume, rerun the same command with --checkpoint-dir {}",
            checkpoint_dir.display()
        );
        return Ok(());
    }
    let transfers = report.operator("dedup").map_or(0, |m| m.records_in);
    let secs = report.elapsed.as_secs_f64();
    println!("ledger  input {}", input.display());
    println!(
        "  parallelism {parallelism}, checkpoints in {}",
        checkpoint_dir.display()
    );
    println!(
        "  {transfers} transfers in {secs:.3} s: {:.2} M transfers/s; {} checkpoints ({} aborted)",
        transfers as f64 / secs / 1e6,
        report.checkpoints.len(),
        report.aborted_checkpoints
    );
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
        let expected = ledger_model::reference(&text);
        if balances != expected.balances {
            bail!("the balances differ from a sequential computation");
        }
        let mut dead = dead;
        dead.sort();
        if dead != expected.dead_letters() {
            bail!("the dead letters differ from a sequential computation");
        }
        println!(
            "  checked against a sequential computation: balances, versions and dead letters match"
        );
    }
    Ok(())
}

/// The committed balance and version of every account: its line with the highest version.
fn latest_balances(dir: &Path) -> Result<HashMap<String, (i128, u64)>> {
    let lines = output::committed_lines(dir)?;
    ledger_model::latest_balances(&lines).map_err(|e| anyhow::anyhow!("{e} in {}", dir.display()))
}
