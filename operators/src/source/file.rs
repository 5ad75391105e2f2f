//! A source of the lines of one text file, split over tasks by byte range.

use crate::error::SourceError;
use crate::source::{seek_index, share};
use snapflow_engine::{BoxError, ReadStatus, Source, SourcePosition, SourceReader, TaskInfo};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

/// Emits every line of a UTF-8 text file as a `String`, without its line ending (`\n` or
/// `\r\n`); a last line without a final newline is a line too.
///
/// The file is split into one byte range per task. A line belongs to the task whose range holds
/// its first byte, so each line is read exactly once, whatever the parallelism (the Hadoop
/// `TextInputFormat` rule). A line that is not valid UTF-8 fails the job with an error naming
/// the file and the line number.
pub struct TextFileSource {
    path: Arc<Path>,
}

impl TextFileSource {
    /// A source of the lines of the file at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        TextFileSource {
            path: path.as_ref().into(),
        }
    }
}

impl Source for TextFileSource {
    type Out = String;

    fn name(&self) -> String {
        "read-text-file".to_owned()
    }

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<String>>, BoxError> {
        Ok(Box::new(TextFileReader::open(
            self.path.clone(),
            task.index,
            task.parallelism,
        )?))
    }
}

/// Reads the lines that start in one byte range of a file.
pub(crate) struct TextFileReader {
    path: Arc<Path>,
    reader: BufReader<File>,
    /// Byte offset of the next line to read.
    pos: u64,
    /// Where this task's first line starts.
    start: u64,
    /// Lines starting at or after this offset belong to the next task.
    end: u64,
    line: Vec<u8>,
}

impl TextFileReader {
    pub(crate) fn open(
        path: Arc<Path>,
        index: usize,
        parallelism: usize,
    ) -> Result<Self, SourceError> {
        let file = File::open(&path).map_err(|source| SourceError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let read_error = |source| SourceError::Read {
            path: path.to_path_buf(),
            source,
        };
        let len = file.metadata().map_err(read_error)?.len();
        let range = share(len, index, parallelism);
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut pos = range.start;
        if range.start > 0 {
            // Skip the line that started in the previous range. Starting one byte early also
            // handles a range that begins exactly at a line start: then only the preceding
            // `\n` is skipped.
            reader
                .seek(SeekFrom::Start(range.start - 1))
                .map_err(read_error)?;
            let mut skipped = Vec::new();
            pos = range.start - 1
                + reader.read_until(b'\n', &mut skipped).map_err(read_error)? as u64;
        }
        Ok(TextFileReader {
            path,
            reader,
            pos,
            start: pos,
            end: range.end,
            line: Vec::new(),
        })
    }

    fn read_error(&self, source: std::io::Error) -> SourceError {
        SourceError::Read {
            path: self.path.to_path_buf(),
            source,
        }
    }

    /// The bytes of the next line without its line ending, advancing `pos` past it; `None` at
    /// the end of the file. A line that lies whole in the read buffer (the usual case) is copied
    /// once, straight into a vector of its exact length.
    fn next_line(&mut self) -> Result<Option<Vec<u8>>, SourceError> {
        // Not `self.read_error`: the buffer borrows `self.reader`, so borrow only the path.
        let buffered = self.reader.fill_buf().map_err(|source| SourceError::Read {
            path: self.path.to_path_buf(),
            source,
        })?;
        if buffered.is_empty() {
            return Ok(None);
        }
        // Only a `\r` before a `\n` is part of the line ending: a last line without `\n`
        // keeps its trailing `\r`, as `str::lines` does.
        let (mut bytes, ended) = match memchr::memchr(b'\n', buffered) {
            Some(newline) => {
                let bytes = buffered[..newline].to_vec();
                self.reader.consume(newline + 1);
                self.pos += newline as u64 + 1;
                (bytes, true)
            }
            None => {
                // The line continues past the buffer (or is the last one, without `\n`).
                self.line.clear();
                let n = self
                    .reader
                    .read_until(b'\n', &mut self.line)
                    .map_err(|e| self.read_error(e))?;
                self.pos += n as u64;
                match self.line.strip_suffix(b"\n") {
                    Some(text) => (text.to_vec(), true),
                    None => (self.line.clone(), false),
                }
            }
        };
        if ended && bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        Ok(Some(bytes))
    }

    /// The 1-based number of the line starting at byte `offset`: counted only on the error
    /// path, so the data path never tracks line numbers.
    fn line_number_at(&self, offset: u64) -> Result<u64, SourceError> {
        let file = File::open(&self.path).map_err(|e| self.read_error(e))?;
        let mut prefix = BufReader::with_capacity(1 << 20, file).take(offset);
        let mut newlines = 0u64;
        loop {
            let chunk = prefix.fill_buf().map_err(|e| self.read_error(e))?;
            if chunk.is_empty() {
                return Ok(newlines + 1);
            }
            newlines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            let n = chunk.len();
            prefix.consume(n);
        }
    }
}

impl SourceReader<String> for TextFileReader {
    fn read_batch(&mut self, batch: &mut Vec<String>, max: usize) -> Result<ReadStatus, BoxError> {
        while batch.len() < max {
            if self.pos >= self.end {
                return Ok(ReadStatus::Exhausted);
            }
            let line_start = self.pos;
            let Some(bytes) = self.next_line()? else {
                // The file is shorter than when it was opened.
                return Ok(ReadStatus::Exhausted);
            };
            match String::from_utf8(bytes) {
                Ok(line) => batch.push(line),
                Err(e) => {
                    return Err(SourceError::InvalidUtf8 {
                        path: self.path.to_path_buf(),
                        line: self.line_number_at(line_start)?,
                        column: e.utf8_error().valid_up_to() + 1,
                    }
                    .into())
                }
            }
        }
        Ok(ReadStatus::More)
    }

