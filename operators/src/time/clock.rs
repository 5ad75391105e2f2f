//! Processing time, as operators read it: injectable, so that tests of processing-time
//! windows and timers set the time rather than sleep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Reads processing time, in milliseconds since the Unix epoch.
pub type ProcessingClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock: what jobs use unless a test injects another.
pub fn system_clock() -> ProcessingClock {
    Arc::new(snapflow_engine::now_millis)
}

/// A clock that a test sets by hand.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `now`.
    pub fn new(now: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(now)))
    }

    /// Sets the time.
    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// The time.
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// The clock as operators take it.
    pub fn clock(&self) -> ProcessingClock {
        let time = self.0.clone();
        Arc::new(move || time.load(Ordering::SeqCst))
    }
}
