#![allow(dead_code)] // Shared by the examples; each uses part of it.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! Bounds of the examples' numeric options, checked by clap as it parses them, so that an
//! option out of range is refused with a message naming the option and its bounds.

use snapflow::prelude::JobConfig;

/// The largest `--parallelism`: the engine's default max parallelism (number of key groups),
/// which the examples keep.
pub const MAX_PARALLELISM: u64 = snapflow::checkpoint::DEFAULT_MAX_PARALLELISM as u64;
/// The longest `--checkpoint-interval-ms`: the engine's longest interval, one day.
pub const MAX_CHECKPOINT_INTERVAL_MS: u64 = JobConfig::MAX_CHECKPOINT_TIME.as_millis() as u64;
/// The largest `--max-rate`, in records per second.
pub const MAX_RATE: u64 = 1_000_000_000;

/// A parser of `usize` options in `1..=max`: clap's error names the option and its bounds.
pub fn usize_in(max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=max)
}
