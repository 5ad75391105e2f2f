//! A plain file sink: one file per task, one line per record.
//!
//! Not exactly-once: after a failure its files hold whatever was written. The two-phase
//! version arrives with checkpointing.

use crate::error::SinkError;
use snapflow_engine::{BoxError, Data, Sink, SinkWriter, TaskInfo};
use std::fmt::Display;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Formats one record into bytes (without the line ending).
type Format<T> = Arc<dyn Fn(&T, &mut Vec<u8>) + Send + Sync>;

/// Bytes gathered before one `write` call.
const WRITE_CHUNK: usize = 1 << 20;

/// Writes each task's records to `DIR/part-NNNNN` (NNNNN the task index), one line each.
pub struct FileSink<T> {
    dir: PathBuf,
    format: Format<T>,
}

impl<T: Display> FileSink<T> {
    /// Writes each record's `Display` form as a line into files in `dir`.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self::with_format(dir, |record: &T, buf: &mut Vec<u8>| {
            // Writing into a Vec cannot fail.
            let _ = write!(buf, "{record}");
        })
    }
}

impl<T> FileSink<T> {
    /// Writes each record as a line produced by `format`, which appends the record's bytes
    /// (without a line ending) to the buffer it is given.
    pub fn with_format(
        dir: impl AsRef<Path>,
        format: impl Fn(&T, &mut Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        FileSink {
            dir: dir.as_ref().to_path_buf(),
            format: Arc::new(format),
        }
    }
}

impl<T: Data> Sink<T> for FileSink<T> {
    fn name(&self) -> String {
        "write-files".to_owned()
    }

    fn create_writer(&self, task: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>, BoxError> {
        fs::create_dir_all(&self.dir).map_err(|source| SinkError::Create {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.dir.join(format!("part-{:05}", task.index));
        let file = File::create(&path).map_err(|source| SinkError::Create {
            path: path.clone(),
            source,
        })?;
        Ok(Box::new(FileWriter {
            path,
            file,
            format: self.format.clone(),
            buf: Vec::with_capacity(WRITE_CHUNK + 4096),
        }))
    }
}

struct FileWriter<T> {
    path: PathBuf,
    file: File,
    format: Format<T>,
    buf: Vec<u8>,
}

impl<T> FileWriter<T> {
    fn write_out(&mut self) -> Result<(), SinkError> {
        self.file
            .write_all(&self.buf)
            .map_err(|source| SinkError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.buf.clear();
        Ok(())
    }
}

impl<T: Data> SinkWriter<T> for FileWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), BoxError> {
        for record in &batch {
            (self.format)(record, &mut self.buf);
            self.buf.push(b'\n');
        }
        if self.buf.len() >= WRITE_CHUNK {
            self.write_out()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.write_out()?;
        Ok(())
    }
}
