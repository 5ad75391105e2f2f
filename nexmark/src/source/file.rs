//! The file source: the JSON-lines event file of `../shared/peers/nexmark_gen.sh`.

use super::split_watermark;
use crate::event::{event_time, Event};
use serde::{Deserialize, Serialize};
use snapflow_engine::{
    BoxError, ReadStatus, Source, SourcePosition, SourceReader, TaskInfo, Timestamp,
};
use snapflow_operators::source::TextFileSource;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What is wrong with an event file.
#[derive(Debug, thiserror::Error)]
pub enum NexmarkFileError {
    /// A line is not a Nexmark event.
    #[error("{path}: line {line} is not a Nexmark event ({message})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line's number, from 1.
        line: u64,
        /// What the JSON parser said.
        message: String,
    },
    /// A checkpointed position that this source did not write.
    #[error("{path}: {description:?} is not a position of the Nexmark file source")]
    NotAPosition {
        /// The file.
        path: PathBuf,
        /// The position's description.
        description: String,
    },
    /// Reading the file to number a malformed line failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Reads a file of Nexmark events, one JSON object per line (`{"Person":{...}}`,
/// `{"Auction":{...}}` or `{"Bid":{...}}`, the `nexmark` crate's serde form).
///
/// The lines are read by a [`TextFileSource`], so the file is split by byte range over the
/// tasks, each line is read exactly once, and a rerun refuses a file that changed. Each task
/// generates its own watermark (its largest event time minus 4 s and 1 ms), kept in its
/// position with the number of lines it has read. A line that is not an event fails the
/// job, naming the file and the line.
pub struct NexmarkFileSource {
    path: Arc<Path>,
    lines: TextFileSource,
}

impl NexmarkFileSource {
    /// A source of the events in the file at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        NexmarkFileSource {
            path: path.as_ref().into(),
            lines: TextFileSource::new(path),
        }
    }
}

/// A file reader's position: its line reader's, plus its own.
#[derive(Serialize, Deserialize)]
struct FilePosition {
    lines: Vec<u8>,
    lines_description: String,
    lines_read: u64,
    max_seen: Option<u64>,
}

impl FilePosition {
    fn decode(path: &Path, position: &SourcePosition) -> Result<Self, NexmarkFileError> {
        bincode::deserialize(&position.offset).map_err(|_| NexmarkFileError::NotAPosition {
            path: path.to_path_buf(),
            description: position.description.clone(),
        })
    }

    fn lines_position(&self) -> SourcePosition {
        SourcePosition {
            offset: self.lines.clone(),
            description: self.lines_description.clone(),
        }
    }
}

impl Source for NexmarkFileSource {
    type Out = Event;

    fn name(&self) -> String {
        "nexmark-file".to_owned()
    }

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<Event>>, BoxError> {
        Ok(Box::new(FileReader {
            path: self.path.clone(),
            lines: self.lines.create_reader(task)?,
            buffer: Vec::new(),
            index: task.index,
            parallelism: task.parallelism,
            lines_read: 0,
            max_seen: None,
        }))
    }

    fn verify_restore(&self, positions: &[SourcePosition]) -> Result<(), BoxError> {
        let mut lines = Vec::with_capacity(positions.len());
        for position in positions {
            lines.push(FilePosition::decode(&self.path, position)?.lines_position());
        }
        self.lines.verify_restore(&lines)
    }
}

struct FileReader {
    path: Arc<Path>,
    lines: Box<dyn SourceReader<String>>,
    buffer: Vec<String>,
    index: usize,
    parallelism: usize,
    /// Lines this task has read since the start of its split.
    lines_read: u64,
    max_seen: Option<u64>,
}

