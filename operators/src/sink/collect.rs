//! A sink that collects records in memory, for tests and small jobs.

use snapflow_engine::{BoxError, Data, Sink, SinkWriter, TaskInfo};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Collects every record it receives into a shared vector (in arrival order per task; the
/// tasks' records interleave).
pub struct CollectSink<T> {
    records: Arc<Mutex<Vec<T>>>,
}

/// Read access to what a [`CollectSink`] collected.
#[derive(Clone)]
pub struct Collected<T> {
    records: Arc<Mutex<Vec<T>>>,
}

impl<T> CollectSink<T> {
    /// An empty collecting sink.
    pub fn new() -> Self {
        CollectSink {
            records: Arc::default(),
        }
    }

    /// A handle to read the results through once the sink has been moved into a job.
    pub fn results(&self) -> Collected<T> {
        Collected {
            records: self.records.clone(),
        }
    }
}

impl<T> Default for CollectSink<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(records: &Mutex<Vec<T>>) -> MutexGuard<'_, Vec<T>> {
    // A task that panicked mid-append leaves a whole batch or none: still worth reading.
    records.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Collected<T> {
    /// Takes everything collected so far.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *lock(&self.records))
    }

    /// How many records were collected so far.
    pub fn len(&self) -> usize {
        lock(&self.records).len()
    }

    /// Whether nothing was collected so far.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Data> Sink<T> for CollectSink<T> {
    fn name(&self) -> String {
        "collect".to_owned()
    }

    fn create_writer(&self, _task: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>, BoxError> {
        Ok(Box::new(CollectWriter {
            records: self.records.clone(),
        }))
    }
}

struct CollectWriter<T> {
    records: Arc<Mutex<Vec<T>>>,
}

impl<T: Data> SinkWriter<T> for CollectWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), BoxError> {
        lock(&self.records).extend(batch);
        Ok(())
    }
}
