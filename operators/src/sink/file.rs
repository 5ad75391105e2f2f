//! An exactly-once file sink: one file per task and checkpoint, published by two-phase commit.
//!
//! Layout under the output directory `DIR`:
//!
//! ```text
//! DIR/_staging/chk-<id>/part-<task>   written while checkpoint <id> is in progress (hidden)
//! DIR/chk-<id>/part-<task>            published once checkpoint <id> is complete
//! ```
//!
//! Reader contract: the committed output is every regular file under `DIR` whose relative path
//! has no component starting with `.` or `_`. Each sink task writes the records it receives
//! before the barrier of checkpoint `id` into `_staging/chk-<id>/part-<task>`; at the barrier
//! it flushes and fsyncs the file (pre-commit). When the checkpoint is complete, the committer
//! renames `_staging/chk-<id>` to `chk-<id>`: one rename publishes all tasks' output of that
//! checkpoint at once, so a reader sees the output of a prefix of whole checkpoints. Published
//! files are never modified or removed by the job.

use crate::error::SinkError;
use snapflow_checkpoint::{fsync_dir, CheckpointId};
use snapflow_engine::{BoxError, Committer, Data, Sink, SinkWriter, TaskInfo};
use std::fmt::Display;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Formats one record into bytes (without the line ending).
type Format<T> = Arc<dyn Fn(&T, &mut Vec<u8>) + Send + Sync>;

/// Bytes gathered before one `write` call.
const WRITE_CHUNK: usize = 1 << 20;

const STAGING: &str = "_staging";

fn checkpoint_dir_name(id: CheckpointId) -> String {
    format!("chk-{:020}", id.0)
}

fn parse_checkpoint_dir_name(name: &str) -> Option<CheckpointId> {
    let digits = name.strip_prefix("chk-")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok().map(CheckpointId))
        .flatten()
}

/// Writes records as lines, exactly once, into checkpoint directories under `DIR` (see the
/// module documentation for the layout and the reader contract).
pub struct FileSink<T> {
    dir: PathBuf,
    format: Format<T>,
}

impl<T: Display> FileSink<T> {
    /// Writes each record's `Display` form as a line under `dir`.
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
        Ok(Box::new(FileWriter {
            dir: self.dir.clone(),
            task: task.index,
            format: self.format.clone(),
            buf: Vec::with_capacity(WRITE_CHUNK + 4096),
            checkpoint: task.first_checkpoint,
            file: None,
        }))
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(Arc::new(FileCommitter {
            dir: self.dir.clone(),
        }))
    }
}

/// The staging file of the checkpoint in progress.
struct StagingFile {
    path: PathBuf,
    file: File,
}

struct FileWriter<T> {
    dir: PathBuf,
    task: usize,
    format: Format<T>,
    buf: Vec<u8>,
    /// The checkpoint that the records written now belong to.
    checkpoint: CheckpointId,
    /// Opened on the first write after a barrier, so a checkpoint without records leaves no
    /// file.
    file: Option<StagingFile>,
}

impl<T> FileWriter<T> {
    fn write_out(&mut self) -> Result<(), SinkError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let staging = match &mut self.file {
            Some(staging) => staging,
            None => {
                let dir = self
                    .dir
                    .join(STAGING)
                    .join(checkpoint_dir_name(self.checkpoint));
                fs::create_dir_all(&dir).map_err(|source| SinkError::Create {
                    path: dir.clone(),
                    source,
                })?;
                let path = dir.join(format!("part-{:05}", self.task));
                let file = File::create(&path).map_err(|source| SinkError::Create {
                    path: path.clone(),
                    source,
                })?;
                self.file.insert(StagingFile { path, file })
            }
        };
        staging
            .file
            .write_all(&self.buf)
            .map_err(|source| SinkError::Write {
                path: staging.path.clone(),
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

    fn pre_commit(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.write_out()?;
        if let Some(staging) = self.file.take() {
            let write_error = |source| SinkError::Write {
                path: staging.path.clone(),
                source,
            };
            staging.file.sync_all().map_err(write_error)?;
            // Every directory entry on the way must be durable too, or a crash after the
            // checkpoint completes could lose output its state already counts.
            let checkpoint_dir = staging.path.parent().unwrap_or(&self.dir);
            fsync_dir(checkpoint_dir)?;
            fsync_dir(&self.dir.join(STAGING))?;
            fsync_dir(&self.dir)?;
        }
        self.checkpoint = checkpoint.next();
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        if !self.buf.is_empty() || self.file.is_some() {
            return Err(format!(
                "records reached the file sink in {} after the final checkpoint; they cannot be published exactly once",
                self.dir.display()
            )
            .into());
        }
        Ok(())
    }
}

/// Publishes staged checkpoint directories by renaming them into the output directory.
struct FileCommitter {
    dir: PathBuf,
}

impl FileCommitter {
    /// The staged checkpoint directories, oldest first.
    fn staged(&self) -> Result<Vec<CheckpointId>, SinkError> {
        let staging = self.dir.join(STAGING);
        let entries = match fs::read_dir(&staging) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SinkError::Create {
                    path: staging,
                    source,
                })
            }
        };
        let mut ids: Vec<CheckpointId> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| parse_checkpoint_dir_name(&e.file_name().to_string_lossy()))
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn published(&self) -> Result<Vec<CheckpointId>, SinkError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SinkError::Create {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| parse_checkpoint_dir_name(&e.file_name().to_string_lossy()))
            .collect())
    }
}

impl Committer for FileCommitter {
    fn open(&self, restored: Option<CheckpointId>) -> Result<(), BoxError> {
        if restored.is_none() && !self.published()?.is_empty() {
            return Err(format!(
                "output directory {} already holds published output of an earlier run; use an empty directory",
                self.dir.display()
            )
            .into());
        }
        if let Some(id) = restored {
            self.commit(id)?;
        }
        // Whatever is still staged belongs to checkpoints that never completed.
        for id in self.staged()? {
            let path = self.dir.join(STAGING).join(checkpoint_dir_name(id));
            fs::remove_dir_all(&path).map_err(|source| SinkError::Write { path, source })?;
        }
        Ok(())
    }

    fn commit(&self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        let mut renamed = false;
        for id in self.staged()?.into_iter().filter(|&id| id <= checkpoint) {
            let name = checkpoint_dir_name(id);
            let from = self.dir.join(STAGING).join(&name);
            let to = self.dir.join(&name);
            if to.exists() {
                return Err(format!(
                    "{} is already published; it is never written twice",
                    to.display()
                )
                .into());
            }
            fs::rename(&from, &to).map_err(|source| SinkError::Write { path: from, source })?;
            renamed = true;
        }
        if renamed {
            fsync_dir(&self.dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_dir_names_round_trip_and_sort() {
        let a = checkpoint_dir_name(CheckpointId(9));
        let b = checkpoint_dir_name(CheckpointId(10));
        assert!(a < b, "names sort like ids");
        assert_eq!(parse_checkpoint_dir_name(&b), Some(CheckpointId(10)));
        assert_eq!(parse_checkpoint_dir_name("chk-12"), None);
        assert_eq!(parse_checkpoint_dir_name("part-00000"), None);
    }
}
