#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! The chaos driver's PostgreSQL side: where the ledger writes (a private server, or a fresh
//! schema on a given one), the invariants its tables must hold at every moment, and the final
//! comparison with the sequential ledger.

use crate::ledger_model::Reference;
use crate::ledger_pg;
use crate::pg_server::PgServer;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;

/// How the ledger's PostgreSQL sink commits, as `--postgres-mode` of the ledger names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PgCommit {
    /// One transaction per checkpoint for all tasks: readers see whole checkpoints.
    Transactional,
    /// One prepared transaction per task and checkpoint: visibility is per task.
    TwoPhase,
}

impl PgCommit {
    /// The ledger's `--postgres-mode` value.
    pub fn arg(self) -> &'static str {
        match self {
            PgCommit::Transactional => "transactional",
            PgCommit::TwoPhase => "two-phase",
        }
    }

    /// The sink's mode, for a job built in this process.
    pub fn mode(self) -> snapflow::postgres::PgMode {
        match self {
            PgCommit::Transactional => snapflow::postgres::PgMode::Transactional,
            PgCommit::TwoPhase => snapflow::postgres::PgMode::TwoPhase,
        }
    }
}

/// The database of one chaos run: a private server started for the run, or a schema of its
/// own, created fresh, on a server the user gave.
pub struct PgTarget {
    /// The private server, stopped and removed on drop.
    server: Option<PgServer>,
    pub url: String,
    pub schema: String,
}

impl PgTarget {
    /// Starts a private server (`url` is `None`) or creates the fresh schema `schema` at
    /// `url`; refuses a schema that exists, so that the run owns everything in it.
    ///
    /// # Errors
    ///
    /// When the server cannot start, the database cannot be reached or the schema exists.
    pub fn open(url: Option<&str>, schema: String) -> Result<PgTarget> {
        let (server, url) = match url {
            Some(url) => (None, url.to_owned()),
            None => {
                let server = PgServer::start().context("cannot start a private PostgreSQL")?;
                let url = server.url();
                (Some(server), url)
            }
        };
        let mut client = postgres::Client::connect(&url, postgres::NoTls)
            .with_context(|| format!("cannot connect to {url}"))?;
        client
            .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
            .with_context(|| format!("cannot create the fresh schema {schema}"))?;
        Ok(PgTarget {
            server,
            url,
            schema,
        })
    }

    /// Whether the driver started the server itself.
    pub fn is_private(&self) -> bool {
        self.server.is_some()
    }

    /// Drops the run's schema (which it created) on a server the user gave; a private server
    /// goes away on drop with everything in it.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached.
    pub fn drop_schema(&self) -> Result<()> {
        if self.is_private() {
            return Ok(());
        }
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)?;
        client.batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))?;
        Ok(())
    }

    /// The prepared transactions of this run's tables still on the server (the sink names
    /// them `snapflow:SCHEMA.TABLE:TASK:CHECKPOINT`).
    ///
    /// # Errors
    ///
    /// When the database cannot be reached.
    pub fn prepared(&self) -> Result<Vec<String>> {
        let prefix = format!("snapflow:{}.", self.schema);
        Ok(ledger_pg::prepared_transactions(&self.url)?
            .into_iter()
            .filter(|gid| gid.starts_with(&prefix))
            .collect())
    }

    /// The checkpoint `snapflow_commits` records per sink, for violation reports (read after
    /// the snapshot that failed, so possibly a later one).
    pub fn commits(&self) -> String {
        let read = || -> Result<String> {
            let mut client = postgres::Client::connect(&self.url, postgres::NoTls)?;
            let rows = client.query(
                &format!(
                    "SELECT sink, checkpoint FROM \"{}\".snapflow_commits ORDER BY sink",
                    self.schema
                ),
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| format!("{} at {}", r.get::<_, String>(0), r.get::<_, i64>(1)))
                .collect::<Vec<_>>()
                .join(", "))
        };
        read().unwrap_or_else(|e| format!("(snapflow_commits unreadable: {e})"))
    }
}

/// What must hold of the ledger's tables at every moment, checked in one SQL snapshot each
/// time, and across snapshots.
pub struct PgInvariants<'a> {
    reference: &'a Reference,
    expected_dead: Vec<String>,
    /// Two-phase commits make one task's part of a checkpoint visible before another's, so
    /// the balances sum to zero only between checkpoints' commits, not at every moment.
    whole_checkpoints: bool,
    /// Each account's version at the last check.
    versions: HashMap<String, u64>,
    /// Dead letters at the last check.
    dead: usize,
}

