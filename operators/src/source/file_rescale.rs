//! Reassigning a text file's splits to the tasks of another parallelism (Flink: the splits
//! with their positions are a source's state, redistributed on rescale). Pure: no file is
//! read here.
//!
//! Every split not read to its end goes, whole, to one new task: the least loaded by bytes
//! left so far, largest splits first. A split is never cut, so a job scaled up from `p` tasks
//! reads with at most as many tasks as it has unfinished splits; each line is still read
//! exactly once, since a split's lines are read by the one task holding it, from where its
//! old task stopped.

use crate::source::identity::{FilePosition, SplitPosition};
use crate::source::share;

/// The splits of `positions` (one per old task, by task index, of the same file) reassigned to
/// `parallelism` new tasks. A split of the first position format has the end of its old
/// task's share. `None` if the positions are not of one file (different lengths or prefixes).
pub(crate) fn reassign(
    positions: &[FilePosition],
    parallelism: usize,
) -> Option<Vec<FilePosition>> {
    let first = positions.first()?;
    if positions
        .iter()
        .any(|p| p.len != first.len || p.prefix != first.prefix)
    {
        return None;
    }
    let old = positions.len();
    let mut open: Vec<SplitPosition> = positions
        .iter()
        .enumerate()
        .flat_map(|(task, p)| {
            p.splits.iter().map(move |s| SplitPosition {
                end: Some(s.end.unwrap_or_else(|| share(first.len, task, old).end)),
                ..*s
            })
        })
        .filter(|s| s.end.is_some_and(|end| s.pos < end))
        .collect();
    // Largest first, then by place in the file, so that the result is a function of the input.
    let left = |s: &SplitPosition| s.end.unwrap_or(s.pos) - s.pos;
    open.sort_by(|a, b| left(b).cmp(&left(a)).then(a.pos.cmp(&b.pos)));
    let mut tasks: Vec<(u64, Vec<SplitPosition>)> = vec![(0, Vec::new()); parallelism];
    for split in open {
        let (load, splits) = tasks
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("parallelism is at least 1");
        *load += left(&split);
        splits.push(split);
    }
    Some(
        tasks
            .into_iter()
            .map(|(_, mut splits)| {
                splits.sort_by_key(|s| s.pos);
                FilePosition {
                    len: first.len,
                    prefix: first.prefix,
                    splits,
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::identity::Window;
    use proptest::prelude::*;

    fn window(start: u64) -> Window {
        Window {
            start,
            end: start,
            crc: 0,
        }
    }

    /// A position of `(pos, end)` splits of a 1000-byte file.
    fn at(splits: &[(u64, Option<u64>)]) -> FilePosition {
        FilePosition {
            len: 1000,
            prefix: window(0),
            splits: splits
                .iter()
                .map(|&(pos, end)| SplitPosition {
                    pos,
                    end,
                    split: window(pos),
                    before: window(pos),
                })
                .collect(),
        }
    }

    /// Every byte range left to read, sorted.
    fn left(positions: &[FilePosition]) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = positions
            .iter()
            .flat_map(|p| p.splits.iter().map(|s| (s.pos, s.end.unwrap())))
            .filter(|(pos, end)| pos < end)
            .collect();
        ranges.sort_unstable();
        ranges
    }

    #[test]
    fn first_format_splits_end_at_their_old_share() {
        // Two old tasks of the first format: shares 0..500 and 500..1000.
        let old = [at(&[(100, None)]), at(&[(700, None)])];
        let new = reassign(&old, 3).unwrap();
        assert_eq!(new.len(), 3);
        assert_eq!(left(&new), vec![(100, 500), (700, 1000)]);
        // The larger split first, to the first task; the third task has nothing.
        assert_eq!(new[0].splits[0].pos, 100);
        assert_eq!(new[1].splits[0].pos, 700);
        assert!(new[2].splits.is_empty());
    }

    #[test]
    fn finished_splits_are_dropped_and_one_task_takes_everything() {
        let old = [
            at(&[(500, Some(500))]),
            at(&[(600, Some(1000)), (450, Some(400))]),
        ];
        let new = reassign(&old, 1).unwrap();
        assert_eq!(left(&new), vec![(600, 1000)]);
        assert_eq!(new[0].splits.len(), 1);
    }

    #[test]
    fn positions_of_two_files_are_refused() {
        let mut other = at(&[(0, Some(10))]);
        other.len = 999;
        assert_eq!(reassign(&[at(&[(0, Some(10))]), other], 2), None);
    }

    proptest! {
        /// Whatever the old splits, the new tasks together have exactly the unread ranges,
        /// each once, and the load is balanced to within the largest split.
        #[test]
        fn every_unread_range_goes_to_exactly_one_task(
            cuts in proptest::collection::btree_set(1u64..1000, 0..12),
            read in proptest::collection::vec(0u64..=100, 13),
            old in 1usize..5,
            new in 1usize..7,
        ) {
            let mut bounds: Vec<u64> = vec![0];
            bounds.extend(cuts);
            bounds.push(1000);
            let splits: Vec<(u64, Option<u64>)> = bounds
                .windows(2)
                .enumerate()
                .map(|(i, b)| (b[0] + (b[1] - b[0]) * read[i] / 100, Some(b[1])))
                .collect();
            let positions: Vec<FilePosition> = (0..old)
                .map(|t| at(&splits.iter().copied().skip(t).step_by(old).collect::<Vec<_>>()))
                .collect();
            let reassigned = reassign(&positions, new).unwrap();
            prop_assert_eq!(reassigned.len(), new);
            prop_assert_eq!(left(&reassigned), left(&positions));
            let loads: Vec<u64> = reassigned
                .iter()
                .map(|p| p.splits.iter().map(|s| s.end.unwrap() - s.pos).sum())
                .collect();
            let largest = left(&positions).iter().map(|(a, b)| b - a).max().unwrap_or(0);
            let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
            prop_assert!(max - min <= largest);
        }
    }
}
