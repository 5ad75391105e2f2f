//! What a PostgreSQL sink task records in a checkpoint: how many rows it staged for each
//! checkpoint whose rows are not yet known to be applied. A rerun compares the staging table
//! with it.

/// Starts every record, so that another sink's state is recognised.
const MAGIC: &[u8; 8] = b"SFPGSNK1";

/// One sink task's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskRecord {
    /// The table's id (`schema.name`).
    pub table: String,
    /// The sink task.
    pub task: u32,
    /// `(checkpoint, rows staged for it)`, oldest first.
    pub parts: Vec<(u64, u64)>,
}

impl TaskRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(self.table.len() as u32).to_le_bytes());
        out.extend_from_slice(self.table.as_bytes());
        out.extend_from_slice(&self.task.to_le_bytes());
        out.extend_from_slice(&(self.parts.len() as u32).to_le_bytes());
        for (checkpoint, rows) in &self.parts {
            out.extend_from_slice(&checkpoint.to_le_bytes());
            out.extend_from_slice(&rows.to_le_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<TaskRecord> {
        let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            rest = tail;
            Some(head)
        };
        let table_len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let table = String::from_utf8(take(table_len)?.to_vec()).ok()?;
        let task = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let mut parts = Vec::new();
        for _ in 0..count {
            let checkpoint = u64::from_le_bytes(take(8)?.try_into().ok()?);
            let rows = u64::from_le_bytes(take(8)?.try_into().ok()?);
            parts.push((checkpoint, rows));
        }
        rest.is_empty().then_some(TaskRecord { table, task, parts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncations_are_refused() {
        let record = TaskRecord {
            table: "ledger.balances".into(),
            task: 3,
            parts: vec![(4, 100), (5, 0)],
        };
        let bytes = record.encode();
        assert_eq!(TaskRecord::decode(&bytes), Some(record));
        for n in 0..bytes.len() {
            assert_eq!(TaskRecord::decode(&bytes[..n]), None, "cut at {n}");
        }
    }
}
