//! A source of the lines of one text file, split over tasks by byte range.

use crate::error::SourceError;
use crate::source::file_rescale::reassign;
use crate::source::identity::{
    self, FilePosition, InputError, SplitPosition, Window, PREFIX, WINDOW,
};
use crate::source::share;
use snapflow_engine::{BoxError, ReadStatus, Source, SourcePosition, SourceReader, TaskInfo};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Emits every line of a UTF-8 text file as a `String`, without its line ending (`\n` or
/// `\r\n`); a last line without a final newline is a line too.
///
/// The file is split into one byte range per task. A line belongs to the task whose range holds
/// its first byte, so each line is read exactly once, whatever the parallelism (the Hadoop
/// `TextInputFormat` rule). Each task's position records its splits with how far they were
/// read, so a job restored at another parallelism (from a savepoint, say) reassigns the
/// unfinished splits to its tasks and still reads each line exactly once ([`Source::rescale`]). A line that is not valid UTF-8 fails the job with an error naming
/// the file and the line number.
///
/// **The input must not change while a job uses it.** The file is split at the length it has
/// when the job first starts, and every checkpoint records that length with checksums of a few
/// windows of the content ([`identity`](crate::source)); a rerun that resumes from a checkpoint
/// refuses a file that was truncated, replaced, rewritten or appended to, naming what changed,
/// rather than read lines twice or never. Only regular files are read: a FIFO, a directory or
/// a device is refused (a FIFO would block the job until a writer appears).
pub struct TextFileSource {
    path: Arc<Path>,
    /// The file's length when the first task opened it, so that every task splits the same
    /// length even if the file grows meanwhile.
    len: Arc<OnceLock<u64>>,
}

impl TextFileSource {
    /// A source of the lines of the file at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        TextFileSource {
            path: path.as_ref().into(),
            len: Arc::default(),
        }
    }
}

impl Source for TextFileSource {
    type Out = String;

    fn name(&self) -> String {
        "read-text-file".to_owned()
    }

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<String>>, BoxError> {
        Ok(Box::new(TextFileReader::open_shared(
            self.path.clone(),
            &self.len,
            task.index,
            task.parallelism,
        )?))
    }

    fn verify_restore(&self, positions: &[SourcePosition]) -> Result<(), BoxError> {
        identity::require_regular(&self.path)?;
        let file = File::open(&self.path).map_err(|source| SourceError::Open {
            path: self.path.to_path_buf(),
            source,
        })?;
        let now = file
            .metadata()
            .map_err(|source| InputError::Io {
                path: self.path.to_path_buf(),
                source,
            })?
            .len();
        for position in positions {
            let recorded = decode_position(&self.path, position)?;
            identity::check(&self.path, &file, now, &recorded)?;
        }
        Ok(())
    }

    fn rescale(
        &self,
        positions: &[SourcePosition],
        parallelism: usize,
    ) -> Result<Vec<SourcePosition>, BoxError> {
        let recorded = positions
            .iter()
            .map(|p| decode_position(&self.path, p))
            .collect::<Result<Vec<_>, _>>()?;
        let reassigned = reassign(&recorded, parallelism).ok_or_else(|| {
            format!(
                "the checkpoint's positions for {} are not of one file (different lengths or first bytes)",
                self.path.display()
            )
        })?;
        Ok(reassigned
            .into_iter()
            .map(|position| SourcePosition {
                offset: position.encode(),
                description: describe(&self.path, &position),
            })
            .collect())
    }
}

/// A position for people: where its first split stands, and how many follow.
fn describe(path: &Path, position: &FilePosition) -> String {
    match position.splits.as_slice() {
        [] => format!("no split of {} left", path.display()),
        [one] => format!("byte {} of {}", one.pos, path.display()),
        [first, rest @ ..] => format!(
            "byte {} of {} (and {} more splits)",
            first.pos,
            path.display(),
            rest.len()
        ),
    }
}

fn decode_position(path: &Path, position: &SourcePosition) -> Result<FilePosition, InputError> {
    FilePosition::decode(&position.offset).ok_or_else(|| InputError::NotAPosition {
        path: path.to_path_buf(),
        description: position.description.clone(),
    })
}

