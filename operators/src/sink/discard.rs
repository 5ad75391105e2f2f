//! A sink that drops records and only counts them, for benchmarks.

use snapflow_engine::{BoxError, Data, Sink, SinkWriter, TaskInfo};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Drops every record, counting them.
#[derive(Default)]
pub struct DiscardSink {
    count: Arc<AtomicU64>,
}

/// Reads the count of a [`DiscardSink`].
#[derive(Clone)]
pub struct DiscardCounter {
    count: Arc<AtomicU64>,
}

impl DiscardSink {
    /// A discarding sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle on the number of records discarded.
    pub fn counter(&self) -> DiscardCounter {
        DiscardCounter {
            count: self.count.clone(),
        }
    }
}

impl DiscardCounter {
    /// Records discarded so far.
    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl<T: Data> Sink<T> for DiscardSink {
    fn name(&self) -> String {
        "discard".to_owned()
    }

    fn create_writer(&self, _task: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>, BoxError> {
        Ok(Box::new(DiscardWriter {
            count: self.count.clone(),
        }))
    }
}

struct DiscardWriter {
    count: Arc<AtomicU64>,
}

impl<T: Data> SinkWriter<T> for DiscardWriter {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), BoxError> {
        self.count.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
