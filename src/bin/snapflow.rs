//! `snapflow`: inspect a job's checkpoint directory.
//!
//! ```text
//! snapflow checkpoints DIR   list checkpoints: id, state, time, duration, size, source offsets;
//!                            exit status 1 if any is corrupt
//! snapflow verify DIR [--output OUT]...
//!                            check every file's integrity, and each file sink output directory
//!                            against the latest checkpoint; exit status 1 naming what is wrong
//! snapflow savepoint DIR TARGET [--checkpoint ID]
//!                            copy the newest complete checkpoint of a stopped job (or ID) into a
//!                            new savepoint TARGET, for `--from-savepoint` / `with_savepoint_restore`
//! ```

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use snapflow::checkpoint::{
    write_savepoint, CheckpointId, CheckpointState, CheckpointStatus, CheckpointStore, Manifest,
};
use snapflow::operators::sink::file::{check_output, decode_records};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about = "Inspect snapflow checkpoint directories")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the checkpoints in DIR, oldest first.
    Checkpoints {
        /// A job's checkpoint directory.
        dir: PathBuf,
    },
    /// Check the integrity of every checkpoint in DIR, and that each output directory agrees
    /// with the latest checkpoint (what a rerun would resume from); exit status 1 if anything
    /// is corrupt or inconsistent.
    Verify {
        /// A job's checkpoint directory.
        dir: PathBuf,
        /// An output directory of one of the job's file sinks (repeat for several).
        #[arg(long = "output", value_name = "OUT")]
        outputs: Vec<PathBuf>,
    },
    /// Copy a complete checkpoint of DIR (the newest, or --checkpoint ID) into a new savepoint
    /// in TARGET (new or empty), verifying every file; start a job from it with
    /// `--from-savepoint TARGET`. For a job that is not running (a running one may delete the
    /// checkpoint while it is copied: the copy then fails, and an incomplete savepoint is
    /// never used).
    Savepoint {
        /// A job's checkpoint directory.
        dir: PathBuf,
        /// The new savepoint's directory.
        target: PathBuf,
        /// The checkpoint to copy (default: the newest complete one).
        #[arg(long, value_name = "ID")]
        checkpoint: Option<u64>,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Checkpoints { dir } => list(&dir),
        Command::Verify { dir, outputs } => verify(&dir, &outputs),
        Command::Savepoint {
            dir,
            target,
            checkpoint,
        } => savepoint(&dir, &target, checkpoint.map(CheckpointId)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("snapflow: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn open(dir: &Path) -> Result<(CheckpointStore, Vec<CheckpointStatus>)> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let store =
        CheckpointStore::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let statuses = store
        .scan()
        .with_context(|| format!("cannot read checkpoints in {}", dir.display()))?;
    Ok((store, statuses))
}

fn savepoint(dir: &Path, target: &Path, checkpoint: Option<CheckpointId>) -> Result<ExitCode> {
    let (store, statuses) = open(dir)?;
    let id = match checkpoint {
        Some(id) => id,
        None => statuses
            .iter()
            .rev()
            .find(|s| s.state == CheckpointState::Complete)
            .map(|s| s.id)
            .with_context(|| format!("{} holds no complete checkpoint", dir.display()))?,
    };
    let manifest = write_savepoint(&store, id, target).with_context(|| {
        format!(
            "cannot write a savepoint of checkpoint {id} into {}",
            target.display()
        )
    })?;
    println!(
        "savepoint of checkpoint {id} ({} snapshot files, {} bytes) written to {}",
        manifest.snapshots.len(),
        manifest.total_bytes(),
        target.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn list(dir: &Path) -> Result<ExitCode> {
    let (store, statuses) = open(dir)?;
    if statuses.is_empty() {
        println!("no checkpoints in {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>6}  {:<11}  {:<20}  {:>9}  {:>11}  {:<16}  source offsets",
        "id", "state", "completed (UTC)", "duration", "size", "builds on"
    );
    for status in &statuses {
        let manifest = match status.state {
            CheckpointState::Complete => Some(store.load_manifest(status.id)?),
            _ => None,
        };
        let state = match &status.state {
            CheckpointState::Complete => "complete",
            CheckpointState::InProgress => "in progress",
            CheckpointState::Corrupt { .. } => "CORRUPT",
        };
        match (&manifest, &status.state) {
            (Some(m), _) => println!(
                "{:>6}  {state:<11}  {:<20}  {:>6} ms  {:>11}  {:<16}  {}",
                status.id.0,
                utc(m.completed_at_ms),
                m.completed_at_ms.saturating_sub(m.triggered_at_ms),
                m.total_bytes(),
                chain(m),
                offsets(m)
            ),
            (None, CheckpointState::Corrupt { reason }) => {
                println!("{:>6}  {state:<11}  {reason}", status.id.0)
            }
            (None, _) => println!("{:>6}  {state:<11}", status.id.0),
        }
    }
    let corrupt = statuses
        .iter()
        .filter(|s| matches!(s.state, CheckpointState::Corrupt { .. }))
        .count();
    if corrupt > 0 {
        eprintln!(
            "snapflow: {corrupt} corrupt checkpoint(s) in {} (details: snapflow verify {})",
            dir.display(),
            dir.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(dir: &Path, outputs: &[PathBuf]) -> Result<ExitCode> {
    let (store, statuses) = open(dir)?;
    let mut corrupt = 0;
    for status in &statuses {
        match &status.state {
            CheckpointState::Complete => {
                let m = store.load_manifest(status.id)?;
                let restore_bytes: u64 = m.snapshots.iter().map(|e| e.chain_bytes()).sum();
                println!(
                    "checkpoint {}: ok ({}; a restore reads {restore_bytes} bytes)",
                    status.id,
                    match chain(&m).as_str() {
                        "-" => "full".to_owned(),
                        on => format!("incremental, builds on checkpoints {on}"),
                    }
                )
            }
            CheckpointState::InProgress => {
                println!(
                    "checkpoint {}: incomplete (no manifest; never restored)",
                    status.id
                )
            }
            CheckpointState::Corrupt { reason } => {
                corrupt += 1;
                println!("checkpoint {}: CORRUPT: {reason}", status.id);
            }
        }
    }
    let inconsistent = verify_outputs(&store, outputs)?;
    if corrupt > 0 {
        eprintln!(
            "snapflow: {corrupt} corrupt checkpoint(s) in {}",
            dir.display()
        );
    }
    if inconsistent > 0 {
        eprintln!("snapflow: {inconsistent} output directory(ies) disagree with the checkpoints");
    }
    if corrupt > 0 || inconsistent > 0 {
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "{} checkpoint(s) checked in {}, none corrupt",
        statuses.len(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Checks each output directory against the latest complete checkpoint, as a rerun would;
/// returns how many disagree.
fn verify_outputs(store: &CheckpointStore, outputs: &[PathBuf]) -> Result<usize> {
    if outputs.is_empty() {
        return Ok(0);
    }
    let (_, manifest) = store
        .latest()
        .context("cannot find the latest checkpoint")?;
    // The file sinks' records among the latest checkpoint's snapshots.
    let mut snapshots = Vec::new();
    if let Some(manifest) = &manifest {
        for entry in &manifest.snapshots {
            let snapshot = store
                .open_snapshot(manifest, entry)
                .with_context(|| format!("cannot read snapshot {}", entry.file))?;
            if decode_records(snapshot.payload()).is_some() {
                snapshots.push(snapshot);
            }
        }
    }
    let payloads: Vec<&[u8]> = snapshots.iter().map(|s| s.payload()).collect();
    let restored = manifest
        .as_ref()
        .map(|m| (m.checkpoint, payloads.as_slice()));
    let mut inconsistent = 0;
    for out in outputs {
        if !out.is_dir() {
            bail!("{} is not a directory", out.display());
        }
        match check_output(out, restored) {
            Ok(check) => println!(
                "output {}: consistent with {} ({} checkpoint(s) published; a rerun publishes {:?} and discards {:?})",
                out.display(),
                manifest
                    .as_ref()
                    .map_or("a fresh start".to_owned(), |m| format!("checkpoint {}", m.checkpoint)),
                check.published.len(),
                ids(&check.to_publish),
                ids(&check.to_discard),
            ),
            Err(e) => {
                inconsistent += 1;
                println!("output {}: INCONSISTENT: {e}", out.display());
            }
        }
    }
    Ok(inconsistent)
}

/// The checkpoints `m`'s incremental snapshots build on, e.g. "3,4", or "-" for none.
fn chain(m: &Manifest) -> String {
    let referenced = m.referenced_checkpoints();
    if referenced.is_empty() {
        return "-".to_owned();
    }
    referenced
        .iter()
        .map(|id| id.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn ids(ids: &[CheckpointId]) -> Vec<u64> {
    ids.iter().map(|id| id.0).collect()
}

fn offsets(m: &Manifest) -> String {
    let parts: Vec<String> = m
        .source_offsets
        .iter()
        .map(|o| format!("{}#{}: {}", o.operator_uid, o.task, o.description))
        .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join("; ")
    }
}

/// `YYYY-MM-DD HH:MM:SS` for milliseconds since the Unix epoch (UTC), by Howard Hinnant's
/// days-to-civil algorithm, to avoid a date crate for one column.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_334_112_227), "2026-11-22 07:55:12");
    }
}
