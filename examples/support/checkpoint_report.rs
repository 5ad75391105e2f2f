#![allow(dead_code)] // Shared by the examples.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! The checkpoint part of the examples' reports: counts, durations, sizes.

use snapflow::engine::CheckpointStats;
use snapflow::prelude::*;
use std::path::Path;
use std::time::Duration;

/// Prints how many checkpoints completed and aborted (in `dir`), their mean and longest
/// duration, the last one's size, and the longest alignment and task-thread snapshot.
pub fn print(report: &JobReport, dir: &Path) {
    let periodic: Vec<_> = report.checkpoints.iter().filter(|c| !c.is_final).collect();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let max = |f: fn(&CheckpointStats) -> Duration| {
        report.checkpoints.iter().map(f).max().unwrap_or_default()
    };
    println!(
        "  checkpoints: {} completed ({} periodic + final), {} aborted, in {}",
        report.checkpoints.len(),
        periodic.len(),
        report.aborted_checkpoints,
        dir.display()
    );
    if let Some(last) = report.checkpoints.last() {
        let mean = if periodic.is_empty() {
            0.0
        } else {
            periodic.iter().map(|c| ms(c.duration)).sum::<f64>() / periodic.len() as f64
        };
        println!(
            "  checkpoint duration mean {mean:.1} ms (periodic), max {:.1} ms; last size {} bytes",
            ms(max(|c| c.duration)),
            last.bytes
        );
        println!(
            "  longest alignment {:.2} ms, longest snapshot on a task thread {:.2} ms",
            ms(max(|c| c.longest_alignment)),
            ms(max(|c| c.longest_sync_snapshot))
        );
        // Each checkpoint's figure is its slowest task's, so the p99 is over checkpoints.
        let mut blocked: Vec<Duration> = report
            .checkpoints
            .iter()
            .map(|c| c.longest_sync_snapshot)
            .collect();
        let mut bytes: Vec<u64> = periodic.iter().map(|c| c.bytes).collect();
        let mut durations: Vec<Duration> = periodic.iter().map(|c| c.duration).collect();
        println!(
            "  task thread blocked by a snapshot: max {:.2} ms, p99 {:.2} ms (over {} checkpoints)",
            ms(percentile(&mut blocked, 100.0)),
            ms(percentile(&mut blocked, 99.0)),
            blocked.len()
        );
        if let Some(first) = periodic.first() {
            println!(
                "  bytes per periodic checkpoint: first {}, median {}, max {}; duration median {:.1} ms, p99 {:.1} ms",
                first.bytes,
                percentile(&mut bytes, 50.0),
                percentile(&mut bytes, 100.0),
                ms(percentile(&mut durations, 50.0)),
                ms(percentile(&mut durations, 99.0)),
            );
        }
    }
}

/// The `p`-th percentile (nearest rank) of `values`, sorting them; the default for none.
pub fn percentile<T: Ord + Copy + Default>(values: &mut [T], p: f64) -> T {
    if values.is_empty() {
        return T::default();
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// How long a resumed run took, from the process's start, to process its first record and
/// to complete its first checkpoint.
pub fn print_recovery(
    report: &JobReport,
    started: (std::time::Instant, std::time::SystemTime),
    first_record: Option<std::time::Instant>,
) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let first_record = first_record
        .map(|at| format!("{:.1} ms", ms(at.duration_since(started.0))))
        .unwrap_or_else(|| "none".to_owned());
    let first_checkpoint = report
        .checkpoints
        .first()
        .and_then(|c| (c.triggered_at + c.duration).duration_since(started.1).ok())
        .map(|d| format!("{:.1} ms", ms(d)))
        .unwrap_or_else(|| "none".to_owned());
    println!(
        "  recovery: first record counted {first_record}, first checkpoint completed {first_checkpoint} after the process started"
    );
}
