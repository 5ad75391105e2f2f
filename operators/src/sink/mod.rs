//! Built-in sinks.

mod collect;
mod discard;
mod file;

pub use collect::{CollectSink, Collected};
pub use discard::{DiscardCounter, DiscardSink};
pub use file::FileSink;