impl<'a> PgInvariants<'a> {
    pub fn new(reference: &'a Reference, commit: PgCommit) -> PgInvariants<'a> {
        PgInvariants {
            reference,
            expected_dead: reference.dead_letters(),
            whole_checkpoints: commit == PgCommit::Transactional,
            versions: HashMap::new(),
            dead: 0,
        }
    }

    /// Reads the tables in one snapshot and checks them: every account is one of the
    /// reference's, with a version in 1..=its final one that never decreases and never
    /// vanishes between checks, and the final balance once at the final version; the dead
    /// letters are a sub-multiset of the reference's that never shrinks; with whole
    /// checkpoints visible, the balances sum to 0.
    ///
    /// # Errors
    ///
    /// The first violation, or a read that failed.
    pub fn check(&mut self, target: &PgTarget) -> Result<(), String> {
        let tables = ledger_pg::read(&target.url, &target.schema)
            .map_err(|e| format!("cannot read the tables: {e}"))?;
        for (account, &(balance, version)) in &tables.balances {
            let Some(&(final_balance, final_version)) = self.reference.balances.get(account) else {
                return Err(format!("{account}: not an account of the input"));
            };
            if version == 0 || version > final_version {
                return Err(format!(
                    "{account}: version {version} outside 1..={final_version}"
                ));
            }
            if version == final_version && balance != final_balance {
                return Err(format!(
                    "{account}: balance {balance} at the final version {version}, expected {final_balance}"
                ));
            }
        }
        for (account, &before) in &self.versions {
            match tables.balances.get(account) {
                None => return Err(format!("{account}: was at version {before}, now gone")),
                Some(&(_, now)) if now < before => {
                    return Err(format!(
                        "{account}: version went from {before} back to {now}"
                    ))
                }
                Some(_) => {}
            }
        }
        if tables.dead_letters.len() < self.dead {
            return Err(format!(
                "dead letters went from {} down to {}",
                self.dead,
                tables.dead_letters.len()
            ));
        }
        if let Some(extra) = not_contained(&tables.dead_letters, &self.expected_dead) {
            return Err(format!(
                "dead letter {extra:?} is not in the input's, or is there once too often"
            ));
        }
        if self.whole_checkpoints {
            let sum: i128 = tables.balances.values().map(|(b, _)| b).sum();
            if sum != 0 {
                return Err(format!(
                    "committed balances sum to {sum}, not 0 ({} accounts)",
                    tables.balances.len()
                ));
            }
        }
        self.versions = tables
            .balances
            .iter()
            .map(|(a, &(_, v))| (a.clone(), v))
            .collect();
        self.dead = tables.dead_letters.len();
        Ok(())
    }
}

/// The tables at the end equal the sequential ledger's: balances with versions, dead letters;
/// and no prepared transaction of the run is left on the server.
///
/// # Errors
///
/// What differs, or a read that failed.
pub fn verify(target: &PgTarget, reference: &Reference) -> Result<()> {
    let tables = ledger_pg::read(&target.url, &target.schema)?;
    let sum: i128 = tables.balances.values().map(|(b, _)| b).sum();
    if sum != 0 {
        bail!("the final balances sum to {sum}, not 0");
    }
    if tables.balances != reference.balances {
        let mut differ: Vec<String> = reference
            .balances
            .iter()
            .filter(|(a, want)| tables.balances.get(*a) != Some(want))
            .map(|(a, want)| format!("{a}: {:?}, expected {want:?}", tables.balances.get(a)))
            .collect();
        differ.sort();
        let extra = tables
            .balances
            .keys()
            .filter(|a| !reference.balances.contains_key(*a))
            .count();
        bail!(
            "{} of {} accounts differ from the sequential ledger, {extra} unknown ones; first: {}",
            differ.len(),
            reference.balances.len(),
            differ.first().map_or("-", String::as_str)
        );
    }
    let expected = reference.dead_letters();
    if tables.dead_letters != expected {
        bail!(
            "{} dead letters, {} in the sequential ledger, or different ones",
            tables.dead_letters.len(),
            expected.len()
        );
    }
    let prepared = target.prepared()?;
    if !prepared.is_empty() {
        bail!(
            "{} prepared transactions left behind: {}",
            prepared.len(),
            prepared.join(", ")
        );
    }
    Ok(())
}

/// The first line of sorted `got` that sorted `all` does not hold (counting repeats).
fn not_contained<'g>(got: &'g [String], all: &[String]) -> Option<&'g String> {
    let mut rest = all.iter();
    'lines: for line in got {
        for candidate in rest.by_ref() {
            if candidate == line {
                continue 'lines;
            }
            if candidate > line {
                return Some(line);
            }
        }
        return Some(line);
    }
    None
}