    fn position(&self) -> Option<SourcePosition> {
        Some(SourcePosition {
            offset: self.pos.to_le_bytes().to_vec(),
            description: format!("byte {} of {}", self.pos, self.path.display()),
        })
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        // Positions are line starts from this task's first line on; the last one may lie past
        // the range's end, after a line that crosses it, which reads as exhausted.
        let range = self.start..u64::MAX;
        let pos =
            seek_index(position, &range).map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.reader
            .seek(SeekFrom::Start(pos))
            .map_err(|e| self.read_error(e))?;
        self.pos = pos;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(bytes: &[u8], parallelism: usize) -> Result<Vec<String>, BoxError> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        let path: Arc<Path> = file.path().into();
        let mut lines = Vec::new();
        for index in 0..parallelism {
            let mut reader = TextFileReader::open(path.clone(), index, parallelism)?;
            loop {
                let mut batch = Vec::new();
                let status = reader.read_batch(&mut batch, 3)?;
                assert!(batch.len() <= 3);
                lines.append(&mut batch);
                if status == ReadStatus::Exhausted {
                    break;
                }
            }
        }
        Ok(lines)
    }

    fn expected(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn every_line_once_at_any_parallelism() {
        let text = "alpha beta\n\ngamma\r\nδέλτα ε\n\n\nlast line without newline";
        for p in 1..=40 {
            assert_eq!(
                read_all(text.as_bytes(), p).unwrap(),
                expected(text),
                "parallelism {p}"
            );
        }
    }

    #[test]
    fn a_last_line_without_newline_keeps_its_carriage_return() {
        for text in ["a\r\nb\r", "b\r", "a\n\r"] {
            for p in 1..=3 {
                assert_eq!(
                    read_all(text.as_bytes(), p).unwrap(),
                    expected(text),
                    "{text:?} p={p}"
                );
            }
        }
    }

    #[test]
    fn a_line_longer_than_every_range_is_read_once() {
        let text = format!("a\n{}\nb\n", "x".repeat(5_000_000));
        assert_eq!(read_all(text.as_bytes(), 7).unwrap(), expected(&text));
    }

    #[test]
    fn empty_file_has_no_lines() {
        assert!(read_all(b"", 3).unwrap().is_empty());
    }

    #[test]
    fn invalid_utf8_names_file_and_line() {
        let err = read_all(b"ok\nfine\nbad \xff byte\nafter\n", 2).unwrap_err();
        let err = err.downcast::<SourceError>().unwrap();
        match *err {
            SourceError::InvalidUtf8 { line, column, .. } => assert_eq!((line, column), (3, 5)),
            ref other => panic!("unexpected {other}"),
        }
    }
}
