//! snapflow: a Flink-style stream processing engine with exactly-once state and output.
//!
//! A job is a DAG of operators built with a chaining API; each operator runs as `parallelism`
//! OS threads connected by bounded channels. Start with the [`prelude`]:
//!
//! ```
//! use snapflow::prelude::*;
//!
//! let job = Job::new("wordcount");
//! let counts = CollectSink::new();
//! let results = counts.results();
//! job.source(CollectionSource::new(vec!["to be or".to_string(), "not to be".to_string()]))
//!     .flat_map(|line: String| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
//!     .key_by(|word: &String| word.clone())
//!     .process(|_, word: String, count: &mut ValueState<u64>, out: &mut Output<(String, u64)>| {
//!         let n = count.get().copied().unwrap_or(0) + 1;
//!         count.set(n);
//!         out.push((word, n));
//!         Ok(())
//!     })
//!     .sink(counts);
//! job.run(&JobConfig::default().with_parallelism(2)).unwrap();
//! let mut got = results.take();
//! got.sort();
//! assert_eq!(got[..2], [("be".to_string(), 1), ("be".to_string(), 2)]);
//! ```
//!
//! The crates behind it: [`engine`] (graph, builder, runtime), [`operators`] (operators,
//! sources, sinks) and [`checkpoint`] (checkpoint ids, key groups).

pub use snapflow_checkpoint as checkpoint;
pub use snapflow_engine as engine;
pub use snapflow_kafka as kafka;
pub use snapflow_operators as operators;
pub use snapflow_postgres as postgres;

/// Everything a job definition usually needs.
pub mod prelude {
    pub use snapflow_operators::prelude::*;
}

/// The README's code blocks, compiled as doctests so that its example cannot drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
