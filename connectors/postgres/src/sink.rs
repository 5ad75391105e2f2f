//! The sink and its per-task writer: rows are copied into the staging table as they come,
//! and made ready for the committer at each barrier.

use crate::commit::{connect, finish_prepared, gid, owner, prepared_of, PgCommitter};
use crate::error::{redact, PgSinkError};
use crate::newest::NewestPerKey;
use crate::record::TaskRecord;
use crate::row::RowWriter;
use crate::sql::PgTable;
use postgres::Client;
use snapflow_checkpoint::CheckpointId;
use snapflow_engine::{BoxError, Committer, Data, Sink, SinkWriter, TaskInfo};
use std::io::Write;
use std::sync::Arc;

/// Formats one record as a row of the table.
type Format<T> = Arc<dyn Fn(&T, &mut RowWriter<'_>) + Send + Sync>;

/// Bytes of rows gathered before one `COPY`.
const COPY_CHUNK: usize = 1 << 20;

/// How a [`PostgresSink`] makes a checkpoint's rows visible (see the crate documentation).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum PgMode {
    /// Staged rows of every task are applied in one transaction per checkpoint: a reader
    /// sees whole checkpoints.
    #[default]
    Transactional,
    /// Each task's rows are applied in a prepared transaction, committed per task after the
    /// checkpoint completes: a reader sees whole checkpoints of each task.
    TwoPhase,
}

/// Writes records as rows of one PostgreSQL table, exactly once (see the crate
/// documentation).
pub struct PostgresSink<T> {
    url: String,
    table: Arc<PgTable>,
    format: Format<T>,
    mode: PgMode,
    /// One committer per sink: it holds the connection with the table's lock.
    committer: Arc<PgCommitter>,
}

impl<T> PostgresSink<T> {
    /// Writes into `table` of the database at `url` (`postgres://user[:password]@host:port/db`),
    /// each record as the row that `format` writes: one value per column, in the order the
    /// table lists its columns.
    pub fn new(
        url: &str,
        table: PgTable,
        format: impl Fn(&T, &mut RowWriter<'_>) + Send + Sync + 'static,
    ) -> Self {
        let table = Arc::new(table);
        PostgresSink {
            url: url.to_owned(),
            committer: Arc::new(PgCommitter::new(url, table.clone(), PgMode::Transactional)),
            table,
            format: Arc::new(format),
            mode: PgMode::Transactional,
        }
    }

    /// Uses `mode` instead of the default, transactional one.
    pub fn with_mode(mut self, mode: PgMode) -> Self {
        self.mode = mode;
        self.committer = Arc::new(PgCommitter::new(&self.url, self.table.clone(), mode));
        self
    }
}

impl<T: Data> Sink<T> for PostgresSink<T> {
    fn name(&self) -> String {
        "write-postgres".to_owned()
    }

    fn create_writer(&self, task: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>, BoxError> {
        let mut client = connect(&self.url)?;
        self.committer.register_writer(&client);
        let owner = owner(&mut client, &self.table).map_err(|source| PgSinkError::Statement {
            what: "naming the database".to_owned(),
            table: self.table.id(),
            source,
        })?;
        Ok(Box::new(PgWriter {
            client,
            owner,
            url: redact(&self.url),
            table: self.table.clone(),
            copy: self.table.copy_sql(),
            format: self.format.clone(),
            mode: self.mode,
            task: task.index as u32,
            checkpoint: task.first_checkpoint,
            buf: Vec::with_capacity(COPY_CHUNK + 4096),
            seq: 0,
            staged: 0,
            pending: Vec::new(),
            newest: self
                .table
                .upsert_positions()
                .map(|(key, newest)| NewestPerKey::new(key, newest)),
            row: Vec::new(),
        }))
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(self.committer.clone())
    }
}

struct PgWriter<T> {
    client: Client,
    /// Names this table's prepared transactions (see `commit::owner`).
    owner: String,
    url: String,
    table: Arc<PgTable>,
    copy: String,
    format: Format<T>,
    mode: PgMode,
    task: u32,
    /// The checkpoint that the rows written now belong to.
    checkpoint: CheckpointId,
    /// Rows not yet copied, in `COPY` text format.
    buf: Vec<u8>,
    /// Numbers this task's rows, so that the apply statement keeps their order.
    seq: u64,
    /// Rows staged for `checkpoint` so far.
    staged: u64,
    /// `(checkpoint, rows)` staged and not yet known to be applied: recorded in every
    /// checkpoint.
    pending: Vec<(u64, u64)>,
    /// For an upsert table: the newest row per key since the last barrier, staged at the
    /// barrier (the others would be discarded by the apply statement anyway).
    newest: Option<NewestPerKey>,
    /// The row being formatted, for `newest`.
    row: Vec<u8>,
}

impl<T> PgWriter<T> {
    /// The error of a failed statement: a lost connection is [`PgSinkError::Connect`].
    fn failed(&self, what: String, source: postgres::Error) -> PgSinkError {
        if source.is_closed() {
            PgSinkError::Connect {
                url: self.url.clone(),
                source,
            }
        } else {
            PgSinkError::Statement {
                what,
                table: self.table.id(),
                source,
            }
        }
    }

