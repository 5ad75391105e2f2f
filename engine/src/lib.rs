//! The snapflow engine: job graph, builder API and threaded runtime.
//!
//! A [`Job`] is a DAG of operators built through [`Stream`]s. Running it expands every operator
//! into `parallelism` tasks, one OS thread each, connected by bounded channels that carry
//! [`Message`]s: batches of records and in-band control (barriers, watermarks, end-of-stream).
//! A full channel blocks its sender, which is the backpressure. Edges are partitioned
//! [`Forward`](Partitioning::Forward), by key ([`Hash`](Partitioning::Hash), through key
//! groups), [`Rebalance`](Partitioning::Rebalance) or [`Broadcast`](Partitioning::Broadcast).
//!
//! A task that fails or panics stops the whole job: its channel ends are dropped, its
//! neighbours see the disconnect and stop as well, and `run` returns
//! [`JobError::TaskFailed`] naming the first task that failed for a reason of its own.
//!
//! The operators users chain (`map`, `filter`, `process`, ...) live in `snapflow-operators`,
//! as extension traits over [`Stream::unary`], [`KeyedStream::keyed_unary`] and their
//! two-input counterparts.
//!
//! Event time: a [`Stream`] may carry a [`TimestampAssigner`] (no per-record timestamp is
//! stored); watermarks travel in band as [`Message::Watermark`], a task's watermark is the
//! minimum over its inputs that have neither ended nor gone [`Message::Idle`], and an input
//! that ended counts as [`Timestamp::MAX`]. Operators see watermarks in
//! [`UnaryOperator::on_watermark`], may emit their own ([`Output::emit_watermark`]) and ask
//! for processing-time callbacks ([`UnaryOperator::next_processing_time`]). Side outputs are
//! [`OutputTag`]s. Windows, timers and watermark strategies live in `snapflow-operators`.
//!
//! [`testing`] drives a single operator instance outside a job: records, watermarks and
//! snapshots in, output out, and restore of another instance from the snapshot.

mod builder;
mod config;
mod config_env;
mod contract;
mod coordinator;
mod data;
mod error;
mod error_chain;
mod frozen;
mod graph;
mod id;
mod inject;
mod message;
mod metrics;
mod operator;
pub mod ownership;
mod partition;
mod router;
mod runtime;
mod shared;
pub mod side_output;
pub mod sink_state;
pub mod testing;
mod web;

pub use builder::{
    ConnectedKeyedStreams, Job, KeySelector, KeyedStream, SinkStream, Stream, TimestampAssigner,
};
pub use config::{CheckpointConfig, JobConfig, INCREMENTAL_CHECKPOINTS_ENV};
pub use contract::restart::RestartStrategy;
pub use contract::restored::{RestoredState, SharedPayload};
pub use contract::stats::{CheckpointEvent, CheckpointStats};
pub use coordinator::savepoint::Savepoint;
pub use data::{Data, Either, Key};
pub use error::{BoxError, BuildError, JobError, TaskError, Unavailable};
pub use error_chain::ErrorChain;
pub use frozen::{FrozenSnapshot, SerializeFrozen, SnapshotRequest};
pub use id::{OperatorId, TaskId};
pub use inject::CrashPoint;
pub use inject::FailureInjector;
pub use message::{Message, Timestamp};
pub use metrics::{JobMetrics, OperatorMetrics};
pub use operator::{
    BinaryOperator, Committer, OperatorLifecycle, ReadStatus, Sink, SinkWriter, Source,
    SourcePosition, SourceReader, TaskInfo, UnaryOperator,
};
pub use partition::Partitioning;
pub use router::Output;
pub use runtime::task::now_millis;
pub use runtime::{JobHandle, JobReport, JobStopper};
pub use side_output::{OutputTag, Tagged};
pub use snapflow_checkpoint::{CheckpointId, KeyGroup, KeyGroupRange, SavepointError};
