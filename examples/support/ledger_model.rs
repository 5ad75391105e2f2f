#![allow(dead_code)] // Shared by the ledger example and its tests; each uses part of it.
//! The double-entry ledger's input format, parsing, and a sequential reference computation.
//!
//! Input lines are `id,from,to,amount`: `id` a u64; `from`, `to` non-empty account names
//! without commas or whitespace (from == to is allowed); `amount` a positive integer up to
//! 10^12. Blank lines are ignored; any other line is malformed.

use super::rng::SplitMix64;
use std::collections::{HashMap, HashSet};

/// The largest amount a transfer may move.
pub const MAX_AMOUNT: u64 = 1_000_000_000_000;

/// A valid transfer, with the line it came from (for the dead-letter output of duplicates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub id: u64,
    pub from: String,
    pub to: String,
    pub amount: u64,
    pub line: String,
}

/// What one input line is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Transfer(Transfer),
    Malformed(String),
    Blank,
}

fn account(name: &str) -> Option<String> {
    (!name.is_empty() && !name.chars().any(char::is_whitespace)).then(|| name.to_owned())
}

/// Parses one input line.
pub fn parse(line: String) -> Parsed {
    if line.trim().is_empty() {
        return Parsed::Blank;
    }
    let transfer = (|| {
        let mut fields = line.split(',');
        let id = fields.next()?.parse::<u64>().ok()?;
        let from = account(fields.next()?)?;
        let to = account(fields.next()?)?;
        let amount = fields.next()?.parse::<u64>().ok()?;
        if fields.next().is_some() || amount == 0 || amount > MAX_AMOUNT {
            return None;
        }
        Some((id, from, to, amount))
    })();
    match transfer {
        Some((id, from, to, amount)) => Parsed::Transfer(Transfer {
            id,
            from,
            to,
            amount,
            line,
        }),
        None => Parsed::Malformed(line),
    }
}

/// The sequential result of a whole input: final balance and entry count per account,
/// malformed lines, duplicate lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reference {
    pub balances: HashMap<String, (i128, u64)>,
    pub malformed: Vec<String>,
    pub duplicates: Vec<String>,
}

impl Reference {
    /// The dead-letter lines the ledger must write, sorted.
    pub fn dead_letters(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .malformed
            .iter()
            .map(|l| format!("malformed\t{l}"))
            .chain(self.duplicates.iter().map(|l| format!("duplicate\t{l}")))
            .collect();
        lines.sort();
        lines
    }
}

/// The latest balance and version of every account in `account<TAB>balance<TAB>version`
/// output lines: the line with the highest version.
pub fn latest_balances(lines: &[String]) -> Result<HashMap<String, (i128, u64)>, String> {
    let mut latest: HashMap<String, (i128, u64)> = HashMap::new();
    for line in lines {
        let mut fields = line.split('\t');
        let (Some(account), Some(balance), Some(version), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("malformed output line {line:?}"));
        };
        let balance: i128 = balance
            .parse()
            .map_err(|_| format!("bad balance in {line:?}"))?;
        let version: u64 = version
            .parse()
            .map_err(|_| format!("bad version in {line:?}"))?;
        let entry = latest.entry(account.to_owned()).or_insert((0, 0));
        if version > entry.1 {
            *entry = (balance, version);
        }
    }
    Ok(latest)
}

/// Computes the ledger sequentially, one line after another.
pub fn reference(text: &str) -> Reference {
    let mut r = Reference::default();
    let mut seen = HashSet::new();
    for line in text.lines() {
        match parse(line.to_owned()) {
            Parsed::Blank => {}
            Parsed::Malformed(line) => r.malformed.push(line),
            Parsed::Transfer(t) if !seen.insert(t.id) => r.duplicates.push(t.line),
            Parsed::Transfer(t) => {
                for (account, delta) in [(t.from, -(t.amount as i128)), (t.to, t.amount as i128)] {
                    let entry = r.balances.entry(account).or_insert((0, 0));
                    entry.0 += delta;
                    entry.1 += 1;
                }
            }
        }
    }
    r
}

/// A deterministic workload: `transfers` transfers between `accounts` accounts, about one line
/// in 500 malformed and one in 200 a resubmission of an earlier transfer (same line again).
pub fn workload(transfers: u64, accounts: u64, seed: u64) -> String {
    let mut rng = SplitMix64(seed);
    let mut text = String::new();
    let mut recent: Vec<String> = Vec::new();
    for id in 0..transfers {
        let roll = rng.next() % 1000;
        if roll < 2 {
            let bad = [
                "",
                "not a transfer",
                "1,a,b",
                "x,a,b,5",
                "2,a,b,0",
                "3,a,,4",
                "4,a b,c,5",
                "5,a,b,1000000000001",
            ];
            text.push_str(bad[(rng.next() % bad.len() as u64) as usize]);
            text.push('\n');
        } else if roll < 7 && !recent.is_empty() {
            let again = recent[(rng.next() % recent.len() as u64) as usize].clone();
            text.push_str(&again);
            text.push('\n');
        }
        let from = rng.next() % accounts;
        let to = rng.next() % accounts;
        let amount = 1 + rng.next() % 10_000;
        let line = format!("{id},acct{from},acct{to},{amount}");
        text.push_str(&line);
        text.push('\n');
        if recent.len() < 64 {
            recent.push(line);
        } else {
            let slot = (rng.next() % 64) as usize;
            recent[slot] = line;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_and_rejects_malformed() {
        assert!(matches!(
            parse("7,a,b,5".into()),
            Parsed::Transfer(Transfer {
                id: 7,
                amount: 5,
                ..
            })
        ));
        assert!(matches!(
            parse("7,a,a,1000000000000".into()),
            Parsed::Transfer(_)
        ));
        assert_eq!(parse("   ".into()), Parsed::Blank);
        for bad in [
            "7,a,b",
            "7,a,b,0",
            "7,a,b,-1",
            "x,a,b,1",
            "7,,b,1",
            "7,a b,c,1",
            "7,a,b,1,9",
            "7,a,b,1000000000001",
        ] {
            assert_eq!(parse(bad.into()), Parsed::Malformed(bad.into()), "{bad}");
        }
    }
}
