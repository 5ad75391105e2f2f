//! Helpers shared by the integration tests: bounded waits and multisets.

// Each test binary uses only some of these.
#![allow(dead_code)]

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// The longest any test waits for a job; a job that takes longer is taken to hang.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `f` on its own thread and returns its result, failing the test if it does not finish
/// within [`TIMEOUT`]. A panic in `f` is passed on to the caller.
pub fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(value) => value,
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not finish within {TIMEOUT:?}"),
    }
}

/// How often each item occurs.
pub fn multiset<T: Hash + Eq>(items: impl IntoIterator<Item = T>) -> HashMap<T, usize> {
    let mut counts = HashMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}
