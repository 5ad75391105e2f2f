//! The committer: checks the database against the restored checkpoint, and applies (or
//! commits the prepared transactions of) each completed checkpoint exactly once.

use crate::error::{redact, PgSinkError};
use crate::record::TaskRecord;
use crate::sink::PgMode;
use crate::sql::PgTable;
use postgres::{Client, NoTls};
use snapflow_checkpoint::CheckpointId;
use snapflow_engine::{BoxError, Committer, RestoredState, Unavailable};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Connects to `url`; an unreachable server is [`Unavailable`], which a restart strategy
/// retries.
pub(crate) fn connect(url: &str) -> Result<Client, BoxError> {
    Client::connect(url, NoTls).map_err(|source| {
        let error = PgSinkError::Connect {
            url: redact(url),
            source,
        };
        Box::new(Unavailable(error.into())) as BoxError
    })
}

/// Whose prepared transactions these are: the database and the table. Global ids are unique
/// per server, across its databases, so the database is part of them.
pub(crate) fn owner(client: &mut Client, table: &PgTable) -> Result<String, postgres::Error> {
    let database: String = client.query_one("SELECT current_database()", &[])?.get(0);
    Ok(format!("{database}/{}", table.id()))
}

/// The global id of task `task`'s prepared transaction of checkpoint `checkpoint`.
pub(crate) fn gid(owner: &str, task: u32, checkpoint: CheckpointId) -> String {
    format!("snapflow:{owner}:{task}:{:020}", checkpoint.0)
}

/// The task and checkpoint of a prepared transaction of `owner`, from its global id.
fn parse_gid(owner: &str, gid: &str) -> Option<(u32, CheckpointId)> {
    let rest = gid
        .strip_prefix("snapflow:")?
        .strip_prefix(owner)?
        .strip_prefix(':')?;
    let (task, checkpoint) = rest.split_once(':')?;
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !numeric(task) || !numeric(checkpoint) {
        return None;
    }
    Some((task.parse().ok()?, CheckpointId(checkpoint.parse().ok()?)))
}

/// The prepared transactions of `owner` in this database: `(task, checkpoint, gid)`, oldest
/// checkpoint first.
pub(crate) fn prepared_of(
    client: &mut Client,
    owner: &str,
) -> Result<Vec<(u32, CheckpointId, String)>, postgres::Error> {
    let rows = client.query(
        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
        &[],
    )?;
    let mut prepared: Vec<(u32, CheckpointId, String)> = rows
        .into_iter()
        .filter_map(|r| {
            let gid: String = r.get(0);
            parse_gid(owner, &gid).map(|(task, checkpoint)| (task, checkpoint, gid))
        })
        .collect();
    prepared.sort_by_key(|(task, checkpoint, _)| (*checkpoint, *task));
    Ok(prepared)
}

/// `COMMIT PREPARED` or `ROLLBACK PREPARED` of `gid`.
pub(crate) fn finish_prepared(
    client: &mut Client,
    gid: &str,
    commit: bool,
) -> Result<(), postgres::Error> {
    let verb = if commit { "COMMIT" } else { "ROLLBACK" };
    client.batch_execute(&format!("{verb} PREPARED '{}'", gid.replace('\'', "''")))
}

/// Which staged rows a rerun expects, per `(checkpoint, task)`, from the restored
/// checkpoint's records: those of checkpoints after `committed` and up to `restored`.
fn expected_rows(
    records: &[TaskRecord],
    committed: CheckpointId,
    restored: CheckpointId,
) -> BTreeMap<(u64, u32), u64> {
    let mut expected = BTreeMap::new();
    for record in records {
        for &(checkpoint, rows) in &record.parts {
            if checkpoint > committed.0 && checkpoint <= restored.0 {
                expected.insert((checkpoint, record.task), rows);
            }
        }
    }
    expected
}

/// Compares the staged rows found with those expected; the first difference.
fn staging_mismatch(
    expected: &BTreeMap<(u64, u32), u64>,
    found: &BTreeMap<(u64, u32), u64>,
    restored: CheckpointId,
) -> Option<((u64, u32), u64, u64)> {
    let keys = expected
        .keys()
        .chain(found.keys().filter(|(c, _)| *c <= restored.0));
    for key in keys {
        let (want, got) = (
            expected.get(key).copied().unwrap_or(0),
            found.get(key).copied().unwrap_or(0),
        );
        if want != got {
            return Some((*key, want, got));
        }
    }
    None
}

