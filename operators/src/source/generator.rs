//! A deterministic generator source.

use crate::source::{index_position, seek_index, share};
use snapflow_engine::{BoxError, Data, ReadStatus, Source, SourcePosition, SourceReader, TaskInfo};
use std::ops::Range;
use std::sync::Arc;

/// Emits `f(0), f(1), ..., f(count - 1)`; each task emits a contiguous range of indices, in
/// order. Record `i` depends on `i` alone, so any part of the sequence can be produced again
/// (which is what replay after a failure needs).
pub struct GeneratorSource<T> {
    count: u64,
    f: Arc<dyn Fn(u64) -> T + Send + Sync>,
}

impl<T> GeneratorSource<T> {
    /// A source of `count` records made by `f`.
    pub fn new(count: u64, f: impl Fn(u64) -> T + Send + Sync + 'static) -> Self {
        GeneratorSource {
            count,
            f: Arc::new(f),
        }
    }
}

impl<T: Data> Source for GeneratorSource<T> {
    type Out = T;

    fn name(&self) -> String {
        "generator".to_owned()
    }

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<T>>, BoxError> {
        Ok(Box::new(GeneratorReader {
            f: self.f.clone(),
            range: share(self.count, task.index, task.parallelism),
        }))
    }
}

struct GeneratorReader<T> {
    f: Arc<dyn Fn(u64) -> T + Send + Sync>,
    /// The indices still to emit.
    range: Range<u64>,
}

impl<T: Data> SourceReader<T> for GeneratorReader<T> {
    fn read_batch(&mut self, batch: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        let end = self.range.end.min(self.range.start + max as u64);
        batch.extend((self.range.start..end).map(|i| (self.f)(i)));
        self.range.start = end;
        Ok(if self.range.is_empty() {
            ReadStatus::Exhausted
        } else {
            ReadStatus::More
        })
    }

    fn position(&self) -> Option<SourcePosition> {
        Some(index_position(self.range.start, "record"))
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        self.range.start = seek_index(position, &self.range)?;
        Ok(())
    }
}
