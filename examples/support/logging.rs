#![allow(dead_code)] // Shared by the examples.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! The examples' log output: the engine logs through `tracing` and never installs a
//! subscriber itself; the examples install one that writes to stderr, filtered by `RUST_LOG`
//! (default: warnings and errors only).

use anyhow::{anyhow, Result};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the stderr subscriber, filtered by `RUST_LOG` or else `warn`.
///
/// # Errors
/// When `RUST_LOG` is set but is not a valid filter (the error names it).
pub fn init() -> Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec)
            // The parser's message already names its cause: one line, not a chain.
            .map_err(|e| anyhow!("RUST_LOG={spec:?} is not a valid log filter: {e}"))?,
        _ => EnvFilter::new("warn"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}
