//! What a file sink task records in a checkpoint: the staged files it pre-committed that are
//! not yet known to be published. A rerun checks the output directory against it.

use serde::{Deserialize, Serialize};
use snapflow_checkpoint::CheckpointId;
use std::path::{Path, PathBuf};

/// Starts every file sink record, so that a checkpoint's sink state is recognised as one
/// (also by `snapflow verify`) and a format change is detected.
const MAGIC: &[u8; 8] = b"SFFSINK1";

/// One staged file: `_staging/chk-<checkpoint>/part-<task>` under the sink's directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedPart {
    /// The checkpoint whose output it holds.
    pub checkpoint: u64,
    /// Its length in bytes.
    pub bytes: u64,
    /// CRC-32 of its content.
    pub crc32: u32,
}

/// What one sink task (of one output directory) records in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The output directory, with symbolic links resolved.
    pub dir: PathBuf,
    /// The sink task.
    pub task: u32,
    /// Its pre-committed files not yet known to be published, oldest first.
    pub parts: Vec<StagedPart>,
}

impl TaskRecord {
    /// The file name of this task's part in a checkpoint directory.
    pub fn part_name(&self) -> String {
        part_name(self.task)
    }

    /// The parts of checkpoints up to and including `checkpoint`.
    pub fn parts_up_to(&self, checkpoint: CheckpointId) -> impl Iterator<Item = &StagedPart> {
        self.parts
            .iter()
            .filter(move |p| p.checkpoint <= checkpoint.0)
    }
}

/// The file name of task `task`'s part.
pub(crate) fn part_name(task: u32) -> String {
    format!("part-{task:05}")
}

/// Encodes the records of one sink task: usually one, several for a writer that combines
/// file sinks (see [`combine_records`]).
pub(crate) fn encode(records: &[TaskRecord]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    // Serializing plain structs into a Vec cannot fail.
    bytes.extend(bincode::serialize(records).unwrap_or_default());
    bytes
}

/// Decodes one task's records; `None` when `bytes` is not a file sink's record. A state that
/// [`snapflow_engine::sink_state::combine`] made of several sinks' states yields the records of
/// every file sink among them.
pub fn decode_records(bytes: &[u8]) -> Option<Vec<TaskRecord>> {
    if let Some(parts) = snapflow_engine::sink_state::split(bytes) {
        let mut records = Vec::new();
        let mut any = false;
        for part in parts.iter().flatten() {
            if let Some(mut found) = decode_records(part) {
                any = true;
                records.append(&mut found);
            }
        }
        return any.then_some(records);
    }
    bincode::deserialize(bytes.strip_prefix(MAGIC.as_slice())?).ok()
}

/// The records of `dir` among a checkpoint's sink state, and the directories recorded there
/// other than `dir`.
pub(crate) fn records_of(
    payloads: &[&[u8]],
    dir: &Path,
) -> Result<(Vec<TaskRecord>, Vec<PathBuf>), String> {
    let mut mine = Vec::new();
    let mut others = Vec::new();
    for payload in payloads {
        let records = decode_records(payload)
            .ok_or("the checkpoint's sink state is not a file sink's record")?;
        for record in records {
            if record.dir == dir {
                mine.push(record);
            } else if !others.contains(&record.dir) {
                others.push(record.dir);
            }
        }
    }
    Ok((mine, others))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(dir: &str, task: u32) -> TaskRecord {
        TaskRecord {
            dir: dir.into(),
            task,
            parts: vec![StagedPart {
                checkpoint: 3,
                bytes: 10,
                crc32: 7,
            }],
        }
    }

    #[test]
    fn records_round_trip_also_inside_a_combined_state() {
        let a = encode(&[record("/a", 0)]);
        let b = encode(&[record("/b", 0)]);
        assert_eq!(decode_records(&a), Some(vec![record("/a", 0)]));
        let both = snapflow_engine::sink_state::combine(&[Some(a), None, Some(b)]);
        let (mine, others) = records_of(&[&both], Path::new("/b")).unwrap();
        assert_eq!(mine, vec![record("/b", 0)]);
        assert_eq!(others, vec![PathBuf::from("/a")]);
        let none = snapflow_engine::sink_state::combine(&[None, Some(b"other".to_vec())]);
        assert_eq!(decode_records(&none), None);
    }

    #[test]
    fn foreign_bytes_are_not_records() {
        assert_eq!(decode_records(b"hello"), None);
        let mut bytes = encode(&[record("/a", 1)]);
        bytes.truncate(bytes.len() - 3);
        assert_eq!(decode_records(&bytes), None);
        assert!(records_of(&[b"junk"], Path::new("/a")).is_err());
    }
}
