//! Exhaustive tests of the pure checkpoint decisions: every combination of states over a few
//! ids, against oracles phrased differently from the implementation.

use super::*;

fn complete(id: u64) -> CheckpointStatus {
    CheckpointStatus {
        id: CheckpointId(id),
        state: CheckpointState::Complete,
    }
}

fn in_progress(id: u64) -> CheckpointStatus {
    CheckpointStatus {
        id: CheckpointId(id),
        state: CheckpointState::InProgress,
    }
}

fn corrupt(id: u64) -> CheckpointStatus {
    CheckpointStatus {
        id: CheckpointId(id),
        state: CheckpointState::Corrupt {
            reason: format!("bad {id}"),
        },
    }
}

fn ids(raw: &[u64]) -> Vec<CheckpointId> {
    raw.iter().copied().map(CheckpointId).collect()
}

/// Every assignment of {absent, complete, in progress, corrupt} to ids 1..=`n`.
fn all_layouts(n: u32) -> impl Iterator<Item = Vec<CheckpointStatus>> {
    (0..4u32.pow(n)).map(move |mut code| {
        let mut statuses = Vec::new();
        for id in 1..=u64::from(n) {
            match code % 4 {
                1 => statuses.push(complete(id)),
                2 => statuses.push(in_progress(id)),
                3 => statuses.push(corrupt(id)),
                _ => {}
            }
            code /= 4;
        }
        statuses
    })
}

fn count_complete_newer_than(statuses: &[CheckpointStatus], id: CheckpointId) -> usize {
    statuses
        .iter()
        .filter(|s| s.state == CheckpointState::Complete && s.id > id)
        .count()
}

#[test]
fn decide_latest_matches_its_oracle_for_every_layout() {
    for statuses in all_layouts(6) {
        let decision = decide_latest(&statuses);
        // Oracle: the complete checkpoint with no newer complete one.
        let oracle_latest = statuses
            .iter()
            .find(|s| {
                s.state == CheckpointState::Complete
                    && count_complete_newer_than(&statuses, s.id) == 0
            })
            .map(|s| s.id);
        assert_eq!(decision.latest, oracle_latest, "{statuses:?}");
        let oracle_corrupt: Vec<(CheckpointId, String)> = statuses
            .iter()
            .filter_map(|s| match &s.state {
                CheckpointState::Corrupt { reason } if Some(s.id) > oracle_latest => {
                    Some((s.id, reason.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(decision.newer_corrupt, oracle_corrupt, "{statuses:?}");

        let reversed: Vec<_> = statuses.iter().rev().cloned().collect();
        assert_eq!(
            decide_latest(&reversed),
            decision,
            "order matters: {statuses:?}"
        );
    }
}

#[test]
fn retention_plan_matches_its_oracle_for_every_layout() {
    for statuses in all_layouts(6) {
        for keep in 0..=4 {
            let plan = retention_plan(&statuses, keep);
            let oracle: Vec<CheckpointId> = statuses
                .iter()
                .filter(|s| {
                    let newer = count_complete_newer_than(&statuses, s.id);
                    match s.state {
                        CheckpointState::Complete => newer >= keep.max(1),
                        CheckpointState::InProgress => newer >= 1,
                        CheckpointState::Corrupt { .. } => false,
                    }
                })
                .map(|s| s.id)
                .collect();
            assert_eq!(plan, oracle, "keep {keep}: {statuses:?}");

            let reversed: Vec<_> = statuses.iter().rev().cloned().collect();
            assert_eq!(
                retention_plan(&reversed, keep),
                plan,
                "order matters: {statuses:?}"
            );
            // Whatever is deleted, restoring picks the same checkpoint afterwards.
            let kept: Vec<_> = statuses
                .iter()
                .filter(|s| !plan.contains(&s.id))
                .cloned()
                .collect();
            assert_eq!(
                decide_latest(&kept),
                decide_latest(&statuses),
                "{statuses:?}"
            );
        }
    }
}

#[test]
fn nothing_on_disk_means_nothing_to_restore_or_delete() {
    assert_eq!(decide_latest(&[]), LatestDecision::default());
    assert!(retention_plan(&[], 3).is_empty());
}

#[test]
fn a_corrupt_newest_checkpoint_falls_back_and_is_reported() {
    let statuses = [complete(1), complete(2), corrupt(3), in_progress(4)];
    let decision = decide_latest(&statuses);
    assert_eq!(decision.latest, Some(CheckpointId(2)));
    assert_eq!(
        decision.newer_corrupt,
        vec![(CheckpointId(3), "bad 3".to_owned())]
    );
}

#[test]
fn only_corrupt_and_in_progress_means_no_latest_and_no_deletion() {
    let statuses = [corrupt(1), in_progress(2), corrupt(3)];
    let decision = decide_latest(&statuses);
    assert_eq!(decision.latest, None);
    assert_eq!(decision.newer_corrupt.len(), 2);
    assert!(retention_plan(&statuses, 1).is_empty());
}

#[test]
fn retention_keeps_the_newest_complete_ones_and_in_flight_directories() {
    let statuses = [
        complete(1),
        in_progress(2),
        corrupt(3),
        complete(4),
        complete(5),
        complete(6),
        in_progress(7),
    ];
    assert_eq!(retention_plan(&statuses, 3), ids(&[1, 2]));
    assert_eq!(retention_plan(&statuses, 1), ids(&[1, 2, 4, 5]));
    // keep = 0 is treated as 1: the newest complete checkpoint survives.
    assert_eq!(retention_plan(&statuses, 0), ids(&[1, 2, 4, 5]));
    assert_eq!(retention_plan(&statuses, 10), ids(&[2]));
}
