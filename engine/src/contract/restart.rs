//! What to do when a job attempt fails: restart it from its latest checkpoint, or give up.

use crate::error::JobError;
use std::time::Duration;

/// When and how often a failed job is restarted (each restart resumes from the latest
/// completed checkpoint).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RestartStrategy {
    /// Never restart: `run` returns the first failure (the default).
    #[default]
    None,
    /// Restart up to `attempts` times, waiting `delay` before each.
    FixedDelay {
        /// Restarts allowed.
        attempts: u32,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restart up to `attempts` times, waiting `initial`, then twice as long each time, at
    /// most `max`.
    ExponentialBackoff {
        /// Restarts allowed.
        attempts: u32,
        /// Wait before the first restart.
        initial: Duration,
        /// The longest wait.
        max: Duration,
    },
}

impl RestartStrategy {
    /// How long to wait before restart number `restart` (1 for the first), or `None` when no
    /// restart is left.
    pub fn delay(&self, restart: u32) -> Option<Duration> {
        match *self {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                (restart <= attempts).then_some(delay)
            }
            RestartStrategy::ExponentialBackoff {
                attempts,
                initial,
                max,
            } => (restart <= attempts).then(|| {
                let factor = 2u32.saturating_pow(restart.saturating_sub(1).min(31));
                initial.saturating_mul(factor).min(max)
            }),
        }
    }
}

/// Whether restarting from the latest checkpoint can help: failures of tasks, of checkpoint
/// storage or of publishing, but not an invalid job, a cancel, or a checkpoint directory that
/// cannot be resumed from (those would fail the same way again).
pub(crate) fn is_restartable(error: &JobError) -> bool {
    match error {
        JobError::TaskFailed { .. }
        | JobError::Checkpoint(_)
        | JobError::CommitFailed { .. }
        | JobError::FinalCheckpointFailed { .. }
        | JobError::CoordinatorPanicked(_) => true,
        // A database or broker that is down now may be back by the next attempt.
        JobError::SinkOpenFailed { source } => source.is::<crate::error::Unavailable>(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_delay_allows_its_attempts() {
        let s = RestartStrategy::FixedDelay {
            attempts: 2,
            delay: Duration::from_millis(5),
        };
        assert_eq!(s.delay(1), Some(Duration::from_millis(5)));
        assert_eq!(s.delay(2), Some(Duration::from_millis(5)));
        assert_eq!(s.delay(3), None);
        assert_eq!(RestartStrategy::None.delay(1), None);
    }

    #[test]
    fn exponential_backoff_doubles_up_to_its_maximum() {
        let s = RestartStrategy::ExponentialBackoff {
            attempts: 6,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(70),
        };
        let delays: Vec<_> = (1..=7).map(|r| s.delay(r).map(|d| d.as_millis())).collect();
        assert_eq!(
            delays,
            [
                Some(10),
                Some(20),
                Some(40),
                Some(70),
                Some(70),
                Some(70),
                None
            ]
        );
    }
}