    /// Adds one row (its values in `COPY` text format) to the rows to stage for the current
    /// checkpoint.
    fn stage(&mut self, row: &[u8]) {
        self.buf
            .extend_from_slice(itoa_u64(self.checkpoint.0, &mut [0u8; 20]).as_bytes());
        self.buf.push(b'\t');
        self.buf
            .extend_from_slice(itoa_u64(u64::from(self.task), &mut [0u8; 20]).as_bytes());
        self.buf.push(b'\t');
        self.buf
            .extend_from_slice(itoa_u64(self.seq, &mut [0u8; 20]).as_bytes());
        self.buf.push(b'\t');
        self.buf.extend_from_slice(row);
        self.buf.push(b'\n');
        self.seq += 1;
        self.staged += 1;
    }

    /// Copies the gathered rows into the staging table (committed: durable at return).
    fn flush(&mut self) -> Result<(), PgSinkError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let (copy, buf) = (&self.copy, &self.buf);
        let client = &mut self.client;
        // `Err(Ok(io))`: sending failed without a reason from the server; `Err(Err(pg))`: the
        // server's error.
        let copied: Result<(), Result<std::io::Error, postgres::Error>> = (|| {
            let mut writer = client.copy_in(copy).map_err(Err)?;
            let written = writer.write_all(buf);
            let finished = writer.finish();
            match (written, finished) {
                (_, Err(e)) => Err(Err(e)),
                (Err(e), Ok(_)) => Err(Ok(e)),
                (Ok(()), Ok(_)) => Ok(()),
            }
        })();
        match copied {
            Ok(()) => {
                self.buf.clear();
                Ok(())
            }
            Err(Err(e)) => {
                let what = format!("staging rows of checkpoint {}", self.checkpoint);
                Err(self.failed(what, e))
            }
            Err(Ok(source)) => Err(PgSinkError::Copy {
                table: self.table.id(),
                source,
            }),
        }
    }

    /// Two-phase: applies this task's staged rows up to the current checkpoint in a
    /// transaction and prepares it.
    fn prepare(&mut self) -> Result<(), PgSinkError> {
        let checkpoint = self.checkpoint.0 as i64;
        let task = self.task as i32;
        let gid = gid(&self.owner, self.task, self.checkpoint);
        // This task's transactions prepared for earlier checkpoints that are still pending
        // belong to aborted checkpoints: a completed one is committed before the next
        // checkpoint is triggered. Their rows are applied with this checkpoint instead: rolled
        // back, the rows they took from staging are staged again. Left prepared, they would
        // hold the locks this transaction needs, and it would wait for ever.
        let earlier = prepared_of(&mut self.client, &self.owner)
            .map_err(|e| self.failed("listing prepared transactions".to_owned(), e))?;
        for (task, checkpoint, gid) in earlier {
            if task == self.task && checkpoint < self.checkpoint {
                finish_prepared(&mut self.client, &gid, false).map_err(|e| {
                    self.failed(
                        format!("rolling back the aborted checkpoint {checkpoint}"),
                        e,
                    )
                })?;
            }
        }
        let (apply, delete) = (
            self.table.apply_sql(true),
            self.table.delete_staged_sql(true),
        );
        let prepare = format!("PREPARE TRANSACTION '{}'", gid.replace('\'', "''"));
        let client = &mut self.client;
        let result = (|| {
            client.batch_execute("BEGIN")?;
            client.execute(&apply, &[&checkpoint, &task])?;
            client.execute(&delete, &[&checkpoint, &task])?;
            // From here the server owns the transaction, whatever happens to this process.
            client.batch_execute(&prepare)
        })();
        if result.is_err() {
            let _ = self.client.batch_execute("ROLLBACK");
        }
        result.map_err(|e| {
            self.failed(
                format!(
                    "preparing checkpoint {} of task {}",
                    self.checkpoint, self.task
                ),
                e,
            )
        })
    }
}

impl<T: Data> SinkWriter<T> for PgWriter<T> {
    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), BoxError> {
        for record in &batch {
            self.row.clear();
            let mut row = RowWriter::new(&mut self.row);
            (self.format)(record, &mut row);
            let values = row.values();
            if values != self.table.arity() {
                return Err(format!(
                    "a row for table {} has {values} values; the table has {} columns",
                    self.table.id(),
                    self.table.arity()
                )
                .into());
            }
            let displaced = match &mut self.newest {
                Some(newest) => newest.add(&self.row),
                None => Some(std::mem::take(&mut self.row)),
            };
            if let Some(row) = displaced {
                self.stage(&row);
            }
        }
        if self.buf.len() >= COPY_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        if let Some(mut newest) = self.newest.take() {
            for row in newest.drain() {
                self.stage(&row);
                if self.buf.len() >= COPY_CHUNK {
                    self.flush()?;
                }
            }
            self.newest = Some(newest);
        }
        self.flush()?;
        if self.staged > 0 {
            self.pending.push((self.checkpoint.0, self.staged));
            if self.mode == PgMode::TwoPhase {
                self.prepare()?;
            }
        }
        self.staged = 0;
        self.checkpoint = checkpoint.next();
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>, BoxError> {
        Ok(Some(
            TaskRecord {
                table: self.table.id(),
                task: self.task,
                parts: self.pending.clone(),
            }
            .encode(),
        ))
    }

    fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.pending.retain(|&(c, _)| c > checkpoint.0);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        let kept = self.newest.as_ref().map_or(0, NewestPerKey::len);
        if !self.buf.is_empty() || self.staged > 0 || kept > 0 {
            return Err(format!(
                "records reached the PostgreSQL sink of {} after the final checkpoint; they cannot be written exactly once",
                self.table.id()
            )
            .into());
        }
        Ok(())
    }
}

/// `n` in decimal, without allocating.
fn itoa_u64(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}
