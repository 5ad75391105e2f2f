//! How a job runs: parallelism, batching, channel sizes, rate limit.

pub use crate::config_env::INCREMENTAL_CHECKPOINTS_ENV;
use crate::contract::restart::RestartStrategy;
use crate::contract::stats::CheckpointEvent;
use crate::error::BuildError;
use crate::inject::FailureInjector;
use crossbeam_channel::Sender;
use snapflow_checkpoint::DEFAULT_MAX_PARALLELISM;
use std::path::PathBuf;
use std::time::Duration;

/// Where and how often a job takes checkpoints.
#[derive(Clone, Debug)]
pub struct CheckpointConfig {
    /// The job's checkpoint directory.
    pub dir: PathBuf,
    /// Time between the end of one checkpoint and the trigger of the next.
    pub interval: Duration,
    /// A checkpoint not complete this long after its trigger is aborted (default 60 s).
    pub timeout: Duration,
    /// Completed checkpoints kept on disk (default 3); older ones are deleted.
    pub retained: usize,
}

/// Settings for one run of a job. Start from `JobConfig::default()` and adjust with the
/// `with_*` methods.
#[derive(Clone, Debug)]
pub struct JobConfig {
    pub(crate) parallelism: usize,
    pub(crate) max_parallelism: u32,
    pub(crate) batch_size: usize,
    pub(crate) channel_capacity: usize,
    pub(crate) max_rate: Option<u64>,
    pub(crate) checkpoint: Option<CheckpointConfig>,
    checkpoint_timeout: Duration,
    retained: usize,
    pub(crate) listener: Option<Sender<CheckpointEvent>>,
    pub(crate) restart: RestartStrategy,
    pub(crate) injector: FailureInjector,
    pub(crate) allow_non_restored_state: bool,
    pub(crate) savepoint_restore: Option<PathBuf>,
    pub(crate) web: Option<String>,
    pub(crate) chaining: bool,
    /// `None`: as [`INCREMENTAL_CHECKPOINTS_ENV`] says, on when it is unset.
    pub(crate) incremental: Option<bool>,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            parallelism: 1,
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            batch_size: 2048,
            channel_capacity: 16,
            max_rate: None,
            checkpoint: None,
            checkpoint_timeout: Duration::from_secs(60),
            retained: snapflow_checkpoint::DEFAULT_RETAINED,
            listener: None,
            restart: RestartStrategy::None,
            injector: FailureInjector::default(),
            allow_non_restored_state: false,
            savepoint_restore: None,
            web: None,
            chaining: true,
            incremental: None,
        }
    }
}

impl JobConfig {
    /// Whether operators may be chained into one thread (default true; see the README's
    /// "Operator chaining"). Off, every operator task runs on a thread of its own, as
    /// Flink's `disableOperatorChaining`. Checkpoints are compatible either way.
    pub fn with_chaining(mut self, chaining: bool) -> Self {
        self.chaining = chaining;
        self
    }

    /// Whether checkpoints are incremental (default true): a keyed operator's snapshot then
    /// holds only the keys that changed since its previous completed snapshot and builds on
    /// it, until its chain reaches 32 files or its deltas half the full snapshot they apply to,
    /// when it writes a full snapshot again. Off, every snapshot is full. Checkpoints of either
    /// kind restore into a job of either setting.
    /// Without this call the environment variable [`INCREMENTAL_CHECKPOINTS_ENV`]
    /// (`SNAPFLOW_INCREMENTAL_CHECKPOINTS=off`) decides; this call wins over it.
    pub fn with_incremental_checkpoints(mut self, incremental: bool) -> Self {
        self.incremental = Some(incremental);
        self
    }

    /// This configuration with every default that the environment sets decided (today
    /// whether checkpoints are incremental, see [`INCREMENTAL_CHECKPOINTS_ENV`]): read once
    /// when a job starts, so every task of an attempt sees the same setting.
    ///
    /// # Errors
    /// [`BuildError::InvalidEnvironment`] if a variable holds a value it cannot have.
    pub(crate) fn with_environment_defaults(&self) -> Result<JobConfig, BuildError> {
        let mut config = self.clone();
        if config.incremental.is_none() {
            config.incremental = Some(crate::config_env::from_process()?);
        }
        Ok(config)
    }

    /// Whether checkpoints are incremental: as set, else as the environment says (on when it
    /// says nothing valid; [`with_environment_defaults`](Self::with_environment_defaults)
    /// refuses an invalid value before a job starts).
    pub(crate) fn incremental(&self) -> bool {
        self.incremental
            .unwrap_or_else(|| crate::config_env::from_process().unwrap_or(true))
    }

