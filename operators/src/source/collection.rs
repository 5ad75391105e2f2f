//! A source over an in-memory collection.

use crate::source::{index_position, seek_index, share};
use snapflow_engine::{BoxError, Data, ReadStatus, Source, SourcePosition, SourceReader, TaskInfo};
use std::ops::Range;
use std::sync::Arc;

/// Emits the items of a vector; each task emits a contiguous share, in order.
pub struct CollectionSource<T> {
    items: Arc<Vec<T>>,
}

impl<T> CollectionSource<T> {
    /// A source of `items`.
    pub fn new(items: Vec<T>) -> Self {
        CollectionSource {
            items: Arc::new(items),
        }
    }
}

impl<T: Data + Sync> Source for CollectionSource<T> {
    type Out = T;

    fn name(&self) -> String {
        "collection".to_owned()
    }

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<T>>, BoxError> {
        let range = share(self.items.len() as u64, task.index, task.parallelism);
        Ok(Box::new(CollectionReader {
            items: self.items.clone(),
            range: range.start as usize..range.end as usize,
        }))
    }
}

struct CollectionReader<T> {
    items: Arc<Vec<T>>,
    /// The items still to emit.
    range: Range<usize>,
}

impl<T: Data + Sync> SourceReader<T> for CollectionReader<T> {
    fn read_batch(&mut self, batch: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        let end = self.range.end.min(self.range.start + max);
        batch.extend_from_slice(&self.items[self.range.start..end]);
        self.range.start = end;
        Ok(if self.range.is_empty() {
            ReadStatus::Exhausted
        } else {
            ReadStatus::More
        })
    }

    fn position(&self) -> Option<SourcePosition> {
        Some(index_position(self.range.start as u64, "item"))
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        let range = self.range.start as u64..self.range.end as u64;
        self.range.start = seek_index(position, &range)? as usize;
        Ok(())
    }
}
