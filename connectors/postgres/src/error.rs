//! Errors of the PostgreSQL sink.

use snapflow_checkpoint::CheckpointId;

/// Why the PostgreSQL sink could not write, commit or resume.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgSinkError {
    /// The database could not be reached (or the connection was lost).
    #[error("cannot reach PostgreSQL at {url}")]
    Connect {
        /// The connection URL, without its password.
        url: String,
        /// Why.
        source: postgres::Error,
    },
    /// A statement failed.
    #[error("PostgreSQL {what} failed for table {table}")]
    Statement {
        /// What the sink was doing.
        what: String,
        /// The target table.
        table: String,
        /// The database's error.
        source: postgres::Error,
    },
    /// Sending staged rows failed.
    #[error("copying rows into the staging table of {table} failed")]
    Copy {
        /// The target table.
        table: String,
        /// Why.
        source: std::io::Error,
    },
    /// Another job (or another run) holds the table.
    #[error("table {table} is being written by another snapflow job (it holds the table's advisory lock); two jobs must not write one table")]
    Locked {
        /// The target table.
        table: String,
    },
    /// A fresh start into a table that an earlier run committed to.
    #[error("table {table} already holds output of an earlier run (committed up to checkpoint {committed}), and the checkpoint directory has no checkpoint of it; empty the table and delete its row in snapflow_commits, or resume with that run's checkpoint directory")]
    EarlierRun {
        /// The target table.
        table: String,
        /// The checkpoint the earlier run committed last.
        committed: CheckpointId,
    },
    /// The table was committed past the checkpoint the job resumes from: that checkpoint's
    /// successor's manifest is lost, and resuming would apply its rows twice.
    #[error("table {table} was committed up to checkpoint {committed}, newer than checkpoint {restored} that the job would resume from: the manifest of checkpoint {committed} is missing from the checkpoint directory, and resuming would write its rows twice; restore the checkpoint directory, or start over with an empty table and checkpoint directory")]
    NewerCommitted {
        /// The target table.
        table: String,
        /// What the database says was committed.
        committed: CheckpointId,
        /// The checkpoint being restored.
        restored: CheckpointId,
    },
    /// Staged rows that the restored checkpoint recorded are missing or more.
    #[error("the staging table of {table} holds {found} rows of task {task} for checkpoint {checkpoint}, but checkpoint {restored} recorded {recorded}: the staging table was changed; those rows cannot be recomputed; restore the database, or start over with an empty table and checkpoint directory")]
    StagingMismatch {
        /// The target table.
        table: String,
        /// The checkpoint whose rows they are.
        checkpoint: CheckpointId,
        /// The sink task.
        task: u32,
        /// Rows the checkpoint recorded.
        recorded: u64,
        /// Rows found.
        found: u64,
        /// The checkpoint being restored.
        restored: CheckpointId,
    },
    /// A transactional run found transactions that a two-phase run of the table prepared.
    #[error("table {table} has transactions prepared by a two-phase run (such as {gid}); resume in two-phase mode, or start over with an empty table and checkpoint directory")]
    PreparedPending {
        /// The target table.
        table: String,
        /// One of the prepared transactions.
        gid: String,
    },
    /// The checkpoint's sink state is not this sink's.
    #[error("checkpoint {restored}: the state of the sink of table {table} is not a PostgreSQL sink's record")]
    BadRecord {
        /// The target table.
        table: String,
        /// The checkpoint being restored.
        restored: CheckpointId,
    },
}

/// `url` without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("postgres://me:secret@127.0.0.1:5432/db"),
            "postgres://me:***@127.0.0.1:5432/db"
        );
        assert_eq!(
            redact("postgres://me@127.0.0.1/db"),
            "postgres://me@127.0.0.1/db"
        );
        assert_eq!(redact("host=127.0.0.1"), "host=127.0.0.1");
    }
}