impl FileReader {
    /// The number of the `k`-th line of this task's split (from 0), counted only on the error
    /// path: the lines before the split's first line are the newlines before its start
    /// (the split rule of the line reader: a line belongs to the task whose byte range holds
    /// its first byte).
    fn line_number(&self, k: u64) -> Result<u64, NexmarkFileError> {
        let io = |source| NexmarkFileError::Io {
            path: self.path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(&self.path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let start = (u128::from(len) * self.index as u128 / self.parallelism as u128) as u64;
        let mut before = 0;
        if start > 0 {
            // Line starts before `start`: byte 0, and every byte after a newline at < start - 1.
            let mut prefix = BufReader::new(file).take(start - 1);
            before = 1;
            loop {
                let chunk = prefix.fill_buf().map_err(io)?;
                if chunk.is_empty() {
                    break;
                }
                before += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
                let n = chunk.len();
                prefix.consume(n);
            }
        }
        Ok(before + k + 1)
    }
}

impl SourceReader<Event> for FileReader {
    fn read_batch(&mut self, batch: &mut Vec<Event>, max: usize) -> Result<ReadStatus, BoxError> {
        self.buffer.clear();
        let status = self.lines.read_batch(&mut self.buffer, max)?;
        batch.reserve(self.buffer.len());
        for (i, line) in self.buffer.iter().enumerate() {
            match serde_json::from_str::<Event>(line) {
                Ok(event) => {
                    let t = event_time(&event);
                    self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
                    batch.push(event);
                }
                Err(e) => {
                    return Err(NexmarkFileError::Malformed {
                        path: self.path.to_path_buf(),
                        line: self.line_number(self.lines_read + i as u64)?,
                        message: e.to_string(),
                    }
                    .into())
                }
            }
        }
        self.lines_read += self.buffer.len() as u64;
        Ok(status)
    }

    fn position(&self) -> Option<SourcePosition> {
        let lines = self.lines.position()?;
        let description = format!(
            "{} ({} events of this split)",
            lines.description, self.lines_read
        );
        let position = FilePosition {
            lines: lines.offset,
            lines_description: lines.description,
            lines_read: self.lines_read,
            max_seen: self.max_seen,
        };
        Some(SourcePosition {
            offset: bincode::serialize(&position).ok()?,
            description,
        })
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        let position = FilePosition::decode(&self.path, position)?;
        self.lines.seek(&position.lines_position())?;
        self.lines_read = position.lines_read;
        self.max_seen = position.max_seen;
        Ok(())
    }

    fn notify_checkpoint_complete(
        &mut self,
        checkpoint: snapflow_engine::CheckpointId,
    ) -> Result<(), BoxError> {
        self.lines.notify_checkpoint_complete(checkpoint)
    }

    fn watermark(&mut self) -> Option<Timestamp> {
        split_watermark(self.max_seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::generate;
    use std::io::Write;

    fn task(index: usize, parallelism: usize) -> TaskInfo {
        crate::source::test_task("nexmark-file", index, parallelism)
    }

    fn read_all(path: &Path, p: usize) -> Result<Vec<Event>, BoxError> {
        let source = NexmarkFileSource::new(path);
        let mut all = Vec::new();
        for i in 0..p {
            let mut r = source.create_reader(&task(i, p))?;
            while r.read_batch(&mut all, 5)? == ReadStatus::More {}
        }
        Ok(all)
    }

    /// The generator's events as the JSON lines of the peer's file (the crate's serde form).
    fn file_of(events: &[Event]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for e in events {
            writeln!(f, "{}", serde_json::to_string(e).unwrap()).unwrap();
        }
        f
    }

    #[test]
    fn every_event_once_at_any_parallelism() {
        let events = generate(300);
        let f = file_of(&events);
        for p in 1..=4 {
            assert_eq!(read_all(f.path(), p).unwrap(), events, "p={p}");
        }
    }

    #[test]
    fn a_malformed_line_is_named_with_its_number() {
        let events = generate(40);
        let mut f = file_of(&events[..25]);
        writeln!(f, "{{\"Bid\":{{\"auction\":1}}}}").unwrap();
        for e in &events[25..] {
            writeln!(f, "{}", serde_json::to_string(e).unwrap()).unwrap();
        }
        for p in 1..=3 {
            let err = read_all(f.path(), p).unwrap_err();
            let err = err.downcast::<NexmarkFileError>().unwrap();
            match *err {
                NexmarkFileError::Malformed { line, ref path, .. } => {
                    assert_eq!(line, 26, "p={p}");
                    assert_eq!(path, f.path());
                }
                ref other => panic!("p={p}: {other}"),
            }
        }
    }

    #[test]
    fn a_reader_resumes_with_its_watermark() {
        let events = generate(200);
        let f = file_of(&events);
        let source = NexmarkFileSource::new(f.path());
        let mut r = source.create_reader(&task(1, 2)).unwrap();
        let mut first = Vec::new();
        r.read_batch(&mut first, 30).unwrap();
        let (position, watermark) = (r.position().unwrap(), r.watermark());
        assert!(watermark.is_some());
        let mut rest = Vec::new();
        while r.read_batch(&mut rest, 30).unwrap() == ReadStatus::More {}
        source
            .verify_restore(std::slice::from_ref(&position))
            .unwrap();
        let mut again = source.create_reader(&task(1, 2)).unwrap();
        again.seek(&position).unwrap();
        assert_eq!(again.watermark(), watermark);
        let mut replay = Vec::new();
        while again.read_batch(&mut replay, 30).unwrap() == ReadStatus::More {}
        assert_eq!(replay, rest);
    }
}
