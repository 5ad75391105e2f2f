#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! Progress while a long job runs, on stderr: an `indicatif` bar on a terminal (input read,
//! records/s, the last checkpoint), redrawn every second; a plain line every
//! [`PLAIN_EVERY`] otherwise, so that logs and CI output stay readable. stdout is untouched.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snapflow::engine::JobMetrics;
use std::io::IsTerminal;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// Shows the progress of one operator's input until dropped.
pub struct Progress {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What one look at the job says, as text.
fn describe(metrics: &JobMetrics, operator: &str, unit: &str, rate: f64) -> (u64, String) {
    let read = metrics.operator(operator).map_or(0, |m| m.records_in);
    let checkpoint = match metrics.last_checkpoint() {
        Some(c) => format!(
            "checkpoint {} ({:.1} ms, {:.1} MiB)",
            c.id,
            c.duration.as_secs_f64() * 1e3,
            c.bytes as f64 / (1 << 20) as f64
        ),
        None => "no checkpoint yet".to_owned(),
    };
    (
        read,
        format!(
            "{read} {unit} read, {:.2} M {unit}/s, {checkpoint}",
            rate / 1e6
        ),
    )
}

impl Progress {
    /// Reports `operator`'s input, counted in `unit`, out of `total` when it is known.
    pub fn start(
        metrics: JobMetrics,
        operator: &'static str,
        unit: &'static str,
        total: Option<u64>,
    ) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let bar = terminal.then(|| bar(total));
            let started = Instant::now();
            let (mut last, mut last_at, mut last_plain) = (0u64, Instant::now(), Instant::now());
            // Waiting on the channel doubles as the one-second tick and the stop signal.
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_secs(1))
            {
                let now = metrics.operator(operator).map_or(0, |m| m.records_in);
                let rate = now.saturating_sub(last) as f64 / last_at.elapsed().as_secs_f64();
                (last, last_at) = (now, Instant::now());
                let (read, text) = describe(&metrics, operator, unit, rate);
                match &bar {
                    Some(bar) => {
                        bar.set_position(read);
                        bar.set_message(text);
                    }
                    None if last_plain.elapsed() >= PLAIN_EVERY => {
                        eprintln!("progress {:.0} s: {text}", started.elapsed().as_secs_f64());
                        last_plain = Instant::now();
                    }
                    None => {}
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        Progress {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

/// The terminal bar: a bar when the total is known, a spinner otherwise.
fn bar(total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{elapsed_precise} [{bar:30.cyan/blue}] {percent:>3}% {msg}",
        ),
        None => (
            ProgressBar::no_length(),
            "{spinner} {elapsed_precise} {msg}",
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
