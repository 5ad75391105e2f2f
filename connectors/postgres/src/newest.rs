//! For an upsert table, the newest row per key among a checkpoint's rows, kept by the writer
//! so that only those are staged: the apply statement would discard the others anyway, and a
//! checkpoint then stages as many rows as keys it touched rather than one per record.

use std::collections::HashMap;

/// The newest row per key of the rows written since the last barrier.
pub(crate) struct NewestPerKey {
    /// Field positions of the key columns, and of the column whose highest value wins.
    key: Vec<usize>,
    newest: usize,
    rows: HashMap<Vec<u8>, Vec<u8>>,
    /// Scratch space for the key of the row being added.
    scratch: Vec<u8>,
}

/// Compares two `COPY` text values of the newest-by column: as integers when both are,
/// otherwise as text.
fn newer_or_equal(candidate: &[u8], current: &[u8]) -> bool {
    let number = |v: &[u8]| std::str::from_utf8(v).ok()?.parse::<i128>().ok();
    match (number(candidate), number(current)) {
        (Some(a), Some(b)) => a >= b,
        _ => candidate >= current,
    }
}

impl NewestPerKey {
    pub(crate) fn new(key: Vec<usize>, newest: usize) -> NewestPerKey {
        NewestPerKey {
            key,
            newest,
            rows: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    /// Adds a row (its values in `COPY` text format, tab-separated, no line end); it replaces
    /// the kept row of its key unless that one is newer. Escaped values hold no raw tab.
    pub(crate) fn add(&mut self, row: &[u8]) {
        let fields: Vec<&[u8]> = row.split(|&b| b == b'\t').collect();
        self.scratch.clear();
        for &k in &self.key {
            self.scratch
                .extend_from_slice(fields.get(k).copied().unwrap_or_default());
            self.scratch.push(b'\t');
        }
        let newest = fields.get(self.newest).copied().unwrap_or_default();
        match self.rows.get_mut(self.scratch.as_slice()) {
            Some(kept) => {
                let kept_newest = kept
                    .split(|&b| b == b'\t')
                    .nth(self.newest)
                    .unwrap_or_default();
                if newer_or_equal(newest, kept_newest) {
                    kept.clear();
                    kept.extend_from_slice(row);
                }
            }
            None => {
                self.rows.insert(self.scratch.clone(), row.to_vec());
            }
        }
    }

    /// How many rows are kept.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Takes the kept rows, leaving none.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.rows.drain().map(|(_, row)| row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_newest_by_wins_per_key_and_ties_go_to_the_later_row() {
        let mut rows = NewestPerKey::new(vec![0], 2);
        rows.add(b"a\t10\t1");
        rows.add(b"b\t5\t9");
        rows.add(b"a\t30\t10"); // numerically newer than 9, though "10" < "9" as text
        rows.add(b"a\t20\t2");
        rows.add(b"b\t6\t9");
        let mut kept: Vec<Vec<u8>> = rows.drain().collect();
        kept.sort();
        assert_eq!(kept, vec![b"a\t30\t10".to_vec(), b"b\t6\t9".to_vec()]);
        assert_eq!(rows.len(), 0);
    }

    #[test]
    fn composite_keys_are_kept_apart() {
        let mut rows = NewestPerKey::new(vec![0, 1], 2);
        rows.add(b"a\tb\t1");
        rows.add(b"a\tc\t1");
        rows.add(b"ab\t\t1");
        assert_eq!(rows.len(), 3);
    }
}
