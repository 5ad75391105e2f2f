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
    /// Scratch space for the field bounds of the row being added.
    bounds: Vec<std::ops::Range<usize>>,
}

/// The positions of the tabs in `row`.
fn tab_positions(row: &[u8]) -> impl Iterator<Item = usize> + '_ {
    row.iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\t')
        .map(|(i, _)| i)
}

/// Whether `candidate` is at least as new as `current` (two `COPY` text values of the
/// newest-by column), when both are integers; `None` otherwise: only the database can compare
/// other types (floats, numerics, timestamps, collated text, NULL) as the table does.
fn newer_or_equal(candidate: &[u8], current: &[u8]) -> Option<bool> {
    let number = |v: &[u8]| std::str::from_utf8(v).ok()?.parse::<i128>().ok();
    Some(number(candidate)? >= number(current)?)
}

impl NewestPerKey {
    pub(crate) fn new(key: Vec<usize>, newest: usize) -> NewestPerKey {
        NewestPerKey {
            key,
            newest,
            rows: HashMap::new(),
            scratch: Vec::new(),
            bounds: Vec::new(),
        }
    }

    /// Adds a row (its values in `COPY` text format, tab-separated, no line end); it replaces
    /// the kept row of its key unless that one is newer. Escaped values hold no raw tab.
    /// Returns a row that must be staged as it is: the kept one, when the two cannot be
    /// compared here (the apply statement then picks the newest).
    #[must_use]
    pub(crate) fn add(&mut self, row: &[u8]) -> Option<Vec<u8>> {
        // Field bounds in a buffer kept across rows: no allocation per row once it has grown.
        self.bounds.clear();
        let mut start = 0;
        for tab in tab_positions(row) {
            self.bounds.push(start..tab);
            start = tab + 1;
        }
        self.bounds.push(start..row.len());
        let field = |i: usize| self.bounds.get(i).map_or(&[][..], |r| &row[r.clone()]);
        self.scratch.clear();
        for &k in &self.key {
            self.scratch.extend_from_slice(field(k));
            self.scratch.push(b'\t');
        }
        let newest = field(self.newest);
        match self.rows.get_mut(self.scratch.as_slice()) {
            Some(kept) => {
                let kept_newest = kept
                    .split(|&b| b == b'\t')
                    .nth(self.newest)
                    .unwrap_or_default();
                match newer_or_equal(newest, kept_newest) {
                    Some(true) => {
                        kept.clear();
                        kept.extend_from_slice(row);
                        None
                    }
                    Some(false) => None,
                    None => Some(std::mem::replace(kept, row.to_vec())),
                }
            }
            None => {
                self.rows.insert(self.scratch.clone(), row.to_vec());
                None
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
        assert_eq!(rows.add(b"a\t10\t1"), None);
        assert_eq!(rows.add(b"b\t5\t9"), None);
        // Numerically newer than 9, though "10" < "9" as text.
        assert_eq!(rows.add(b"a\t30\t10"), None);
        assert_eq!(rows.add(b"a\t20\t2"), None);
        assert_eq!(rows.add(b"b\t6\t9"), None);
        let mut kept: Vec<Vec<u8>> = rows.drain().collect();
        kept.sort();
        assert_eq!(kept, vec![b"a\t30\t10".to_vec(), b"b\t6\t9".to_vec()]);
        assert_eq!(rows.len(), 0);
    }

    #[test]
    fn composite_keys_are_kept_apart() {
        let mut rows = NewestPerKey::new(vec![0, 1], 2);
        assert_eq!(rows.add(b"a\tb\t1"), None);
        assert_eq!(rows.add(b"a\tc\t1"), None);
        assert_eq!(rows.add(b"ab\t\t1"), None);
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn values_only_the_database_can_compare_are_all_staged() {
        let mut rows = NewestPerKey::new(vec![0], 1);
        assert_eq!(rows.add(b"a\t9.5"), None);
        // 10.0 is newer than 9.5, but not as text: both rows go to the database.
        assert_eq!(rows.add(b"a\t10"), Some(b"a\t9.5".to_vec()));
        assert_eq!(rows.add(b"a\t\\N"), Some(b"a\t10".to_vec()));
        assert_eq!(rows.drain().collect::<Vec<_>>(), vec![b"a\t\\N".to_vec()]);
    }
}
