#![allow(dead_code)] // Shared by the examples.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! Where a job's CPU time went, per operator, for the throughput reports.

use snapflow::prelude::*;

/// `CPU read 0.31 s, tokenize 1.52 s, ... = 2.9 s, 145 ns per word`: each operator's CPU time
/// summed over its tasks, then the total per record of `records` (empty where the platform
/// does not report thread CPU time).
pub fn describe(report: &JobReport, records: u64, unit: &str) -> String {
    let total: f64 = report
        .operators
        .iter()
        .map(|m| m.cpu_time.as_secs_f64())
        .sum();
    if total == 0.0 {
        return String::new();
    }
    let parts: Vec<String> = report
        .operators
        .iter()
        .map(|m| format!("{} {:.2} s", m.name, m.cpu_time.as_secs_f64()))
        .collect();
    format!(
        "CPU {} = {total:.2} s, {:.0} ns per {unit}",
        parts.join(", "),
        total * 1e9 / records.max(1) as f64
    )
}
