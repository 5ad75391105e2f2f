//! Issue 14's state figures for one task's keyed state, without a job around it: a
//! `KeyedStore<String, ValueState<u64>>` of 500k keys (one task's half of 1 M keys at p = 2),
//! 1% of them written between checkpoints.
//!
//! For each of `ROUNDS` checkpoints it measures what a task does at a barrier and after it:
//! - **blocked**: `KeyedStore::freeze` (the only part on the task's thread);
//! - **first writes**: the time to write the 1% keys right after the freeze, while the
//!   snapshot still holds the shards (the copy-on-write cost the task pays: each key's state
//!   copied into its shard's overlay);
//! - **later writes**: as many writes again once the snapshot is written (the first write to
//!   each shard folds its overlay back), as a task goes on between checkpoints;
//! - **serialize + write**: encoding the frozen view and `write_snapshot` (the snapshot pool's
//!   part), full and incremental, with the bytes written;
//! - **restore**: restoring the last checkpoint from its chain (full + deltas) and from one
//!   full snapshot: the time until `restore` returns (it reads the indexes and decodes one key
//!   group), until the first key is processed (its key group decoded on first touch: what a
//!   restarted task waits before its first record), and until every key group is decoded.
//!
//! `cargo bench --bench incremental` (or `KEYS=1000000 ROUNDS=20 cargo bench --bench
//! incremental`). Prints max and p99 over the rounds.

use snapflow::checkpoint::{write_snapshot, CheckpointId, KeyGroupRange, DEFAULT_MAX_PARALLELISM};
use snapflow::engine::{RestoredState, SnapshotRequest};
use snapflow::operators::{KeyedStore, ValueState};
use std::time::{Duration, Instant};

type CountStore = KeyedStore<String, ValueState<u64>>;

const MAX: u32 = DEFAULT_MAX_PARALLELISM;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift), so that runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn percentile(values: &mut [Duration], p: f64) -> Duration {
    values.sort_unstable();
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What restoring one task's state took, each time from the start of `restore`.
struct RestoreTimes {
    /// `KeyedStore::restore` returned (headers and indexes read; one key group decoded).
    restored: Duration,
    /// The first key processed: its key group decoded on first touch.
    first_key: Duration,
    /// Every pending key group decoded (what `len` forces).
    everything: Duration,
    keys: usize,
}

/// Restores `state` into a new store, processes `probe` (a read, as the first record after a
/// restart), then decodes the rest.
fn restore_timed(state: &RestoredState, probe: &str) -> RestoreTimes {
    let started = Instant::now();
    let mut store = CountStore::new();
    store.restore(state, MAX).expect("restore");
    let restored = started.elapsed();
    let count = store.with(probe.to_owned(), |_, c| c.get().copied());
    let first_key = started.elapsed();
    assert!(count.is_some(), "{probe} has a count");
    let keys = store.len();
    RestoreTimes {
        restored,
        first_key,
        everything: started.elapsed(),
        keys,
    }
}

fn main() {
    let keys = env("KEYS", 500_000);
    let rounds = env("ROUNDS", 20);
    let changing = (keys / 100).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    let mut store = CountStore::new();
    for i in 0..keys {
        store.with(format!("word{i}"), |_, c| c.set(1));
    }
    let all = KeyGroupRange::for_task(0, 1, MAX);

    for incremental in [false, true] {
        let mut blocked = Vec::new();
        let mut first_writes = Vec::new();
        let mut written = Vec::new();
        let mut later_writes = Vec::new();
        let mut bytes = Vec::new();
        let mut chain: Vec<Vec<u8>> = Vec::new();
        for round in 1..=rounds as u64 {
            let id = CheckpointId(round + if incremental { 1000 } else { 0 });
            let base = (incremental && !chain.is_empty() && chain.len() < 32)
                .then(|| CheckpointId(id.0 - 1));
            let started = Instant::now();
            let frozen = store.freeze(
                SnapshotRequest {
                    checkpoint: id,
                    base,
                },
                MAX,
            );
            blocked.push(started.elapsed());
            // The task goes on: the next interval's writes, right after the barrier.
            let started = Instant::now();
            for _ in 0..changing {
                let k = rng.next() as usize % keys;
                store.with(format!("word{k}"), |_, c| c.set(round + 1));
            }
            first_writes.push(started.elapsed());
            let started = Instant::now();
            let delta = frozen.delta_of().is_some();
            let payload = frozen.serialize().expect("serialize").expect("bytes");
            let path = dir.path().join(format!("count-{}.snap", id.0));
            let info = write_snapshot(&path, "count", 0, id, &payload).expect("write");
            written.push(started.elapsed());
            bytes.push(info.bytes);
            let started = Instant::now();
            for _ in 0..changing {
                let k = rng.next() as usize % keys;
                store.with(format!("word{k}"), |_, c| c.set(round + 2));
            }
            later_writes.push(started.elapsed());
            if !delta {
                chain.clear();
            }
            chain.push(payload);
            store.checkpoint_complete(id);
        }
        let full = store.snapshot(MAX).expect("full");
        let probe = format!("word{}", rng.next() as usize % keys);
        let restored =
            RestoredState::from_chains(CheckpointId(1), all.clone(), vec![chain.clone()]);
        let from_chain = restore_timed(&restored, &probe);
        let restored =
            RestoredState::from_payloads(CheckpointId(1), all.clone(), vec![full.clone()]);
        let from_full = restore_timed(&restored, &probe);
        assert_eq!(from_chain.keys, from_full.keys);
        assert_eq!(from_full.keys, store.len());

        let periodic = &bytes[1..];
        let mean_bytes = periodic.iter().sum::<u64>() as f64 / periodic.len().max(1) as f64;
        println!(
            "{} checkpoints, {keys} keys, {changing} written per interval, {rounds} rounds:",
            if incremental { "incremental" } else { "full" }
        );
        println!(
            "  task thread blocked (freeze): max {:.3} ms, p99 {:.3} ms",
            ms(*blocked.iter().max().expect("rounds")),
            ms(percentile(&mut blocked, 99.0))
        );
        println!(
            "  the interval's first {changing} writes (copy-on-write): max {:.2} ms, p99 {:.2} ms",
            ms(*first_writes.iter().max().expect("rounds")),
            ms(percentile(&mut first_writes, 99.0))
        );
        println!(
            "  the next {changing} writes, once the snapshot is written (folding overlays back): max {:.2} ms, p99 {:.2} ms",
            ms(*later_writes.iter().max().expect("rounds")),
            ms(percentile(&mut later_writes, 99.0))
        );
        println!(
            "  serialize + write on the pool: max {:.1} ms, p99 {:.1} ms",
            ms(*written.iter().max().expect("rounds")),
            ms(percentile(&mut written, 99.0))
        );
        println!(
            "  bytes per checkpoint after the first: mean {mean_bytes:.0} ({:.2}% of a full snapshot of {} bytes)",
            100.0 * mean_bytes / full.len() as f64,
            full.len()
        );
        for (what, restore) in [
            (format!("its chain of {}", chain.len()), &from_chain),
            ("one full snapshot".to_owned(), &from_full),
        ] {
            println!(
                "  restore of the last checkpoint from {what}: restore {:.2} ms, first key \
                 processed {:.2} ms, every key decoded {:.1} ms",
                ms(restore.restored),
                ms(restore.first_key),
                ms(restore.everything)
            );
        }
    }
}
