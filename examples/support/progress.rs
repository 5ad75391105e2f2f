#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! Progress lines on stderr while a long job runs, only when stderr is a terminal.

use snapflow::engine::JobMetrics;
use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Prints the records/s of one operator every second until dropped.
pub struct Progress {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Reports `operator`'s input rate, labelled `unit`, if stderr is a terminal.
    pub fn start(metrics: JobMetrics, operator: &'static str, unit: &'static str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                stop: None,
                thread: None,
            };
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let (mut last, mut last_at) = (0u64, Instant::now());
            // Waiting on the channel doubles as the one-second tick and the stop signal.
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_secs(1))
            {
                let now = metrics.operator(operator).map_or(0, |m| m.records_in);
                let rate = (now - last) as f64 / last_at.elapsed().as_secs_f64();
                eprint!(
                    "\r{:>6.1} s  {now} {unit}  {:.2} M {unit}/s   ",
                    started.elapsed().as_secs_f64(),
                    rate / 1e6
                );
                let _ = std::io::stderr().flush();
                (last, last_at) = (now, Instant::now());
            }
            eprint!("\r{:60}\r", "");
        });
        Progress {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
