//! The open decision over hand-made listings: every way the directory can disagree with the
//! checkpoint is refused, and an agreeing directory is published exactly once.

use super::*;
use crate::sink::file::record::StagedPart;

fn dir() -> &'static Path {
    Path::new("/out")
}

fn parts(list: &[(u32, u64)]) -> Parts {
    list.iter().map(|&(t, b)| (part_name(t), b)).collect()
}

fn record(task: u32, parts: &[(u64, u64)]) -> TaskRecord {
    TaskRecord {
        dir: dir().into(),
        task,
        parts: parts
            .iter()
            .map(|&(checkpoint, bytes)| StagedPart {
                checkpoint,
                bytes,
                crc32: checkpoint as u32 * 100 + task,
            })
            .collect(),
    }
}

fn listing(published: &[(u64, &[(u32, u64)])], staged: &[(u64, &[(u32, u64)])]) -> Listing {
    Listing {
        published: published
            .iter()
            .map(|(id, p)| (CheckpointId(*id), parts(p)))
            .collect(),
        staged: staged
            .iter()
            .map(|(id, p)| (CheckpointId(*id), parts(p)))
            .collect(),
        foreign: Vec::new(),
    }
}

#[test]
fn a_fresh_start_discards_staging_and_refuses_published_output() {
    let l = listing(&[], &[(1, &[(0, 5)]), (2, &[(1, 3)])]);
    let plan = decide_open(dir(), &l, None).unwrap();
    assert_eq!(plan.discard, vec![CheckpointId(1), CheckpointId(2)]);
    assert!(plan.publish.is_empty());
    let l = listing(&[(1, &[(0, 5)])], &[]);
    assert!(matches!(
        decide_open(dir(), &l, None),
        Err(OutputInconsistency::EarlierRun { .. })
    ));
}

#[test]
fn resuming_publishes_the_recorded_staging_and_discards_later_checkpoints() {
    // Checkpoint 3 was aborted; its output belongs to checkpoint 4, which is restored.
    let l = listing(
        &[(2, &[(0, 9)])],
        &[(3, &[(0, 5)]), (4, &[(0, 7), (1, 2)]), (5, &[(1, 1)])],
    );
    let records = [record(0, &[(3, 5), (4, 7)]), record(1, &[(4, 2)])];
    let plan = decide_open(dir(), &l, Some((CheckpointId(4), &records))).unwrap();
    assert_eq!(plan.publish, vec![CheckpointId(3), CheckpointId(4)]);
    assert_eq!(plan.discard, vec![CheckpointId(5)]);
    assert_eq!(plan.check.len(), 3);
}

#[test]
fn already_published_output_of_the_restored_checkpoint_is_accepted() {
    let l = listing(&[(4, &[(0, 7)])], &[]);
    let records = [record(0, &[(4, 7)])];
    let plan = decide_open(dir(), &l, Some((CheckpointId(4), &records))).unwrap();
    assert_eq!(plan, OpenPlan::default());
}

#[test]
fn output_of_a_newer_checkpoint_means_a_lost_manifest() {
    let l = listing(&[(4, &[(0, 7)]), (5, &[(0, 1)])], &[]);
    let records = [record(0, &[(4, 7)])];
    assert_eq!(
        decide_open(dir(), &l, Some((CheckpointId(4), &records))),
        Err(OutputInconsistency::NewerPublished {
            dir: dir().into(),
            published: CheckpointId(5),
            restored: CheckpointId(4),
        })
    );
}

#[test]
fn recorded_output_that_is_gone_or_changed_is_refused() {
    let records = [record(0, &[(4, 7)]), record(1, &[(4, 2)])];
    // `_staging` removed.
    let l = listing(&[], &[]);
    assert!(matches!(
        decide_open(dir(), &l, Some((CheckpointId(4), &records))),
        Err(OutputInconsistency::Missing { .. })
    ));
    // One task's file removed.
    let l = listing(&[], &[(4, &[(0, 7)])]);
    assert!(matches!(
        decide_open(dir(), &l, Some((CheckpointId(4), &records))),
        Err(OutputInconsistency::Missing { .. })
    ));
    // A file cut short.
    let l = listing(&[], &[(4, &[(0, 7), (1, 1)])]);
    assert!(matches!(
        decide_open(dir(), &l, Some((CheckpointId(4), &records))),
        Err(OutputInconsistency::Damaged { .. })
    ));
}

#[test]
fn unrecorded_files_are_neither_published_nor_deleted() {
    let records = [record(0, &[(4, 7)])];
    let l = listing(&[], &[(4, &[(0, 7), (3, 10)])]);
    assert!(matches!(
        decide_open(dir(), &l, Some((CheckpointId(4), &records))),
        Err(OutputInconsistency::Foreign { .. })
    ));
    let mut l = listing(&[], &[]);
    l.foreign.push("notes.txt".into());
    assert!(matches!(
        decide_open(dir(), &l, None),
        Err(OutputInconsistency::Foreign { .. })
    ));
}

#[test]
fn a_staged_directory_is_published_only_with_exactly_the_pre_committed_files() {
    let id = CheckpointId(7);
    let expected = parts(&[(0, 5), (1, 6)]);
    assert_eq!(check_staged(dir(), id, Some(&expected), &expected), Ok(()));
    assert!(matches!(
        check_staged(dir(), id, None, &expected),
        Err(OutputInconsistency::Missing { .. })
    ));
    assert!(matches!(
        check_staged(
            dir(),
            id,
            Some(&parts(&[(0, 5), (1, 6), (2, 1)])),
            &expected
        ),
        Err(OutputInconsistency::Foreign { .. })
    ));
    assert!(matches!(
        check_staged(dir(), id, Some(&parts(&[(0, 5), (1, 4)])), &expected),
        Err(OutputInconsistency::Damaged { .. })
    ));
    // A checkpoint without output: nothing staged, nothing expected.
    assert_eq!(check_staged(dir(), id, None, &Parts::new()), Ok(()));
}
