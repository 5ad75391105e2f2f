#![allow(dead_code)] // Shared by the ledger example, the chaos driver and the tests.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! Reads the ledger's PostgreSQL output back, in one SQL snapshot, in the shapes the model
//! computes (`ledger_model::reference`).

use std::collections::HashMap;

/// The ledger's committed output in PostgreSQL.
pub struct PgLedger {
    /// Latest balance and version per account.
    pub balances: HashMap<String, (i128, u64)>,
    /// Dead letters as `reason<TAB>line`, sorted.
    pub dead_letters: Vec<String>,
}

/// Reads `schema.balances` and `schema.dead_letters` in one repeatable-read transaction, so
/// that both come from one committed state. Tables that do not exist yet read as empty.
pub fn read(url: &str, schema: &str) -> Result<PgLedger, postgres::Error> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let exists =
        |tx: &mut postgres::Transaction<'_>, table: &str| -> Result<bool, postgres::Error> {
            Ok(tx
                .query_one(
                    "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
                    &[&schema, &table],
                )?
                .get(0))
        };
    let mut balances = HashMap::new();
    if exists(&mut tx, "balances")? {
        for row in tx.query(
            &format!("SELECT account, balance, version FROM \"{schema}\".balances"),
            &[],
        )? {
            let (account, balance, version): (String, i64, i64) =
                (row.get(0), row.get(1), row.get(2));
            balances.insert(account, (i128::from(balance), version as u64));
        }
    }
    let mut dead_letters = Vec::new();
    if exists(&mut tx, "dead_letters")? {
        for row in tx.query(
            &format!("SELECT reason, line FROM \"{schema}\".dead_letters"),
            &[],
        )? {
            let (reason, line): (String, String) = (row.get(0), row.get(1));
            dead_letters.push(format!("{reason}\t{line}"));
        }
    }
    dead_letters.sort();
    tx.commit()?;
    Ok(PgLedger {
        balances,
        dead_letters,
    })
}

/// `SELECT sum(balance) FROM schema.balances` in one snapshot (0 for no table or no rows).
pub fn balance_sum(url: &str, schema: &str) -> Result<i128, postgres::Error> {
    Ok(read(url, schema)?.balances.values().map(|(b, _)| b).sum())
}

/// The prepared transactions left on the server.
pub fn prepared_transactions(url: &str) -> Result<Vec<String>, postgres::Error> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    Ok(client
        .query("SELECT gid FROM pg_prepared_xacts", &[])?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
}
