#![allow(dead_code)] // Shared by the examples.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! The process's peak resident set size, for the throughput reports.

/// The peak resident set size in bytes (`VmHWM` of `/proc/self/status`), or `None` where that
/// file does not exist (not Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `peak RSS 42.0 MiB`, or `peak RSS unknown`.
pub fn describe() -> String {
    match peak_rss_bytes() {
        Some(bytes) => format!("peak RSS {:.1} MiB", bytes as f64 / (1024.0 * 1024.0)),
        None => "peak RSS unknown".to_owned(),
    }
}
