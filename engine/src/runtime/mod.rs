//! The physical side: tasks on threads, channels between them, and the handle of a running
//! job.
//!
//! Data path: a source task reads a batch, its [`Output`] routes records into per-destination
//! buffers and sends full batches over bounded channels; the receiving task's input gate
//! reads its channels and hands batches to the operator, whose output repeats the cycle.
//! Operators chained into one thread (see [`chain`]) skip the channel: an output batch is
//! handed to the next operator of the chain by a call.

pub(crate) mod align;
pub(crate) mod chain;
pub(crate) mod chained;
pub(crate) mod factory;
pub(crate) mod gate;
pub(crate) mod handle;
pub(crate) mod physical;
pub(crate) mod plan;
pub(crate) mod prepare;
pub(crate) mod restore;
pub(crate) mod resume;
pub(crate) mod snapshot;
pub(crate) mod task;

pub use handle::{JobHandle, JobReport, JobStopper};