    /// Parallelism of every operator that does not set its own (default 1).
    pub fn with_parallelism(mut self, parallelism: usize) -> Self {
        self.parallelism = parallelism;
        self
    }

    /// Number of key groups (default 128, at most [`JobConfig::MAX_KEY_GROUPS`]): the upper
    /// bound on any operator's parallelism, fixed for the lifetime of a job's checkpoints.
    pub fn with_max_parallelism(mut self, max_parallelism: u32) -> Self {
        self.max_parallelism = max_parallelism;
        self
    }

    /// Records per batch on every channel (default 2048, at most
    /// [`JobConfig::MAX_BATCH_SIZE`]). A batch is sent when it is full, or
    /// earlier when the sending task would otherwise wait for input.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Batches a channel holds before its sender blocks (default 16, at most
    /// [`JobConfig::MAX_CHANNEL_CAPACITY`]): the backpressure bound.
    pub fn with_channel_capacity(mut self, batches: usize) -> Self {
        self.channel_capacity = batches;
        self
    }

    /// Limit all sources together to about this many records per second (default: no limit).
    pub fn with_max_rate(mut self, records_per_second: Option<u64>) -> Self {
        self.max_rate = records_per_second;
        self
    }

    /// Takes a checkpoint every `interval` into `dir` (default: no periodic checkpoints). The
    /// interval must lie between [`JobConfig::MIN_CHECKPOINT_TIME`] and
    /// [`JobConfig::MAX_CHECKPOINT_TIME`].
    ///
    /// Without checkpoints a job still publishes its exactly-once sinks' output once, when it
    /// ends; with them, after every completed checkpoint.
    pub fn with_checkpointing(mut self, dir: impl Into<PathBuf>, interval: Duration) -> Self {
        self.checkpoint = Some(CheckpointConfig {
            dir: dir.into(),
            interval,
            timeout: self.checkpoint_timeout,
            retained: self.retained,
        });
        self
    }

    /// Aborts a checkpoint not complete this long after its trigger (default 60 s, between
    /// [`JobConfig::MIN_CHECKPOINT_TIME`] and [`JobConfig::MAX_CHECKPOINT_TIME`]; the final
    /// checkpoint has no timeout).
    pub fn with_checkpoint_timeout(mut self, timeout: Duration) -> Self {
        self.checkpoint_timeout = timeout;
        if let Some(c) = &mut self.checkpoint {
            c.timeout = timeout;
        }
        self
    }

    /// Keeps this many completed checkpoints (default 3).
    pub fn with_retained_checkpoints(mut self, retained: usize) -> Self {
        self.retained = retained;
        if let Some(c) = &mut self.checkpoint {
            c.retained = retained;
        }
        self
    }

