#![allow(dead_code)] // Shared by the examples.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! The command-line options every example job shares: how the engine runs it.

use super::bounds::{usize_in, MAX_CHECKPOINT_INTERVAL_MS, MAX_PARALLELISM, MAX_RATE};
use super::checkpoint_log;
use snapflow::engine::{CrashPoint, FailureInjector, JobHandle};
use snapflow::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Parallelism, checkpointing and channel options, flattened into each example's arguments.
#[derive(clap::Args, Debug)]
pub struct EngineArgs {
    /// Tasks per operator (default: the number of CPUs, at most 128).
    #[arg(long, value_parser = usize_in(MAX_PARALLELISM))]
    pub parallelism: Option<usize>,
    /// Checkpoint directory (default: a new directory under the system's temporary one,
    /// printed in the report). Running again with the same directory resumes.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Time between checkpoints, in milliseconds.
    #[arg(long, default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=MAX_CHECKPOINT_INTERVAL_MS))]
    pub checkpoint_interval_ms: u64,
    /// Limit the sources to about this many lines per second.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_RATE))]
    pub max_rate: Option<u64>,
    /// Records per batch on every channel (default: the engine's, 2048).
    #[arg(long, value_parser = usize_in(JobConfig::MAX_BATCH_SIZE as u64))]
    pub batch_size: Option<usize>,
    /// Batches a channel holds before its sender waits (default: the engine's).
    #[arg(long, value_parser = usize_in(JobConfig::MAX_CHANNEL_CAPACITY as u64))]
    pub channel_capacity: Option<usize>,
    /// Print a line on stdout for every completed or aborted checkpoint.
    #[arg(long)]
    pub log_checkpoints: bool,
    /// Resume even if the checkpoint holds state of operators this job no longer has (by
    /// uid): that state is dropped, with a warning naming each operator.
    #[arg(long)]
    pub allow_non_restored_state: bool,
    /// Serve a live view of the job (page at /, JSON under /api/, Prometheus at /metrics) on
    /// this address, e.g. 127.0.0.1:8081 (port 0: a free port, printed on stderr). Off by
    /// default.
    #[arg(long, value_name = "ADDR")]
    pub web: Option<String>,
    /// Run every operator task on a thread of its own (`JobConfig::with_chaining(false)`):
    /// for comparing against the default, where forward edges between equal parallelisms
    /// chain operators into one thread.
    #[arg(long)]
    pub no_chaining: bool,
    /// Ctrl-C or SIGTERM stops the job with a savepoint in this directory (Flink's
    /// stop-with-savepoint): a last checkpoint, its output published, copied whole into DIR
    /// (new or empty). Start a job from it with --from-savepoint DIR.
    #[arg(long, value_name = "DIR")]
    pub savepoint_dir: Option<PathBuf>,
    /// Start from the savepoint in DIR, into a checkpoint directory that holds no checkpoint
    /// yet (once it has its own, a rerun resumes from those); any --parallelism. The
    /// savepoint is only read.
    #[arg(long, value_name = "DIR")]
    pub from_savepoint: Option<PathBuf>,
    /// Write every checkpoint in full (`JobConfig::with_incremental_checkpoints(false)`);
    /// by default a keyed operator's snapshot holds only the keys changed since its previous
    /// one, unless the environment variable SNAPFLOW_INCREMENTAL_CHECKPOINTS is off.
    #[arg(long)]
    pub no_incremental_checkpoints: bool,
    /// Abort the process at the N-th time the job reaches POINT, for the chaos driver:
    /// `snapshot-write` (half a snapshot file written) or `retention-delete` (an old
    /// checkpoint's manifest deleted, its files not yet).
    #[arg(long, value_name = "POINT:N", value_parser = parse_crash_point)]
    pub crash_at: Option<(CrashPoint, u64)>,
}

/// Parses `--crash-at POINT:N`.
fn parse_crash_point(text: &str) -> Result<(CrashPoint, u64), String> {
    let (point, nth) = text
        .split_once(':')
        .ok_or_else(|| format!("expected POINT:N, got {text:?}"))?;
    let point = match point {
        "snapshot-write" => CrashPoint::SnapshotWrite,
        "retention-delete" => CrashPoint::RetentionDelete,
        other => {
            return Err(format!(
                "unknown crash point {other:?} (snapshot-write or retention-delete)"
            ))
        }
    };
    let nth: u64 = nth
        .parse()
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| format!("N in {text:?} must be a number from 1"))?;
    Ok((point, nth))
}

impl EngineArgs {
    /// The parallelism to run with: the one given, or the number of CPUs.
    pub fn parallelism(&self) -> usize {
        let cpus = super::defaults::parallelism(self.parallelism);
        cpus.min(MAX_PARALLELISM as usize)
    }

    /// The job configuration these options ask for, checkpointing into `checkpoint_dir`
    /// (`None`: no periodic checkpoints).
    pub fn config(&self, checkpoint_dir: Option<&Path>) -> JobConfig {
        let mut config = JobConfig::default()
            .with_parallelism(self.parallelism())
            .with_max_rate(self.max_rate)
            .with_allow_non_restored_state(self.allow_non_restored_state)
            .with_chaining(!self.no_chaining);
        if self.no_incremental_checkpoints {
            // Without the flag, SNAPFLOW_INCREMENTAL_CHECKPOINTS decides (on when unset).
            config = config.with_incremental_checkpoints(false);
        }
        if let Some((point, nth)) = self.crash_at {
            config =
                config.with_failure_injector(FailureInjector::new().abort_process_at(point, nth));
        }
        if let Some(dir) = checkpoint_dir {
            config =
                config.with_checkpointing(dir, Duration::from_millis(self.checkpoint_interval_ms));
        }
        if let Some(records) = self.batch_size {
            config = config.with_batch_size(records);
        }
        if let Some(batches) = self.channel_capacity {
            config = config.with_channel_capacity(batches);
        }
        if let Some(dir) = &self.from_savepoint {
            config = config.with_savepoint_restore(dir);
        }
        if let Some(addr) = &self.web {
            config = config.with_web(addr.clone());
        }
        if self.log_checkpoints {
            config = checkpoint_log::log_checkpoints(config);
        }
        config
    }
}

/// Tells on stderr where the job's web view listens, if it is on (tools read this line to
/// find a port chosen by the system).
pub fn announce_web(handle: &JobHandle) {
    if let Some(addr) = handle.web_addr() {
        eprintln!("web view at http://{addr}/");
    }
}

/// Makes Ctrl-C and SIGTERM stop the job gracefully, with a savepoint when `--savepoint-dir`
/// asks for one.
pub fn stop_on_signal(engine: &EngineArgs, handle: &JobHandle) {
    super::graceful::stop_on_signal(handle.stopper(), engine.savepoint_dir.clone());
}

/// Tells where the savepoint the job stopped with is, and how to start from it.
pub fn announce_savepoint(report: &JobReport) {
    if let Some(savepoint) = &report.savepoint {
        println!(
            "  savepoint of checkpoint {} written to {}; start a job from it with --from-savepoint {} and a new --checkpoint-dir",
            savepoint.checkpoint,
            savepoint.dir.display(),
            savepoint.dir.display()
        );
    }
}
