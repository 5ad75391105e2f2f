//! The SQL of a sink's table: its definition, its staging table, and the statement that applies
//! staged rows. Built as strings here and tested without a database.

/// A target table of a [`PostgresSink`](crate::PostgresSink): its columns and how staged rows
/// are applied to it.
#[derive(Clone, Debug)]
pub struct PgTable {
    schema: String,
    name: String,
    /// Column names and SQL types, in the order a row's values are written.
    columns: Vec<(String, String)>,
    /// Upsert: the key columns and the column whose highest value wins.
    upsert: Option<(Vec<String>, String)>,
}

/// `"name"`, with inner quotes doubled.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    names
        .into_iter()
        .map(|n| quote(n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl PgTable {
    /// A table whose rows are appended (`INSERT`), in checkpoint, task and arrival order.
    /// `columns` are `(name, SQL type)` pairs, e.g. `("reason", "TEXT NOT NULL")`.
    pub fn insert(name: &str, columns: &[(&str, &str)]) -> PgTable {
        PgTable {
            schema: "public".to_owned(),
            name: name.to_owned(),
            columns: columns
                .iter()
                .map(|(c, t)| ((*c).to_owned(), (*t).to_owned()))
                .collect(),
            upsert: None,
        }
    }

    /// A table with primary key `key` whose rows are upserted: of several rows for one key,
    /// the one with the highest `newest_by` wins, within a checkpoint and across checkpoints
    /// (an older row never overwrites a newer one), so the table holds the latest row per key.
    /// `newest_by` should be `NOT NULL` (a row whose value is NULL never replaces another).
    /// An integer `newest_by` lets each writer keep only the newest row per key between
    /// barriers; other types are compared by the database only.
    ///
    /// In [`PgMode::TwoPhase`](crate::PgMode::TwoPhase), rows of one key must all reach the
    /// same sink task (key the stream by the table's key before the sink): a task's prepared
    /// transaction holds its keys' row locks until the checkpoint completes, so two tasks
    /// upserting one key in one checkpoint would wait on each other.
    pub fn upsert(name: &str, columns: &[(&str, &str)], key: &[&str], newest_by: &str) -> PgTable {
        PgTable {
            upsert: Some((
                key.iter().map(|k| (*k).to_owned()).collect(),
                newest_by.to_owned(),
            )),
            ..PgTable::insert(name, columns)
        }
    }

    /// The table in schema `schema` (default `public`), which is created if missing.
    pub fn in_schema(mut self, schema: &str) -> PgTable {
        self.schema = schema.to_owned();
        self
    }

    /// `schema.name`: how the sink names the table in messages and in `snapflow_commits`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// For an upsert table: the positions of the key columns and of the newest-by column.
    pub(crate) fn upsert_positions(&self) -> Option<(Vec<usize>, usize)> {
        let (key, newest) = self.upsert.as_ref()?;
        let position = |name: &str| self.columns.iter().position(|(c, _)| c == name);
        let key = key
            .iter()
            .map(|k| position(k))
            .collect::<Option<Vec<_>>>()?;
        Some((key, position(newest)?))
    }

    /// How many values a row has.
    pub(crate) fn arity(&self) -> usize {
        self.columns.len()
    }

    fn target(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.name))
    }

    fn staging(&self) -> String {
        format!(
            "{}.{}",
            quote(&self.schema),
            quote(&format!("snapflow_stage_{}", self.name))
        )
    }

    pub(crate) fn commits(&self) -> String {
        format!("{}.snapflow_commits", quote(&self.schema))
    }

    fn column_names(&self) -> String {
        list(self.columns.iter().map(|(c, _)| c))
    }

    /// The relations [`create_sql`](Self::create_sql) makes, as `to_regclass` arguments.
    pub(crate) fn relations(&self) -> Vec<String> {
        vec![
            self.target(),
            self.staging(),
            format!(
                "{}.{}",
                quote(&self.schema),
                quote(&format!("snapflow_stage_{}_checkpoint", self.name))
            ),
            self.commits(),
        ]
    }

    /// Creates the schema, the target, its staging table and the commit table if missing.
    pub(crate) fn create_sql(&self) -> String {
        let defs = |extra: &str| {
            let mut defs: Vec<String> = self
                .columns
                .iter()
                .map(|(c, t)| format!("{} {t}", quote(c)))
                .collect();
            if !extra.is_empty() {
                defs.push(extra.to_owned());
            }
            defs.join(", ")
        };
        let key = match &self.upsert {
            Some((key, _)) => format!("PRIMARY KEY ({})", list(key)),
            None => String::new(),
        };
        format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};\n\
             CREATE TABLE IF NOT EXISTS {target} ({target_defs});\n\
             CREATE TABLE IF NOT EXISTS {staging} (snapflow_checkpoint BIGINT NOT NULL, snapflow_task INT NOT NULL, snapflow_seq BIGINT NOT NULL, {staging_defs});\n\
             CREATE INDEX IF NOT EXISTS {index} ON {staging} (snapflow_checkpoint, snapflow_task);\n\
             CREATE TABLE IF NOT EXISTS {commits} (sink TEXT PRIMARY KEY, checkpoint BIGINT NOT NULL, committed_at TIMESTAMPTZ NOT NULL DEFAULT now());",
            schema = quote(&self.schema),
            target = self.target(),
            target_defs = defs(&key),
            staging = self.staging(),
            staging_defs = defs(""),
            index = quote(&format!("snapflow_stage_{}_checkpoint", self.name)),
            commits = self.commits(),
        )
    }

    /// `COPY` of staged rows: checkpoint, task, sequence number, then the row's values.
    pub(crate) fn copy_sql(&self) -> String {
        format!(
            "COPY {} (snapflow_checkpoint, snapflow_task, snapflow_seq, {}) FROM STDIN",
            self.staging(),
            self.column_names()
        )
    }

    /// The staged rows up to checkpoint `$1` (and, with `per_task`, of task `$2` only).
    fn staged_filter(per_task: bool) -> &'static str {
        if per_task {
            "snapflow_checkpoint <= $1 AND snapflow_task = $2"
        } else {
            "snapflow_checkpoint <= $1"
        }
    }

    /// Applies the staged rows up to checkpoint `$1` (of task `$2` with `per_task`) to the
    /// target.
    pub(crate) fn apply_sql(&self, per_task: bool) -> String {
        let columns = self.column_names();
        let filter = Self::staged_filter(per_task);
        match &self.upsert {
            None => format!(
                "INSERT INTO {target} ({columns}) SELECT {columns} FROM {staging} WHERE {filter} ORDER BY snapflow_checkpoint, snapflow_task, snapflow_seq",
                target = self.target(),
                staging = self.staging(),
            ),
            Some((key, newest)) => {
                let updates: Vec<String> = self
                    .columns
                    .iter()
                    .filter(|(c, _)| !key.contains(c))
                    .map(|(c, _)| format!("{c} = EXCLUDED.{c}", c = quote(c)))
                    .collect();
                let on_conflict = if updates.is_empty() {
                    "DO NOTHING".to_owned()
                } else {
                    format!(
                        "DO UPDATE SET {} WHERE {target}.{newest} <= EXCLUDED.{newest}",
                        updates.join(", "),
                        target = self.target(),
                        newest = quote(newest),
                    )
                };
                format!(
                    "INSERT INTO {target} ({columns}) SELECT DISTINCT ON ({key}) {columns} FROM {staging} WHERE {filter} ORDER BY {key}, {newest} DESC NULLS LAST, snapflow_checkpoint DESC, snapflow_seq DESC ON CONFLICT ({key}) {on_conflict}",
                    target = self.target(),
                    staging = self.staging(),
                    key = list(key),
                    newest = quote(newest),
                )
            }
        }
    }

    /// Deletes the staged rows up to checkpoint `$1` (of task `$2` with `per_task`).
    pub(crate) fn delete_staged_sql(&self, per_task: bool) -> String {
        format!(
            "DELETE FROM {} WHERE {}",
            self.staging(),
            Self::staged_filter(per_task)
        )
    }

    /// Records checkpoint `$2` as the last one committed for sink `$1`.
    pub(crate) fn record_commit_sql(&self) -> String {
        format!(
            "INSERT INTO {} (sink, checkpoint) VALUES ($1, $2) ON CONFLICT (sink) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, committed_at = now()",
            self.commits()
        )
    }

    /// Deletes staged rows of checkpoints after `$1` (incomplete ones).
    pub(crate) fn discard_staged_sql(&self) -> String {
        format!(
            "DELETE FROM {} WHERE snapflow_checkpoint > $1",
            self.staging()
        )
    }

    /// Counts staged rows per checkpoint and task.
    pub(crate) fn count_staged_sql(&self) -> String {
        format!(
            "SELECT snapflow_checkpoint, snapflow_task, count(*) FROM {} GROUP BY 1, 2",
            self.staging()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balances() -> PgTable {
        PgTable::upsert(
            "balances",
            &[
                ("account", "TEXT NOT NULL"),
                ("balance", "BIGINT NOT NULL"),
                ("version", "BIGINT NOT NULL"),
            ],
            &["account"],
            "version",
        )
        .in_schema("ledger")
    }

    #[test]
    fn an_upsert_keeps_the_newest_row_per_key() {
        let sql = balances().apply_sql(false);
        assert_eq!(
            sql,
            "INSERT INTO \"ledger\".\"balances\" (\"account\", \"balance\", \"version\") \
             SELECT DISTINCT ON (\"account\") \"account\", \"balance\", \"version\" \
             FROM \"ledger\".\"snapflow_stage_balances\" WHERE snapflow_checkpoint <= $1 \
             ORDER BY \"account\", \"version\" DESC NULLS LAST, snapflow_checkpoint DESC, snapflow_seq DESC \
             ON CONFLICT (\"account\") DO UPDATE SET \"balance\" = EXCLUDED.\"balance\", \
             \"version\" = EXCLUDED.\"version\" \
             WHERE \"ledger\".\"balances\".\"version\" <= EXCLUDED.\"version\""
        );
        assert!(balances()
            .apply_sql(true)
            .contains("AND snapflow_task = $2"));
    }

    #[test]
    fn an_insert_keeps_arrival_order_and_names_are_quoted() {
        let table = PgTable::insert("dead \"letters\"", &[("reason", "TEXT"), ("line", "TEXT")]);
        let sql = table.apply_sql(false);
        assert!(
            sql.starts_with("INSERT INTO \"public\".\"dead \"\"letters\"\"\""),
            "{sql}"
        );
        assert!(sql.ends_with("ORDER BY snapflow_checkpoint, snapflow_task, snapflow_seq"));
        assert!(table.create_sql().contains("snapflow_commits"));
        assert_eq!(table.id(), "public.dead \"letters\"");
    }

    #[test]
    fn the_target_has_the_key_and_the_staging_table_does_not() {
        let sql = balances().create_sql();
        assert!(sql.contains("PRIMARY KEY (\"account\")"));
        let staging_line = sql
            .lines()
            .find(|l| l.contains("snapflow_stage_balances\" ("))
            .unwrap();
        assert!(!staging_line.contains("PRIMARY KEY"), "{staging_line}");
    }
}
