//! Built-in sinks.

mod collect;
mod discard;
pub mod file;

pub use collect::{CollectSink, Collected};
pub use discard::{DiscardCounter, DiscardSink};
pub use file::FileSink;
