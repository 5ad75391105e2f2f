#![allow(dead_code)] // Shared by the examples.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! Defaults the example commands share.

use std::path::PathBuf;

/// The parallelism to use: the one given, or the number of CPUs.
pub fn parallelism(given: Option<usize>) -> usize {
    given.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The checkpoint directory to use: the one given, or a new one under the system's temporary
/// directory (which a rerun does not find: to resume, pass the printed one).
pub fn checkpoint_dir(given: Option<PathBuf>, job: &str) -> PathBuf {
    given.unwrap_or_else(|| {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        std::env::temp_dir().join(format!("snapflow-{job}-{millis}"))
    })
}
