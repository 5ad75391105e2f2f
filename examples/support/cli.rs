#![allow(dead_code)] // Shared by the examples.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! What every example command does around its work: the exit on error, and the early check
//! that an input file can be opened.

use anyhow::{Context, Result};
use std::path::Path;

/// Ends the command: on an error, prints `<command>: error: ` and the error chain on one line
/// to stderr and exits 1.
pub fn exit_on_error(command: &str, result: Result<()>) {
    if let Err(error) = result {
        eprintln!("{command}: error: {error:#}");
        std::process::exit(1);
    }
}

/// Refuses an `input` that cannot be opened before a job is built, naming the file.
///
/// # Errors
/// The file's metadata cannot be read (missing, no permission).
pub fn check_input(input: &Path) -> Result<()> {
    std::fs::metadata(input)
        .with_context(|| format!("cannot open input file {}", input.display()))?;
    Ok(())
}
