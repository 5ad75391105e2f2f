//! One row of `COPY ... FROM STDIN` text format: values separated by tabs, `\N` for null, and
//! backslash, tab, newline and carriage return escaped.

use std::fmt::Display;
use std::io::Write;

/// Writes the values of one row, in the table's column order (see
/// [`PostgresSink::new`](crate::PostgresSink::new)).
pub struct RowWriter<'a> {
    buf: &'a mut Vec<u8>,
    values: usize,
}

impl<'a> RowWriter<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u8>) -> RowWriter<'a> {
        RowWriter { buf, values: 0 }
    }

    fn separate(&mut self) {
        if self.values > 0 {
            self.buf.push(b'\t');
        }
        self.values += 1;
    }

    /// A text value, escaped.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.separate();
        for &b in value.as_bytes() {
            match b {
                b'\\' => self.buf.extend_from_slice(b"\\\\"),
                b'\t' => self.buf.extend_from_slice(b"\\t"),
                b'\n' => self.buf.extend_from_slice(b"\\n"),
                b'\r' => self.buf.extend_from_slice(b"\\r"),
                _ => self.buf.push(b),
            }
        }
        self
    }

    /// A number (any value whose `Display` needs no escaping: integers, floats, booleans).
    pub fn number(&mut self, value: impl Display) -> &mut Self {
        self.separate();
        // Writing into a Vec cannot fail.
        let _ = write!(self.buf, "{value}");
        self
    }

    /// SQL `NULL`.
    pub fn null(&mut self) -> &mut Self {
        self.separate();
        self.buf.extend_from_slice(b"\\N");
        self
    }

    /// How many values were written.
    pub(crate) fn values(&self) -> usize {
        self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_separated() {
        let mut buf = Vec::new();
        let mut row = RowWriter::new(&mut buf);
        row.text("a\tb\\c\nd\re").number(-42).null().text("");
        assert_eq!(row.values(), 4);
        assert_eq!(buf, b"a\\tb\\\\c\\nd\\re\t-42\t\\N\t");
    }
}
