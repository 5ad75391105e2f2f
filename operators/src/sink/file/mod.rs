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
//!
//! Each task also records in the checkpoint which files it pre-committed (length and CRC-32,
//! [`TaskRecord`]). When a job resumes, the committer checks the directory against the
//! restored checkpoint's records before publishing anything (module `check`): output of a newer
//! checkpoint (a lost manifest), a recorded file that is missing or changed (a lost or damaged
//! `_staging`), or a file snapflow did not write, each refuse the start with an error that says
//! what is wrong, instead of a silent duplicate or loss. At run time the committer publishes a
//! staged directory only if it holds exactly the files the writers pre-committed.

mod check;
mod commit;
mod record;

pub use check::OutputInconsistency;
pub use commit::{check_output, OutputCheck};
pub use record::{decode_records, StagedPart, TaskRecord};

use crate::error::SinkError;
use commit::{FileCommitter, Registry};
use record::{encode, part_name};
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

/// `dir`, created if missing, with symbolic links resolved: how the records name it, so that
/// another spelling of the same directory still matches.
fn resolve_dir(dir: &Path) -> Result<PathBuf, SinkError> {
    fs::create_dir_all(dir)
        .and_then(|()| fs::canonicalize(dir))
        .map_err(|source| SinkError::Create {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes records as lines, exactly once, into checkpoint directories under `DIR` (see the
/// module documentation for the layout and the reader contract).
pub struct FileSink<T> {
    dir: PathBuf,
    format: Format<T>,
    /// What the writers pre-committed in this process and the committer has not published.
    registry: Arc<Registry>,
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
            registry: Arc::default(),
        }
    }
}

impl<T: Data> Sink<T> for FileSink<T> {
    fn name(&self) -> String {
        "write-files".to_owned()
    }

    fn create_writer(&self, task: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>, BoxError> {
        // The job claimed (created) the directory before any task started; the records name
        // it with symbolic links resolved, so that another spelling of it still matches.
        let resolved = resolve_dir(&self.dir)?;
        Ok(Box::new(FileWriter {
            dir: self.dir.clone(),
            resolved,
            task: task.index,
            format: self.format.clone(),
            buf: Vec::with_capacity(WRITE_CHUNK + 4096),
            checkpoint: task.first_checkpoint,
            file: None,
            pending: Vec::new(),
            registry: self.registry.clone(),
        }))
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(Arc::new(FileCommitter {
            dir: self.dir.clone(),
            registry: self.registry.clone(),
        }))
    }
}

/// The staging file of the checkpoint in progress.
struct StagingFile {
    path: PathBuf,
    file: File,
    /// Bytes written so far.
    bytes: u64,
    /// CRC-32 of those bytes.
    crc: crc32fast::Hasher,
}

struct FileWriter<T> {
    dir: PathBuf,
    /// `dir` with symbolic links resolved, as the records name it.
    resolved: PathBuf,
    task: usize,
    format: Format<T>,
    buf: Vec<u8>,
    /// The checkpoint that the records written now belong to.
    checkpoint: CheckpointId,
    /// Opened on the first write after a barrier, so a checkpoint without records leaves no
    /// file.
    file: Option<StagingFile>,
    /// Files pre-committed and not yet known to be published, oldest first: recorded in
    /// every checkpoint (the output of an aborted checkpoint is published with the next).
    pending: Vec<StagedPart>,
    registry: Arc<Registry>,
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
                    .join(snapflow_checkpoint::checkpoint_dir_name(self.checkpoint));
                fs::create_dir_all(&dir).map_err(|source| SinkError::Create {
                    path: dir.clone(),
                    source,
                })?;
                let path = dir.join(part_name(self.task as u32));
                let file = File::create(&path).map_err(|source| SinkError::Create {
                    path: path.clone(),
                    source,
                })?;
                self.file.insert(StagingFile {
                    path,
                    file,
                    bytes: 0,
                    crc: crc32fast::Hasher::new(),
                })
            }
        };
        staging
            .file
            .write_all(&self.buf)
            .map_err(|source| SinkError::Write {
                path: staging.path.clone(),
                source,
            })?;
        staging.bytes += self.buf.len() as u64;
        staging.crc.update(&self.buf);
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
            let part = StagedPart {
                checkpoint: self.checkpoint.0,
                bytes: staging.bytes,
                crc32: staging.crc.finalize(),
            };
            self.registry
                .pre_committed(self.checkpoint, part_name(self.task as u32), part.bytes);
            self.pending.push(part);
        }
        self.checkpoint = checkpoint.next();
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>, BoxError> {
        Ok(Some(encode(&[TaskRecord {
            dir: self.resolved.clone(),
            task: self.task as u32,
            parts: self.pending.clone(),
        }])))
    }

    fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.pending.retain(|p| p.checkpoint > checkpoint.0);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_are_recognised() {
        assert!(check::is_part_name(&part_name(7)));
        assert!(!check::is_part_name("part-7"));
        assert!(!check::is_part_name("part-00007.tmp"));
    }
}
