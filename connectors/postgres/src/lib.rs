//! Exactly-once output into PostgreSQL.
//!
//! [`PostgresSink`] writes a stream's records into one table, so that a reader sees the output
//! of whole checkpoints only, each exactly once, across any number of crashes:
//!
//! - **Transactional** ([`PgMode::Transactional`], the default). Each sink task copies its rows
//!   (`COPY`) into a staging table, tagged with the checkpoint and the task, where readers of the
//!   target do not look; the rows are durable at the barrier. When the checkpoint is complete,
//!   ONE transaction applies every task's staged rows of that checkpoint (and of earlier aborted
//!   ones) to the target with the table's statement ([`PgTable::insert`] or
//!   [`PgTable::upsert`]), deletes them from staging, and records the checkpoint in
//!   `snapflow_commits`. A commit re-driven after a crash (between the manifest and the
//!   database commit, or during it) finds its checkpoint recorded and does nothing: exactly
//!   once.
//! - **Two-phase** ([`PgMode::TwoPhase`]). Each sink task applies its own staged rows in a
//!   transaction that it `PREPARE TRANSACTION`s at the barrier, with a global id made of the
//!   table, the task and the checkpoint; the committer runs `COMMIT PREPARED` once the
//!   checkpoint is complete. On recovery, prepared transactions up to the restored checkpoint
//!   are committed and later ones rolled back, so none is left behind. Visibility is per task,
//!   not per checkpoint: a reader may see one task's part of a checkpoint before another's.
//!   A task's prepared transaction of an aborted checkpoint is rolled back at its next barrier,
//!   which applies those rows instead. Rows of one key must reach one sink task (key the
//!   stream by the table's key): a prepared transaction holds its keys' row locks until the
//!   checkpoint completes. The server needs `max_prepared_transactions` of at least twice the
//!   sink tasks writing with it.
//!
//! In both modes the committer holds a session advisory lock on the table while the job runs,
//! so that two jobs never write one table, and a rerun checks the database against the
//! checkpoint it resumes from: a table committed past that checkpoint (a lost manifest), or
//! staged rows that the checkpoint recorded and that are gone, are refused with an error that
//! says so, never a silent duplicate or loss. A database that cannot be reached is an
//! [`Unavailable`](snapflow_engine::Unavailable) error, which a restart strategy retries.

mod commit;
mod error;
mod newest;
mod record;
mod row;
mod sink;
mod sql;

pub use error::PgSinkError;
pub use row::RowWriter;
pub use sink::{PgMode, PostgresSink};
pub use sql::PgTable;
