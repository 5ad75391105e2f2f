#![allow(dead_code)] // Shared by the ledger example, the chaos driver and the tests.
//! The ledger job graph, shared so that tests and the chaos driver run exactly what the example
//! runs. Needs `ledger_model` as a sibling module.

use super::ledger_model::{parse, Parsed, Transfer};
use snapflow::prelude::*;
use std::path::Path;

/// A transfer after de-duplication.
#[derive(Clone, Debug)]
pub enum Checked {
    Accepted(Transfer),
    Duplicate(String),
}

/// One side of an accepted transfer.
#[derive(Clone, Debug)]
pub struct Entry {
    pub account: String,
    pub delta: i128,
}

/// The ledger job: parse, de-duplicate by id, split into entries, apply per account.
pub fn build(input: &Path, output: &Path, dead_letter: &Path) -> Job {
    let job = Job::new("ledger");
    let parsed = job
        .source(TextFileSource::new(input))
        .name("read")
        .map(parse)
        .name("parse");
    let malformed = parsed
        .clone()
        .flat_map(|p: Parsed| match p {
            Parsed::Malformed(line) => Some(format!("malformed\t{line}")),
            _ => None,
        })
        .name("malformed");
    let checked = parsed
        .flat_map(|p: Parsed| match p {
            Parsed::Transfer(t) => Some(t),
            _ => None,
        })
        .name("transfers")
        .key_by(|t: &Transfer| t.id)
        .process(
            |_: &u64, t: Transfer, seen: &mut ValueState<()>, out: &mut Output<Checked>| {
                if seen.get().is_some() {
                    out.push(Checked::Duplicate(t.line));
                } else {
                    seen.set(());
                    out.push(Checked::Accepted(t));
                }
                Ok(())
            },
        )
        .name("dedup")
        .uid("dedup");
    let duplicates = checked
        .clone()
        .flat_map(|c: Checked| match c {
            Checked::Duplicate(line) => Some(format!("duplicate\t{line}")),
            Checked::Accepted(_) => None,
        })
        .name("duplicates");
    malformed
        .union(duplicates)
        .sink(FileSink::new(dead_letter))
        .name("write-dead-letters")
        .uid("dead-letters");
    checked
        .flat_map(|c: Checked| match c {
            Checked::Accepted(t) => vec![
                Entry {
                    account: t.from,
                    delta: -(t.amount as i128),
                },
                Entry {
                    account: t.to,
                    delta: t.amount as i128,
                },
            ],
            Checked::Duplicate(_) => Vec::new(),
        })
        .name("entries")
        .key_by(|e: &Entry| e.account.clone())
        .process(
            |account: &String,
             e: Entry,
             state: &mut ValueState<(i128, u64)>,
             out: &mut Output<(String, i128, u64)>| {
                let (balance, version) = state.get().copied().unwrap_or((0, 0));
                let next = (balance + e.delta, version + 1);
                state.set(next);
                out.push((account.clone(), next.0, next.1));
                Ok(())
            },
        )
        .name("balance")
        .uid("balance")
        .sink(FileSink::with_format(
            output,
            |(account, balance, version): &(String, i128, u64), buf: &mut Vec<u8>| {
                buf.extend_from_slice(format!("{account}\t{balance}\t{version}").as_bytes());
            },
        ))
        .name("write-balances")
        .uid("balances");
    job
}