    /// Sends every completed and aborted checkpoint to `listener`, as it happens (the final
    /// checkpoint included, also without periodic checkpointing). The coordinator never waits
    /// for the listener: use an unbounded channel, or events that do not fit are dropped.
    pub fn with_checkpoint_listener(mut self, listener: Sender<CheckpointEvent>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Restarts a failed job from its latest checkpoint, as `strategy` says (default: never).
    pub fn with_restart_strategy(mut self, strategy: RestartStrategy) -> Self {
        self.restart = strategy;
        self
    }

    /// Injects the failures of `injector` into the job's tasks (for tests and chaos runs).
    pub fn with_failure_injector(mut self, injector: FailureInjector) -> Self {
        self.injector = injector;
        self
    }

    /// Lets the job resume from a checkpoint holding state of operators it no longer has
    /// (default: refused). State is matched to operators by uid: an operator the checkpoint
    /// does not know starts empty (except a source, which is always refused); with this on,
    /// the state of an operator whose uid is gone is skipped, with a warning naming it, instead
    /// of refusing the restore.
    pub fn with_allow_non_restored_state(mut self, allow: bool) -> Self {
        self.allow_non_restored_state = allow;
        self
    }

    /// Starts the job from the savepoint in `dir` (Flink's `--fromSavepoint`), written by
    /// [`JobStopper::stop_with_savepoint`](crate::JobStopper::stop_with_savepoint) or
    /// [`JobHandle::trigger_savepoint`](crate::JobHandle::trigger_savepoint), when the job's
    /// checkpoint directory holds no checkpoint yet; once it does, the job resumes from its own
    /// checkpoints, as any rerun. The savepoint is only read, never written, so it can start
    /// any number of jobs; give each a new checkpoint directory. State maps onto operators by
    /// uid as for a checkpoint (see
    /// [`with_allow_non_restored_state`](Self::with_allow_non_restored_state)), at any
    /// parallelism: keyed state by key group, and sources that can (the text file source)
    /// reassign their splits; others are refused. A missing, incomplete or damaged savepoint,
    /// or an input that changed since, is refused before anything runs.
    pub fn with_savepoint_restore(mut self, dir: impl Into<PathBuf>) -> Self {
        self.savepoint_restore = Some(dir.into());
        self
    }

    /// Serves a live view of the running job on `addr` (e.g. `127.0.0.1:8081`; port 0 picks
    /// a free port, which [`JobHandle::web_addr`](crate::JobHandle::web_addr) tells): a page
    /// at `/`, JSON at `/api/job`, `/api/metrics` and `/api/checkpoints`, and Prometheus
    /// metrics at `/metrics`. Off by default; nothing listens unless this is set. The server
    /// lives as long as the job's handle (under a restart strategy, each attempt binds the
    /// address again).
    pub fn with_web(mut self, addr: impl Into<String>) -> Self {
        self.web = Some(addr.into());
        self
    }

    /// The address the web view is to listen on, if it is on.
    pub fn web(&self) -> Option<&str> {
        self.web.as_deref()
    }

    /// The checkpoint settings, if checkpointing is on.
    pub fn checkpoint(&self) -> Option<&CheckpointConfig> {
        self.checkpoint.as_ref()
    }

    /// The default operator parallelism.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// The number of key groups.
    pub fn max_parallelism(&self) -> u32 {
        self.max_parallelism
    }

    /// Records per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The largest batch size, in records: a batch is allocated whole.
    pub const MAX_BATCH_SIZE: usize = 1 << 20;
    /// The largest channel capacity, in batches.
    pub const MAX_CHANNEL_CAPACITY: usize = 1 << 16;
    /// The largest max parallelism (number of key groups).
    pub const MAX_KEY_GROUPS: u32 = 1 << 15;
    /// The longest checkpoint interval, and the longest checkpoint timeout: one day.
    pub const MAX_CHECKPOINT_TIME: Duration = Duration::from_secs(24 * 60 * 60);
    /// The shortest checkpoint interval and timeout.
    pub const MIN_CHECKPOINT_TIME: Duration = Duration::from_millis(1);

    /// Checks every setting against its range.
    ///
    /// # Errors
    /// [`BuildError::SettingOutOfRange`] naming the first setting out of range, with its
    /// bounds; [`BuildError::InvalidConfig`] for a max rate of 0 or no retained checkpoint.
    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        let bad = |what: String| Err(BuildError::InvalidConfig(what));
        // `usize` to `u128` is lossless.
        let size = |n: usize| n as u128;
        in_range(
            "max parallelism",
            u128::from(self.max_parallelism),
            1,
            u128::from(Self::MAX_KEY_GROUPS),
        )?;
        in_range(
            "batch size",
            size(self.batch_size),
            1,
            size(Self::MAX_BATCH_SIZE),
        )?;
        in_range(
            "channel capacity",
            size(self.channel_capacity),
            1,
            size(Self::MAX_CHANNEL_CAPACITY),
        )?;
        if self.max_rate == Some(0) {
            return bad("max rate must be at least 1 record per second".into());
        }
        if let Some(c) = &self.checkpoint {
            let millis = |d: Duration| d.as_millis();
            let (min, max) = (
                millis(Self::MIN_CHECKPOINT_TIME),
                millis(Self::MAX_CHECKPOINT_TIME),
            );
            // Compared as durations, so that 0.5 ms is refused although it rounds to 0 ms
            // like 0 does, and reported in milliseconds.
            let check = |setting, d: Duration| {
                if d < Self::MIN_CHECKPOINT_TIME || d > Self::MAX_CHECKPOINT_TIME {
                    let value = millis(d);
                    return Err(BuildError::SettingOutOfRange {
                        setting,
                        value,
                        min,
                        max,
                    });
                }
                Ok(())
            };
            check("checkpoint interval (ms)", c.interval)?;
            check("checkpoint timeout (ms)", c.timeout)?;
            if c.retained == 0 {
                return bad("at least one completed checkpoint must be retained".into());
            }
        }
        Ok(())
    }
}

/// `Ok` if `min <= value <= max`, else [`BuildError::SettingOutOfRange`] naming `setting`.
fn in_range(setting: &'static str, value: u128, min: u128, max: u128) -> Result<(), BuildError> {
    if value < min || value > max {
        return Err(BuildError::SettingOutOfRange {
            setting,
            value,
            min,
            max,
        });
    }
    Ok(())
}
