//! Keyed state updates: a running count per key in a `KeyedStore<K, ValueState<u64>>`, as
//! word count's `process` keeps it, swept over the number of distinct keys (1k, 100k, 1M), with
//! `String` keys and with `CompactString` keys (inline up to 24 bytes, as word count's words
//! are now).
//!
//! Each iteration applies [`UPDATES`] increments to keys drawn uniformly at random from the
//! key set, to a store that already holds every key (the steady state of a long-running job).
//! The keys arrive owned, as records do, and are cloned outside the timing. The baseline is
//! the simplest counter, a std `HashMap<String, u64>` through its entry API.
//!
//! `cargo bench --bench state`. Reports updates/s (criterion's element throughput).

#[path = "../examples/support/rng.rs"]
mod rng;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion,
    SamplingMode, Throughput,
};
use serde::Serialize;
use snapflow::engine::Key;
use snapflow::operators::{KeyedStore, ValueState};
use snapflow::prelude::CompactString;
use std::collections::HashMap;
use std::time::Duration;

/// Updates per iteration.
const UPDATES: usize = 1 << 18;
const DISTINCT_KEYS: [usize; 3] = [1_000, 100_000, 1_000_000];

fn increment<K: Key + Serialize>(store: &mut KeyedStore<K, ValueState<u64>>, key: K) {
    store.with(key, |_, count| {
        let n = count.get().copied().unwrap_or(0) + 1;
        count.set(n);
    });
}

/// The keys of one iteration: [`UPDATES`] draws from `keys`, owned.
fn draws<K: Clone>(keys: &[K], order: &[u32]) -> Vec<K> {
    order.iter().map(|&i| keys[i as usize].clone()).collect()
}

/// Benchmarks `KeyedStore` updates of `keys` in `order`, the store holding every key already.
fn keyed_store<K: Key + Serialize>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    keys: &[K],
    order: &[u32],
) {
    let mut store = KeyedStore::<K, ValueState<u64>>::new();
    for key in keys {
        increment(&mut store, key.clone());
    }
    group.bench_function(BenchmarkId::new(name, keys.len()), |b| {
        b.iter_batched(
            || draws(keys, order),
            |batch| {
                for key in batch {
                    increment(&mut store, key);
                }
            },
            BatchSize::PerIteration,
        );
    });
    assert_eq!(store.len(), keys.len());
}

fn keyed_state(c: &mut Criterion) {
    let mut group = c.benchmark_group("keyed_state");
    group.throughput(Throughput::Elements(UPDATES as u64));
    group.sample_size(10);
    // An iteration takes up to 200 ms: one per sample is enough.
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    for distinct in DISTINCT_KEYS {
        let keys: Vec<String> = (0..distinct).map(|i| format!("word{i}")).collect();
        let mut rng = rng::SplitMix64(distinct as u64);
        let order: Vec<u32> = (0..UPDATES)
            .map(|_| (rng.next() % distinct as u64) as u32)
            .collect();

        keyed_store(&mut group, "keyed_store", &keys, &order);
        let compact: Vec<CompactString> = keys.iter().map(CompactString::from).collect();
        keyed_store(&mut group, "keyed_store_compact", &compact, &order);

        let mut baseline: HashMap<String, u64> = keys.iter().map(|k| (k.clone(), 1)).collect();
        group.bench_with_input(
            BenchmarkId::new("baseline_std_hashmap", distinct),
            &order,
            |b, order| {
                b.iter_batched(
                    || draws(&keys, order),
                    |batch| {
                        for key in batch {
                            *baseline.entry(key).or_insert(0) += 1;
                        }
                    },
                    BatchSize::PerIteration,
                );
            },
        );
        assert_eq!(baseline.len(), distinct);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // 10k bootstrap resamples (the default is 100k) are plenty for 10 to 20 samples, and save
    // seconds of analysis per benchmark.
    config = Criterion::default().nresamples(10_000);
    targets = keyed_state
}
criterion_main!(benches);
