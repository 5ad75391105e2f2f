//! The commit marker, and what a committer does with it when the job (re)starts.
//!
//! Every Kafka transaction of an exactly-once sink also writes one record to the marker topic
//! (compacted, keyed by the sink's transactional id): `(epoch, checkpoint)`, saying "every
//! staged record of checkpoints up to `checkpoint` of run `epoch` is committed". Both are
//! committed together or not at all, so reading the marker back (`read_committed`) tells a
//! re-driven commit whether it already happened.
//!
//! The epoch tells runs apart: checkpoint ids start again at 1 when a job starts without a
//! checkpoint to resume, so a fresh start takes the marker's epoch plus one, the writers store
//! it in their checkpoint state, and a restore compares only markers of its own epoch.

use crate::error::KafkaError;
use crate::staged::Segment;
use std::sync::Arc;

/// Marks a marker record's value.
const MAGIC: &[u8; 8] = b"SFKMARK1";

/// The default marker topic of the sink with `transactional_id`: its own, one partition
/// written by this sink alone. A `read_committed` read to the end of a partition waits for
/// every transaction open on it; on its own partition the only one is the sink's own, which
/// `init_transactions` has just aborted, so no other producer (another sink of the job, another
/// job) can hold back a restart. Characters a topic name cannot hold become `_`, and then (or
/// for a very long id) a hash of the whole id keeps names of different ids apart.
pub(crate) fn topic_for(transactional_id: &str) -> String {
    const PREFIX: &str = "snapflow-commits.";
    let clean: String = transactional_id
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => c,
            _ => '_',
        })
        .collect();
    // Kafka allows 249 characters.
    if clean == transactional_id && PREFIX.len() + clean.len() <= 200 {
        return format!("{PREFIX}{clean}");
    }
    // FNV-1a: stable across runs and builds (the std hasher is not).
    let hash = transactional_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let head: String = clean.chars().take(160).collect();
    format!("{PREFIX}{head}-{hash:016x}")
}

/// What the marker topic says about one sink.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Marker {
    pub(crate) epoch: u64,
    pub(crate) checkpoint: u64,
}

impl Marker {
    pub(crate) fn encode(&self) -> [u8; 24] {
        let mut out = [0; 24];
        out[..8].copy_from_slice(MAGIC);
        out[8..16].copy_from_slice(&self.epoch.to_le_bytes());
        out[16..].copy_from_slice(&self.checkpoint.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Marker> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let (epoch, checkpoint) = rest.split_first_chunk::<8>()?;
        let checkpoint: [u8; 8] = checkpoint.try_into().ok()?;
        Some(Marker {
            epoch: u64::from_le_bytes(*epoch),
            checkpoint: u64::from_le_bytes(checkpoint),
        })
    }
}

/// What a restored checkpoint holds for the sink: its id, the epoch its writers recorded and
/// their uncommitted segments.
#[derive(Debug)]
pub(crate) struct Restored {
    pub(crate) checkpoint: u64,
    pub(crate) epoch: u64,
    pub(crate) segments: Vec<Arc<Segment>>,
}

/// What the committer does at open.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OpenPlan {
    /// The epoch of this run (the writers tag their state with it).
    pub(crate) epoch: u64,
    /// Segments to commit now, in one transaction whose marker is `commit_as`.
    pub(crate) redo: Vec<Arc<Segment>>,
    /// The marker of that transaction.
    pub(crate) commit_as: Marker,
}

/// Decides, from the marker topic and the restored checkpoint, which restored segments are
/// not yet in Kafka.
///
/// # Errors
/// The topic holds output the checkpoint does not know of: a later run of the sink, or later
/// checkpoints of this run (the job resumes from an older checkpoint than its newest). Redoing
/// from there would duplicate output, so the job is refused.
pub(crate) fn plan_open(
    sink: &str,
    marker: Option<Marker>,
    restored: Option<Restored>,
) -> Result<OpenPlan, KafkaError> {
    let Some(restored) = restored else {
        let epoch = marker.map_or(1, |m| m.epoch + 1);
        return Ok(OpenPlan {
            epoch,
            redo: Vec::new(),
            commit_as: Marker {
                epoch,
                checkpoint: 0,
            },
        });
    };
    let committed_up_to = match marker {
        Some(m) if m.epoch > restored.epoch => {
            return Err(refused(sink, m, &restored, "a later run of the sink"))
        }
        Some(m) if m.epoch == restored.epoch && m.checkpoint > restored.checkpoint => {
            return Err(refused(sink, m, &restored, "a later checkpoint"))
        }
        Some(m) if m.epoch == restored.epoch => m.checkpoint,
        _ => 0,
    };
    let mut redo: Vec<Arc<Segment>> = restored
        .segments
        .into_iter()
        .filter(|s| s.checkpoint > committed_up_to)
        .collect();
    redo.sort_by_key(|s| (s.checkpoint, s.task));
    Ok(OpenPlan {
        epoch: restored.epoch,
        redo,
        commit_as: Marker {
            epoch: restored.epoch,
            checkpoint: restored.checkpoint,
        },
    })
}

