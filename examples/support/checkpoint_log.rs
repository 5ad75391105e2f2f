#![allow(dead_code)] // Shared by the examples.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! `--log-checkpoints`: one stdout line per completed or aborted checkpoint, for tools (the
//! chaos driver measures recovery time from them) and curious people.

use snapflow::engine::CheckpointEvent;
use snapflow::prelude::*;
use std::io::Write;

/// Adds a listener to `config` that prints `checkpoint N complete` / `checkpoint N aborted`
/// lines on stdout as they happen.
pub fn log_checkpoints(config: JobConfig) -> JobConfig {
    let (events, received) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        // Ends when the job's config, and with it the sender, is dropped.
        for event in received {
            let line = match event {
                CheckpointEvent::Completed(stats) => format!("checkpoint {} complete", stats.id),
                CheckpointEvent::Aborted { id, reason } => {
                    format!("checkpoint {id} aborted: {reason}")
                }
            };
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    });
    config.with_checkpoint_listener(events)
}
