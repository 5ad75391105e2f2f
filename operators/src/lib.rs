//! Operators, sources and sinks for snapflow jobs.
//!
//! Operators are extension traits on the engine's [`Stream`](snapflow_engine::Stream) and
//! [`KeyedStream`](snapflow_engine::KeyedStream), one per file, each a thin wrapper over the
//! engine's generic one- and two-input constructors. Import them all with the [`prelude`].
//!
//! ```
//! use snapflow_operators::prelude::*;
//!
//! let job = Job::new("squares");
//! let sink = CollectSink::new();
//! let results = sink.results();
//! job.source(GeneratorSource::new(5, |i| i))
//!     .map(|i| i * i)
//!     .filter(|sq| sq % 2 == 0)
//!     .sink(sink);
//! job.run(&JobConfig::default()).unwrap();
//! let mut squares = results.take();
//! squares.sort();
//! assert_eq!(squares, vec![0, 4, 16]);
//! ```

//!
//! Event time is in [`time`] (watermark strategies, timestamp assigners, keyed process
//! functions with timers) and [`window`] (Flink's window assigners and functions).

mod connect;
mod error;
mod filter;
mod flat_map;
mod keyed_store;
mod map;
mod pending_groups;
pub mod prelude;
mod process;
mod reduce;
pub mod sink;
pub mod source;
mod state;
pub mod testing;
pub mod text;
pub mod time;
pub mod window;

pub use connect::CoProcessExt;
pub use error::{SinkError, SourceError};
pub use filter::FilterExt;
pub use flat_map::FlatMapExt;
pub use map::MapExt;
pub use process::{ProcessExt, StateKey};
pub use reduce::ReduceExt;
pub use state::{KeyedState, KeyedStore, ListState, MapState, TtlValueState, ValueState};