/// How long `open` waits for the table's advisory lock before refusing.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) struct PgCommitter {
    url: String,
    table: Arc<PgTable>,
    mode: PgMode,
    /// The connection that holds the table's advisory lock while the job runs.
    client: Mutex<Option<Client>>,
    /// How to cancel what each writer's connection is doing, for [`Committer::close`].
    cancels: Mutex<Vec<postgres::CancelToken>>,
}

impl PgCommitter {
    pub(crate) fn new(url: &str, table: Arc<PgTable>, mode: PgMode) -> PgCommitter {
        PgCommitter {
            url: url.to_owned(),
            table,
            mode,
            client: Mutex::new(None),
            cancels: Mutex::new(Vec::new()),
        }
    }

    /// A writer's connection, to be cancelled when the job attempt ends.
    pub(crate) fn register_writer(&self, client: &Client) {
        self.cancels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(client.cancel_token());
    }

    fn failed(&self, what: impl Into<String>) -> impl Fn(postgres::Error) -> BoxError + '_ {
        let what = what.into();
        move |source| {
            if source.is_closed() {
                Box::new(Unavailable(
                    PgSinkError::Connect {
                        url: redact(&self.url),
                        source,
                    }
                    .into(),
                ))
            } else {
                PgSinkError::Statement {
                    what: what.clone(),
                    table: self.table.id(),
                    source,
                }
                .into()
            }
        }
    }

    /// The checkpoint the database says was committed last for this table.
    fn committed(&self, client: &mut Client) -> Result<Option<CheckpointId>, BoxError> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT checkpoint FROM {} WHERE sink = $1",
                    self.table.commits()
                ),
                &[&self.table.id()],
            )
            .map_err(self.failed("reading snapflow_commits"))?;
        Ok(row.map(|r| CheckpointId(r.get::<_, i64>(0) as u64)))
    }

    /// The prepared transactions of this table, by checkpoint.
    fn prepared(&self, client: &mut Client) -> Result<Vec<(CheckpointId, String)>, BoxError> {
        let owner = owner(client, &self.table).map_err(self.failed("naming the database"))?;
        Ok(prepared_of(client, &owner)
            .map_err(self.failed("listing prepared transactions"))?
            .into_iter()
            .map(|(_, checkpoint, gid)| (checkpoint, gid))
            .collect())
    }

    fn finish_prepared(
        &self,
        client: &mut Client,
        gid: &str,
        commit: bool,
    ) -> Result<(), BoxError> {
        finish_prepared(client, gid, commit).map_err(self.failed(format!(
            "{} PREPARED {gid}",
            if commit { "COMMIT" } else { "ROLLBACK" }
        )))
    }

    fn record_commit(&self, client: &mut Client, checkpoint: CheckpointId) -> Result<(), BoxError> {
        client
            .execute(
                &self.table.record_commit_sql(),
                &[&self.table.id(), &(checkpoint.0 as i64)],
            )
            .map_err(self.failed("recording the commit"))?;
        Ok(())
    }

    /// Applies every task's staged rows up to `checkpoint` in one transaction that also
    /// records the checkpoint, unless the database says it is already applied.
    fn apply(&self, client: &mut Client, checkpoint: CheckpointId) -> Result<(), BoxError> {
        let what = format!("applying checkpoint {checkpoint}");
        let mut tx = client.transaction().map_err(self.failed(what.clone()))?;
        let done = tx
            .query_opt(
                &format!(
                    "SELECT checkpoint FROM {} WHERE sink = $1 FOR UPDATE",
                    self.table.commits()
                ),
                &[&self.table.id()],
            )
            .map_err(self.failed(what.clone()))?
            .is_some_and(|r| r.get::<_, i64>(0) as u64 >= checkpoint.0);
        if done {
            // A re-driven commit: the checkpoint was applied before the crash.
            return tx.commit().map_err(self.failed(what));
        }
        let bound = checkpoint.0 as i64;
        tx.execute(&self.table.apply_sql(false), &[&bound])
            .map_err(self.failed(what.clone()))?;
        tx.execute(&self.table.delete_staged_sql(false), &[&bound])
            .map_err(self.failed(what.clone()))?;
        tx.execute(&self.table.record_commit_sql(), &[&self.table.id(), &bound])
            .map_err(self.failed(what.clone()))?;
        tx.commit().map_err(self.failed(what))
    }

    fn commit_on(&self, client: &mut Client, checkpoint: CheckpointId) -> Result<(), BoxError> {
        match self.mode {
            PgMode::Transactional => self.apply(client, checkpoint),
            PgMode::TwoPhase => {
                // Recorded first: the manifest is durable, so the checkpoint is complete, and
                // a rerun that finds the record past its restore point refuses rather than
                // commit again what a lost manifest's checkpoint already committed.
                self.record_commit(client, checkpoint)?;
                for (id, gid) in self.prepared(client)? {
                    if id <= checkpoint {
                        self.finish_prepared(client, &gid, true)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Creates the tables if missing and takes the table's advisory lock.
    fn setup(&self, client: &mut Client) -> Result<(), BoxError> {
        // Only when something is missing: `CREATE INDEX IF NOT EXISTS` waits for a lock on
        // the staging table even when the index exists, and a transaction prepared before a
        // crash holds one until this `open` resolves it.
        let existing: bool = client
            .query_one(
                "SELECT bool_and(to_regclass(r) IS NOT NULL) FROM unnest($1::text[]) AS r",
                &[&self.table.relations()],
            )
            .map_err(self.failed("looking up the tables"))?
            .get(0);
        if !existing {
            // Concurrent `CREATE ... IF NOT EXISTS` of one table can still collide; one lock
            // for every sink's set-up serializes them.
            let ddl = format!(
                "BEGIN; SELECT pg_advisory_xact_lock(hashtext('snapflow-ddl')); {} COMMIT;",
                self.table.create_sql()
            );
            client
                .batch_execute(&ddl)
                .map_err(self.failed("creating the tables"))?;
        }
        // A process killed a moment ago may still hold the lock until the server notices its
        // connection is gone: wait a bounded time before calling the table taken.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            let locked: bool = client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtext('snapflow:' || $1))",
                    &[&self.table.id()],
                )
                .map_err(self.failed("locking the table"))?
                .get(0);
            if locked {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(PgSinkError::Locked {
                    table: self.table.id(),
                }
                .into());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Checks the database against the restored checkpoint and brings it to it.
    fn open_on(
        &self,
        client: &mut Client,
        restored: Option<&RestoredState>,
    ) -> Result<(), BoxError> {
        self.setup(client)?;
        let committed = self.committed(client)?;
        let prepared = self.prepared(client)?;
        if let (PgMode::Transactional, Some((_, gid))) = (self.mode, prepared.first()) {
            // Left by a two-phase run: resolving them needs that mode's bookkeeping, and a
            // transactional commit would wait on their locks.
            return Err(PgSinkError::PreparedPending {
                table: self.table.id(),
                gid: gid.clone(),
            }
            .into());
        }
        let Some(state) = restored else {
            if let Some(committed) = committed {
                return Err(PgSinkError::EarlierRun {
                    table: self.table.id(),
                    committed,
                }
                .into());
            }
            // Nothing was ever committed: whatever is staged or prepared is debris.
            for (_, gid) in &prepared {
                self.finish_prepared(client, gid, false)?;
            }
            client
                .execute(&self.table.discard_staged_sql(), &[&-1i64])
                .map_err(self.failed("discarding staged rows"))?;
            return Ok(());
        };
        let restored = state.checkpoint();
        let committed = committed.unwrap_or(CheckpointId(0));
        if committed > restored {
            return Err(PgSinkError::NewerCommitted {
                table: self.table.id(),
                committed,
                restored,
            }
            .into());
        }
        let mut records = Vec::new();
        for payload in state.payloads() {
            let record = TaskRecord::decode(payload).ok_or_else(|| PgSinkError::BadRecord {
                table: self.table.id(),
                restored,
            })?;
            if record.table == self.table.id() {
                records.push(record);
            }
        }
        match self.mode {
            PgMode::Transactional => {
                let found: BTreeMap<(u64, u32), u64> = client
                    .query(&self.table.count_staged_sql(), &[])
                    .map_err(self.failed("counting staged rows"))?
                    .into_iter()
                    .map(|r| {
                        let (c, t, n): (i64, i32, i64) = (r.get(0), r.get(1), r.get(2));
                        ((c as u64, t as u32), n as u64)
                    })
                    .collect();
                let expected = expected_rows(&records, committed, restored);
                if let Some(((checkpoint, task), recorded, found)) =
                    staging_mismatch(&expected, &found, restored)
                {
                    return Err(PgSinkError::StagingMismatch {
                        table: self.table.id(),
                        checkpoint: CheckpointId(checkpoint),
                        task,
                        recorded,
                        found,
                        restored,
                    }
                    .into());
                }
            }
            PgMode::TwoPhase => {
                // Prepared after the restored checkpoint: never part of a complete one.
                for (id, gid) in &prepared {
                    if *id > restored {
                        self.finish_prepared(client, gid, false)?;
                    }
                }
            }
        }
        client
            .execute(&self.table.discard_staged_sql(), &[&(restored.0 as i64)])
            .map_err(self.failed("discarding staged rows of incomplete checkpoints"))?;
        self.commit_on(client, restored)
    }
}

impl Committer for PgCommitter {
    fn open(&self, restored: Option<&RestoredState>) -> Result<(), BoxError> {
        let mut slot = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        // A restart opens again: the old connection (and its lock) goes first.
        *slot = None;
        let mut client = connect(&self.url)?;
        self.open_on(&mut client, restored)?;
        *slot = Some(client);
        Ok(())
    }

    fn close(&self, interrupted: bool) {
        // In two-phase mode a writer can wait on a row lock of its own transaction prepared
        // for an earlier checkpoint, which only the next attempt's `open` resolves: after a
        // failure, cancel whatever the writers are doing so that their tasks end.
        let cancels =
            std::mem::take(&mut *self.cancels.lock().unwrap_or_else(PoisonError::into_inner));
        if interrupted {
            for token in cancels {
                let _ = token.cancel_query(NoTls);
            }
        }
        // Dropping the connection releases the table's advisory lock.
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn commit(&self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        let mut slot = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        let client = slot
            .as_mut()
            .ok_or("the PostgreSQL committer was not opened")?;
        self.commit_on(client, checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_name_their_database_table_task_and_checkpoint() {
        let g = gid("db/ledger.balances", 3, CheckpointId(17));
        assert_eq!(
            parse_gid("db/ledger.balances", &g),
            Some((3, CheckpointId(17)))
        );
        assert_eq!(parse_gid("db/ledger.bal", &g), None);
        assert_eq!(parse_gid("other/ledger.balances", &g), None);
        assert_eq!(parse_gid("db/ledger.balances", "other"), None);
        // A table whose name continues with ':' is another table.
        let longer = gid("db/a:b", 1, CheckpointId(2));
        assert_eq!(parse_gid("db/a", &longer), None);
    }

    fn record(task: u32, parts: &[(u64, u64)]) -> TaskRecord {
        TaskRecord {
            table: "t".into(),
            task,
            parts: parts.to_vec(),
        }
    }

    #[test]
    fn staged_rows_must_match_the_checkpoint() {
        let records = [record(0, &[(3, 10), (4, 5)]), record(1, &[(4, 7)])];
        // Checkpoint 3 was applied already; 4 is restored.
        let expected = expected_rows(&records, CheckpointId(3), CheckpointId(4));
        assert_eq!(expected.len(), 2);
        let found: BTreeMap<_, _> = [((4, 0), 5), ((4, 1), 7), ((5, 0), 99)].into();
        assert_eq!(staging_mismatch(&expected, &found, CheckpointId(4)), None);
        // Lost rows.
        let lost: BTreeMap<_, _> = [((4, 0), 5)].into();
        assert_eq!(
            staging_mismatch(&expected, &lost, CheckpointId(4)),
            Some(((4, 1), 7, 0))
        );
        // Rows nobody recorded.
        let extra: BTreeMap<_, _> = [((4, 0), 5), ((4, 1), 7), ((2, 3), 1)].into();
        assert_eq!(
            staging_mismatch(&expected, &extra, CheckpointId(4)),
            Some(((2, 3), 0, 1))
        );
    }
}
