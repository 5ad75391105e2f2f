//! Query results: rows of values, written as CSV that the Flink peer's `compare.py` reads.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write as _;

/// One field of a result row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Value {
    /// A BIGINT.
    Int(i64),
    /// A DECIMAL with 3 digits after the point, as thousandths (q1's `0.908 * price`).
    Milli(i64),
    /// A TIMESTAMP(3), ms since the epoch, written in UTC as `YYYY-MM-DD HH:MM:SS.fff`.
    Time(u64),
    /// A STRING.
    Str(String),
}

/// One result row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Appends the row as one CSV line without its line ending: fields separated by commas,
    /// a string quoted (RFC 4180) when it holds a comma, a quote or a line break.
    pub fn write_csv(&self, line: &mut Vec<u8>) {
        for (i, value) in self.0.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            // Writing into a vector cannot fail.
            let _ = write!(line, "{value}");
        }
    }

    /// The row as a CSV line, without its line ending.
    pub fn to_csv(&self) -> String {
        let mut line = Vec::new();
        self.write_csv(&mut line);
        String::from_utf8(line).expect("rows are UTF-8")
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Milli(m) => {
                let sign = if *m < 0 { "-" } else { "" };
                let abs = m.unsigned_abs();
                write!(f, "{sign}{}.{:03}", abs / 1000, abs % 1000)
            }
            Value::Time(ms) => f.write_str(&format_timestamp(*ms)),
            Value::Str(s) if s.contains([',', '"', '\n', '\r']) => {
                write!(f, "\"{}\"", s.replace('"', "\"\""))
            }
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// `ms` since the epoch as a UTC `YYYY-MM-DD HH:MM:SS.fff` (Flink's TIMESTAMP(3) in UTC).
pub fn format_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// The proleptic Gregorian date of a day number since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00.000");
        assert_eq!(
            format_timestamp(1_436_918_400_000),
            "2015-07-15 00:00:00.000"
        );
        assert_eq!(
            format_timestamp(1_436_918_401_580),
            "2015-07-15 00:00:01.580"
        );
        assert_eq!(
            format_timestamp(951_782_400_000 + 86_399_999),
            "2000-02-29 23:59:59.999"
        );
        assert_eq!(
            format_timestamp(1_709_251_199_000),
            "2024-02-29 23:59:59.000"
        );
    }

    #[test]
    fn csv_quotes_only_where_needed() {
        let row = Row(vec![
            Value::Int(-3),
            Value::Milli(12_276_160_000),
            Value::Milli(7),
            Value::Str("los angeles".into()),
            Value::Str("a,\"b\"".into()),
            Value::Time(1_436_918_400_001),
        ]);
        assert_eq!(
            row.to_csv(),
            "-3,12276160.000,0.007,los angeles,\"a,\"\"b\"\"\",2015-07-15 00:00:00.001"
        );
    }
}
