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
    }
}