fn refused(sink: &str, marker: Marker, restored: &Restored, what: &str) -> KafkaError {
    KafkaError::Checkpoint(format!(
        "Kafka sink '{sink}': the output topic holds output of {what} (run {} checkpoint {}) than \
         the checkpoint the job resumes from (run {} checkpoint {}); resuming would write that \
         output twice. Resume from the newest checkpoint, or give the sink a new transactional id",
        marker.epoch, marker.checkpoint, restored.epoch, restored.checkpoint
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(checkpoint: u64, task: u32) -> Arc<Segment> {
        Arc::new(Segment {
            checkpoint,
            task,
            ..Segment::default()
        })
    }

    fn restored(epoch: u64, checkpoint: u64, segments: &[(u64, u32)]) -> Option<Restored> {
        Some(Restored {
            checkpoint,
            epoch,
            segments: segments.iter().map(|&(c, t)| segment(c, t)).collect(),
        })
    }

    fn redone(plan: &OpenPlan) -> Vec<(u64, u32)> {
        plan.redo.iter().map(|s| (s.checkpoint, s.task)).collect()
    }

    #[test]
    fn each_transactional_id_gets_its_own_valid_marker_topic() {
        assert_eq!(topic_for("ledger-out"), "snapflow-commits.ledger-out");
        let odd = topic_for("a/b c");
        let other = topic_for("a_b_c");
        assert_ne!(
            odd, other,
            "a replaced character must not make two ids share a topic"
        );
        assert!(odd.starts_with("snapflow-commits.a_b_c-"), "{odd}");
        let long = topic_for(&"x".repeat(1_000));
        assert!(long.len() <= 249, "{}", long.len());
        assert_ne!(long, topic_for(&"x".repeat(1_001)));
        for topic in [odd, other, long] {
            assert!(topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
        }
        assert_eq!(topic_for("a/b c"), topic_for("a/b c"), "stable");
    }

    #[test]
    fn markers_round_trip() {
        let marker = Marker {
            epoch: 3,
            checkpoint: 41,
        };
        assert_eq!(Marker::decode(&marker.encode()), Some(marker));
        assert_eq!(Marker::decode(b"SFKMARK1short"), None);
        assert_eq!(Marker::decode(b""), None);
    }

    #[test]
    fn a_fresh_start_begins_a_new_epoch() {
        assert_eq!(plan_open("s", None, None).unwrap().epoch, 1);
        let old = Marker {
            epoch: 4,
            checkpoint: 90,
        };
        let plan = plan_open("s", Some(old), None).unwrap();
        assert_eq!(plan.epoch, 5);
        assert!(plan.redo.is_empty());
    }

    #[test]
    fn a_restore_redoes_exactly_the_segments_past_its_epochs_marker() {
        let segments = [(4, 1), (5, 0), (5, 1), (3, 0)];
        // Nothing of this run committed yet (no marker, or an older run's).
        for marker in [
            None,
            Some(Marker {
                epoch: 1,
                checkpoint: 99,
            }),
        ] {
            let plan = plan_open("s", marker, restored(2, 5, &segments)).unwrap();
            assert_eq!(redone(&plan), [(3, 0), (4, 1), (5, 0), (5, 1)]);
            assert_eq!(
                plan.commit_as,
                Marker {
                    epoch: 2,
                    checkpoint: 5
                }
            );
        }
        // Checkpoint 4 committed before the crash: redo 5 only.
        let marker = Marker {
            epoch: 2,
            checkpoint: 4,
        };
        let plan = plan_open("s", Some(marker), restored(2, 5, &segments)).unwrap();
        assert_eq!(redone(&plan), [(5, 0), (5, 1)]);
        // The crash came after the commit of 5: nothing to redo.
        let marker = Marker {
            epoch: 2,
            checkpoint: 5,
        };
        let plan = plan_open("s", Some(marker), restored(2, 5, &segments)).unwrap();
        assert!(plan.redo.is_empty());
        assert_eq!(plan.epoch, 2);
    }

    #[test]
    fn output_newer_than_the_checkpoint_is_refused() {
        let later_checkpoint = Marker {
            epoch: 2,
            checkpoint: 6,
        };
        let error = plan_open("out", Some(later_checkpoint), restored(2, 5, &[])).unwrap_err();
        assert!(error.to_string().contains("checkpoint 6"), "{error}");
        let later_run = Marker {
            epoch: 3,
            checkpoint: 1,
        };
        assert!(plan_open("out", Some(later_run), restored(2, 5, &[])).is_err());
    }
}
