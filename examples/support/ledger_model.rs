#![allow(dead_code)] // Shared by the ledger example and its tests; each uses part of it.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
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

/// The fields of a valid transfer line, borrowed from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields<'a> {
    pub id: u64,
    pub from: &'a str,
    pub to: &'a str,
    pub amount: u64,
    /// Whether the line is exactly `{id},{from},{to},{amount}`, its numbers without a `+` or
    /// leading zeros, so that it can be rebuilt from the fields.
    pub canonical: bool,
}

/// The fields of `line` if it is a valid transfer; `None` if it is blank or malformed. The
/// definition, written plainly: the sequential reference uses it, and [`fields`] must agree.
pub fn naive_fields(line: &str) -> Option<Fields<'_>> {
    let account = |name: &str| !name.is_empty() && !name.chars().any(char::is_whitespace);
    let mut fields = line.split(',');
    let id_text = fields.next()?;
    let from = fields.next().filter(|name| account(name))?;
    let to = fields.next().filter(|name| account(name))?;
    let amount_text = fields.next()?;
    let (id, amount) = (id_text.parse().ok()?, amount_text.parse().ok()?);
    if fields.next().is_some() || amount == 0 || amount > MAX_AMOUNT {
        return None;
    }
    // Numbers that parse are digits after an optional `+`.
    let canonical = |text: &str| !text.starts_with('+') && (!text.starts_with('0') || text == "0");
    Some(Fields {
        id,
        from,
        to,
        amount,
        canonical: canonical(id_text) && canonical(amount_text),
    })
}

/// [`naive_fields`], fast for the lines the ledger's input mostly holds: the job's parser.
pub fn fields(line: &str) -> Option<Fields<'_>> {
    plain_fields(line).or_else(|| naive_fields(line))
}

/// `fields` of the lines that the ledger's input mostly holds, in one pass over the bytes:
/// numbers of plain digits (up to 19, so that they cannot overflow), names of printable ASCII.
/// `None` means "not such a line", not "malformed": `naive_fields` then decides.
fn plain_fields(line: &str) -> Option<Fields<'_>> {
    let bytes = line.as_bytes();
    let is_digit = |b: u8| b.is_ascii_digit();
    let is_name = |b: u8| b != b',' && (b'!'..=b'~').contains(&b);
    let id_end = run_end(bytes, 0, is_digit);
    let from_end = run_end(bytes, id_end + 1, is_name);
    let to_end = run_end(bytes, from_end + 1, is_name);
    let amount_end = run_end(bytes, to_end + 1, is_digit);
    let commas = [id_end, from_end, to_end].map(|i| bytes.get(i) == Some(&b','));
    let (id, from, to, amount) = (
        &bytes[..id_end],
        line.get(id_end + 1..from_end)?,
        line.get(from_end + 1..to_end)?,
        bytes.get(to_end + 1..)?,
    );
    let plain = commas == [true; 3]
        && amount_end == bytes.len()
        && (1..=19).contains(&id.len())
        && (1..=19).contains(&amount.len())
        && !from.is_empty()
        && !to.is_empty();
    if !plain {
        return None;
    }
    let number = |digits: &[u8]| (digits.iter()).fold(0, |n: u64, &d| n * 10 + u64::from(d - b'0'));
    let amount_value = number(amount);
    if amount_value == 0 || amount_value > MAX_AMOUNT {
        return None;
    }
    Some(Fields {
        id: number(id),
        from,
        to,
        amount: amount_value,
        canonical: (id[0] != b'0' || id.len() == 1) && (amount[0] != b'0' || amount.len() == 1),
    })
}

/// The end of the run of bytes from `start` for which `pred` holds (`start` if none does,
/// or if `start` is past the end).
#[inline]
fn run_end(bytes: &[u8], start: usize, pred: impl Fn(u8) -> bool) -> usize {
    let mut end = start;
    while end < bytes.len() && pred(bytes[end]) {
        end += 1;
    }
    end
}

/// Whether `line` is blank (ignored rather than malformed).
pub fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Parses one input line.
pub fn parse(line: String) -> Parsed {
    if is_blank(&line) {
        return Parsed::Blank;
    }
    let transfer =
        naive_fields(&line).map(|f| (f.id, f.from.to_owned(), f.to.to_owned(), f.amount));
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

    /// The job's parser against the plain definition that the reference uses, on lines that
    /// try every rule and on random ones.
    #[test]
    fn fields_agrees_with_naive_fields() {
        let mut lines: Vec<String> = [
            "",
            ",",
            ",,,",
            "1,a,b,2",
            "1,a,b,2,",
            ",a,b,2",
            "1,,b,2",
            "1,a,,2",
            "1,a,b,",
            "+1,a,b,+2",
            "-1,a,b,2",
            "1,a,b,-2",
            "01,a,b,02",
            "18446744073709551616,a,b,1",
            "1,a,b,1000000000000",
            "1,a,b,1000000000001",
            "1,é,ü,3",
            "1,a\u{a0}b,c,3",
            "1,a\u{3000},c,3",
            "1,a\u{1}b,c,3",
            "1,a,b,3\r",
            " 1,a,b,3",
            "1,a,b,3 ",
            "1,a,b,3,4",
            "1,a,b,c,3",
            "1,a,b",
            "1,a",
            "1",
            "9999999999999999999,a,b,1",
            "10000000000000000000,a,b,1",
            "0000000000000000000001,a,b,1",
            "0,a,b,01",
        ]
        .map(str::to_owned)
        .to_vec();
        // Every ASCII character in an account name.
        lines.extend((0u8..128).map(|b| format!("1,a{}b,c,3", b as char)));
        // Random lines of four random fields over the characters that matter.
        let alphabet: Vec<char> = "0000123456789+-ab,\t \u{a0}\u{1}é".chars().collect();
        let mut rng = SplitMix64(3);
        let field = |rng: &mut SplitMix64| -> String {
            let len = rng.next() % 5;
            (0..len)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                .collect()
        };
        lines.extend((0..50_000).map(|_| {
            let fields: Vec<String> = (0..4).map(|_| field(&mut rng)).collect();
            fields.join(",")
        }));
        let valid = lines.iter().filter(|l| naive_fields(l).is_some()).count();
        assert!(valid > 500, "only {valid} valid lines");
        for line in &lines {
            let expected = naive_fields(line);
            assert_eq!(fields(line), expected, "{line:?}");
            if let Some(f) = expected {
                let formatted = format!("{},{},{},{}", f.id, f.from, f.to, f.amount);
                assert_eq!(f.canonical, formatted == *line, "{line:?}");
            }
        }
    }
}