/// Reads the lines that start in one byte range of a file.
pub(crate) struct TextFileReader {
    path: Arc<Path>,
    reader: BufReader<File>,
    /// Byte offset of the next line to read.
    pos: u64,
    /// Lines starting at or after this offset belong to the next split.
    end: u64,
    /// Whether the reader has a split (a task left without any after a rescale has not).
    has_split: bool,
    /// The splits to read after this one (after a rescale), as recorded.
    pending: VecDeque<SplitPosition>,
    line: Vec<u8>,
    /// The length the file was split at, and checksums of its start and of the bytes around
    /// the current split's first byte: recorded in every position.
    len: u64,
    prefix: Window,
    split: Window,
    index: usize,
    parallelism: usize,
}

impl TextFileReader {
    /// Opens task `index`'s share of the file, splitting the length that `len` holds (or the
    /// file's current length, which it then holds for the other tasks).
    pub(crate) fn open_shared(
        path: Arc<Path>,
        len: &OnceLock<u64>,
        index: usize,
        parallelism: usize,
    ) -> Result<Self, SourceError> {
        identity::require_regular(&path)?;
        let file = File::open(&path).map_err(|source| SourceError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let read_error = |source| SourceError::Read {
            path: path.to_path_buf(),
            source,
        };
        let now = file.metadata().map_err(read_error)?.len();
        let len = *len.get_or_init(|| now);
        if now < len {
            return Err(InputError::Truncated {
                path: path.to_path_buf(),
                recorded: len,
                now,
            }
            .into());
        }
        let range = share(len, index, parallelism);
        let prefix = identity::window(&file, 0, PREFIX, len).map_err(read_error)?;
        let split = identity::window(
            &file,
            range.start.saturating_sub(WINDOW / 2),
            range.start + WINDOW / 2,
            len,
        )
        .map_err(read_error)?;
        let mut reader = TextFileReader {
            path: path.clone(),
            reader: BufReader::with_capacity(1 << 20, file),
            pos: 0,
            end: range.end,
            has_split: true,
            pending: VecDeque::new(),
            line: Vec::new(),
            len,
            prefix,
            split,
            index,
            parallelism,
        };
        reader.start_at(range.start)?;
        Ok(reader)
    }

    /// Opens task `index`'s share of the file at its current length.
    #[cfg(test)]
    pub(crate) fn open(
        path: Arc<Path>,
        index: usize,
        parallelism: usize,
    ) -> Result<Self, SourceError> {
        Self::open_shared(path, &OnceLock::new(), index, parallelism)
    }

    /// Positions the reader at the first line that starts at or after `start`.
    fn start_at(&mut self, start: u64) -> Result<(), SourceError> {
        let mut pos = start;
        if start > 0 {
            // Skip the line that started in the previous range. Starting one byte early also
            // handles a range that begins exactly at a line start: then only the preceding
            // `\n` is skipped.
            self.reader
                .seek(SeekFrom::Start(start - 1))
                .map_err(|e| self.read_error(e))?;
            let mut skipped = Vec::new();
            pos = start - 1
                + self
                    .reader
                    .read_until(b'\n', &mut skipped)
                    .map_err(|e| self.read_error(e))? as u64;
        }
        self.pos = pos;
        Ok(())
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
                match self.pending.pop_front() {
                    Some(next) => {
                        self.enter(&next)?;
                        continue;
                    }
                    None => return Ok(ReadStatus::Exhausted),
                }
            }
            let line_start = self.pos;
            let Some(bytes) = self.next_line()? else {
                // The file is shorter than the length it was split at.
                return Err(InputError::ShrankWhileReading {
                    path: self.path.to_path_buf(),
                    at: self.pos,
                    now: self.pos,
                }
                .into());
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
        let mut splits = Vec::with_capacity(1 + self.pending.len());
        if self.has_split {
            // One read of a few KiB per checkpoint: the bytes just before the position, so
            // that a rerun notices a file rewritten where it resumes.
            let before = identity::window(
                self.reader.get_ref(),
                self.pos.saturating_sub(WINDOW),
                self.pos,
                self.len,
            )
            .ok()?;
            splits.push(SplitPosition {
                pos: self.pos,
                end: Some(self.end),
                split: self.split,
                before,
            });
        }
        splits.extend(self.pending.iter().copied());
        let position = FilePosition {
            len: self.len,
            prefix: self.prefix,
            splits,
        };
        Some(SourcePosition {
            offset: position.encode(),
            description: describe(&self.path, &position),
        })
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        let recorded = decode_position(&self.path, position)?;
        let now = self
            .reader
            .get_ref()
            .metadata()
            .map_err(|e| self.read_error(e))?
            .len();
        // Also checked before the job starts (`verify_restore`); again here for a source
        // wrapped by one that does not pass that call on.
        identity::check(&self.path, self.reader.get_ref(), now, &recorded)?;
        self.len = recorded.len;
        self.prefix = recorded.prefix;
        let mut splits: VecDeque<SplitPosition> = recorded.splits.into();
        let Some(first) = splits.pop_front() else {
            // A task left without a split after a rescale: nothing to read.
            self.has_split = false;
            (self.pos, self.end) = (0, 0);
            return Ok(());
        };
        if first.end.is_none() {
            // The first format: one split, this task's share of the length the job first
            // started with. Positions are line starts from this task's first line on; the
            // last one may lie past the range's end, after a line that crosses it, which
            // reads as exhausted.
            let range = share(recorded.len, self.index, self.parallelism);
            if first.pos < range.start {
                return Err(format!(
                    "{}: position {} lies before this task's share {}..{}",
                    self.path.display(),
                    first.pos,
                    range.start,
                    range.end
                )
                .into());
            }
        }
        self.enter(&first)?;
        self.pending = splits;
        Ok(())
    }
}

impl TextFileReader {
    /// Makes `split` the one being read, at its recorded position (a line start).
    fn enter(&mut self, split: &SplitPosition) -> Result<(), SourceError> {
        self.reader
            .seek(SeekFrom::Start(split.pos))
            .map_err(|e| self.read_error(e))?;
        self.pos = split.pos;
        self.end = split
            .end
            .unwrap_or_else(|| share(self.len, self.index, self.parallelism).end);
        self.split = split.split;
        self.has_split = true;
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

    /// Reads up to `batches` batches of 2 lines from `reader` into `lines`.
    fn read_some(reader: &mut TextFileReader, lines: &mut Vec<String>, batches: usize) -> bool {
        for _ in 0..batches {
            let mut batch = Vec::new();
            let status = reader.read_batch(&mut batch, 2).unwrap();
            lines.append(&mut batch);
            if status == ReadStatus::Exhausted {
                return true;
            }
        }
        false
    }

    #[test]
    fn every_line_once_across_rescales() {
        let text: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let path: Arc<Path> = file.path().into();
        let source = TextFileSource::new(&path);
        // Parallelisms in turn, each reading a different amount before its "checkpoint".
        for chain in [&[2, 3, 1][..], &[3, 1], &[1, 4, 2, 5], &[4, 7, 3]] {
            let mut lines = Vec::new();
            let mut positions: Option<Vec<SourcePosition>> = None;
            for (step, &p) in chain.iter().enumerate() {
                let planned = positions
                    .as_ref()
                    .map(|recorded| source.rescale(recorded, p).unwrap());
                let mut next = Vec::new();
                for index in 0..p {
                    let mut reader = TextFileReader::open(path.clone(), index, p).unwrap();
                    if let Some(planned) = &planned {
                        source
                            .verify_restore(std::slice::from_ref(&planned[index]))
                            .unwrap();
                        reader.seek(&planned[index]).unwrap();
                    }
                    let last = step + 1 == chain.len();
                    let batches = if last { usize::MAX } else { 3 + index * 5 };
                    read_some(&mut reader, &mut lines, batches);
                    next.push(reader.position().unwrap());
                }
                positions = Some(next);
            }
            lines.sort();
            assert_eq!(
                lines,
                {
                    let mut all = expected(&text);
                    all.sort();
                    all
                },
                "parallelisms {chain:?}"
            );
        }
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
