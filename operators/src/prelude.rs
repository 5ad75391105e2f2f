//! Everything a job definition usually needs: `use snapflow_operators::prelude::*;`.

pub use crate::connect::CoProcessExt;
pub use crate::filter::FilterExt;
pub use crate::flat_map::FlatMapExt;
pub use crate::map::MapExt;
pub use crate::process::ProcessExt;
pub use crate::reduce::ReduceExt;
pub use crate::sink::{CollectSink, DiscardSink, FileSink};
pub use crate::source::{CollectionSource, GeneratorSource, TextFileSource};
pub use crate::state::{KeyedState, ListState, MapState, TtlValueState, ValueState};
pub use crate::time::{AssignTimestampsExt, ProcessFunctionExt};
pub use crate::window::{Count, WindowExt};
/// A string stored inline up to 24 bytes: words and keys without a heap allocation each.
pub use compact_str::CompactString;
pub use snapflow_engine::{
    BoxError, BuildError, Either, Job, JobConfig, JobError, JobReport, KeyedStream, Output,
    OutputTag, Stream, TaskError, TaskInfo, Timestamp,
};
