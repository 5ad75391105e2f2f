//! Key groups: the unit in which keyed state is partitioned, routed and (later) restored.
//!
//! The mapping follows Flink's `KeyGroupRangeAssignment`: `key_group = hash(key) % max_par` and
//! task `i` of `p` owns key groups `[ceil(i * max_par / p), ceil((i + 1) * max_par / p))`, which
//! is the inverse of `task = key_group * p / max_par`.

use rustc_hash::FxHasher;
use std::hash::{Hash, Hasher};
use std::ops::Range;

/// Default number of key groups (Flink's default max parallelism is 128 as well).
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;

/// One key group: an index in `0..max_parallelism`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyGroup(pub u32);

/// The contiguous range of key groups that one task owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyGroupRange {
    /// Key groups `start..end`.
    pub groups: Range<u32>,
}

impl KeyGroupRange {
    /// The key groups owned by task `task` of `parallelism` tasks.
    ///
    /// # Panics
    /// If `parallelism` is 0, exceeds `max_parallelism`, or `task >= parallelism`; the job graph
    /// validation rejects such configurations before any task starts.
    pub fn for_task(task: u32, parallelism: u32, max_parallelism: u32) -> KeyGroupRange {
        assert!(parallelism > 0 && parallelism <= max_parallelism && task < parallelism);
        let bound = |i: u32| {
            ((u64::from(i) * u64::from(max_parallelism)).div_ceil(u64::from(parallelism))) as u32
        };
        KeyGroupRange {
            groups: bound(task)..bound(task + 1),
        }
    }

    /// Whether `group` belongs to this range.
    pub fn contains(&self, group: KeyGroup) -> bool {
        self.groups.contains(&group.0)
    }
}

/// A deterministic, well-mixed 64-bit hash of a key.
///
/// It must be stable across processes and runs, because checkpoints record state by key group:
/// a randomly seeded hasher (std's `RandomState`, ahash) would send a restored key to another
/// task. FxHash is fast but its low bits are weak for short strings, so the result goes through
/// the murmur3 64-bit finalizer before it is reduced to a key group.
pub fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut hasher = FxHasher::default();
    key.hash(&mut hasher);
    fmix64(hasher.finish())
}

/// The key group of a key whose [`key_hash`] is `hash`.
pub fn key_group_of_hash(hash: u64, max_parallelism: u32) -> KeyGroup {
    KeyGroup((hash % u64::from(max_parallelism)) as u32)
}

/// The task (of `parallelism`) that owns `group`.
pub fn task_for_key_group(group: KeyGroup, parallelism: u32, max_parallelism: u32) -> u32 {
    ((u64::from(group.0) * u64::from(parallelism)) / u64::from(max_parallelism)) as u32
}

/// Maps key hashes to the tasks that own their key groups, as
/// `task_for_key_group(key_group_of_hash(hash))` does, but at routing speed: the two divisions per
/// record become a mask (for a power-of-two max parallelism, such as the default) or one
/// remainder, and a table lookup.
#[derive(Clone, Debug)]
pub struct KeyGroupRouter {
    max_parallelism: u64,
    /// `max_parallelism - 1` when it is a power of two.
    mask: Option<u64>,
    task_of_group: Box<[u32]>,
}

impl KeyGroupRouter {
    /// A router to `parallelism` tasks over `max_parallelism` key groups.
    pub fn new(parallelism: u32, max_parallelism: u32) -> Self {
        KeyGroupRouter {
            max_parallelism: u64::from(max_parallelism),
            mask: max_parallelism
                .is_power_of_two()
                .then(|| u64::from(max_parallelism) - 1),
            task_of_group: (0..max_parallelism)
                .map(|g| task_for_key_group(KeyGroup(g), parallelism, max_parallelism))
                .collect(),
        }
    }

    /// The task that owns the key group of a key whose [`key_hash`] is `hash`.
    #[inline]
    pub fn task_of_hash(&self, hash: u64) -> usize {
        let group = match self.mask {
            Some(mask) => hash & mask,
            None => hash % self.max_parallelism,
        };
        self.task_of_group[group as usize] as usize
    }
}

/// murmur3's 64-bit finalizer: every input bit affects every output bit.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn task_of_key_group_lies_in_that_tasks_range(max in 1u32..1024, p_seed in 0u32..1024, g_seed in 0u32..1024) {
            let p = p_seed % max + 1;
            let group = KeyGroup(g_seed % max);
            let task = task_for_key_group(group, p, max);
            prop_assert!(task < p);
            prop_assert!(KeyGroupRange::for_task(task, p, max).contains(group));
        }

        #[test]
        fn router_agrees_with_key_group_arithmetic(max in 1u32..1024, p_seed in 0u32..1024, hash in any::<u64>()) {
            let p = p_seed % max + 1;
            let expected = task_for_key_group(key_group_of_hash(hash, max), p, max);
            prop_assert_eq!(KeyGroupRouter::new(p, max).task_of_hash(hash), expected as usize);
        }

        #[test]
        fn ranges_partition_all_key_groups(max in 1u32..1024, p_seed in 0u32..1024) {
            let p = p_seed % max + 1;
            let mut next = 0;
            for task in 0..p {
                let range = KeyGroupRange::for_task(task, p, max);
                prop_assert_eq!(range.groups.start, next);
                prop_assert!(!range.groups.is_empty());
                next = range.groups.end;
            }
            prop_assert_eq!(next, max);
        }
    }

    #[test]
    fn key_hash_is_stable_across_runs() {
        // A changed value here means checkpoints written by earlier builds would restore keys
        // into the wrong key group: a format break, not a refactoring.
        assert_eq!(key_hash("snapflow"), key_hash(&"snapflow".to_string()));
        let groups: Vec<u32> = ["a", "b", "the", "of"]
            .iter()
            .map(|w| key_group_of_hash(key_hash(w), 128).0)
            .collect();
        let again: Vec<u32> = ["a", "b", "the", "of"]
            .iter()
            .map(|w| key_group_of_hash(key_hash(&w.to_string()), 128).0)
            .collect();
        assert_eq!(groups, again);
    }

    #[test]
    fn short_keys_spread_over_key_groups() {
        let mut hits = [0u32; 128];
        for i in 0..12_800u32 {
            hits[key_group_of_hash(key_hash(&format!("w{i}")), 128).0 as usize] += 1;
        }
        // 100 expected per group; a weak hash leaves groups empty or piles keys into a few.
        assert!(hits.iter().all(|&h| (50..200).contains(&h)), "{hits:?}");
    }
}
