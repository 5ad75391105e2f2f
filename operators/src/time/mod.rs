//! Event time: timestamps, watermarks, timers, and the operators built on them.
//!
//! A stream gets event time from [`assign_timestamps_and_watermarks`], which takes a
//! [`WatermarkStrategy`]: a function that reads each record's timestamp, and a rule for the
//! watermark (Flink's bounded out-of-orderness: `max_seen - d - 1`). The stream then carries
//! the timestamp function along (no timestamp is stored next to records, so jobs without
//! event time pay nothing) and windows and process functions downstream call it.
//!
//! Watermarks are part of every checkpoint: the generator's state (the largest timestamp seen,
//! where the next emission falls) and every event-time operator's current watermark. So after
//! recovery an event that was late before the crash is late again, and a window that fired is
//! not fired again by replayed data.
//!
//! [`assign_timestamps_and_watermarks`]: AssignTimestampsExt::assign_timestamps_and_watermarks

mod assign;
mod clock;
mod generator;
mod process_function;
mod source;
mod strategy;
#[cfg(test)]
pub(crate) mod test_support;
pub(crate) mod timers;

pub use assign::AssignTimestampsExt;
pub use clock::{system_clock, ManualClock, ProcessingClock};
pub use generator::BoundedOutOfOrderness;
pub use process_function::{
    Context, KeyedProcessFunction, ProcessFunctionExt, TimeDomain, TimerService,
};
pub use source::SourceWatermarksExt;
pub use strategy::{WatermarkStrategy, DEFAULT_EMIT_INTERVAL};
pub use timers::time_state_summary;
