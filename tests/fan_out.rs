//! One stream consumed by several operators: every consumer gets every record.

mod common;

use common::{bounded, multiset};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use snapflow::prelude::*;
use std::collections::HashMap;

#[test]
fn every_consumer_of_a_stream_receives_every_record() {
    const N: u64 = 3000;
    let value = |i: u64| i.wrapping_mul(0x9e37_79b9) % 1000;

    for parallelism in [1, 3] {
        let (plain, doubled, odd) = bounded("fan-out job", move || {
            let job = Job::new("fan-out");
            let (plain, doubled, odd) =
                (CollectSink::new(), CollectSink::new(), CollectSink::new());
            let results = (plain.results(), doubled.results(), odd.results());
            let numbers = job.source(GeneratorSource::new(N, value));
            numbers.clone().sink(plain).name("plain");
            numbers
                .clone()
                .map(|v: u64| v * 2)
                .parallelism(2)
                .sink(doubled)
                .name("doubled")
                .parallelism(1);
            numbers.filter(|v| v % 2 == 1).sink(odd).name("odd");
            job.run(
                &JobConfig::default()
                    .with_parallelism(parallelism)
                    .with_batch_size(64),
            )
            .unwrap();
            (results.0.take(), results.1.take(), results.2.take())
        });

        let input: Vec<u64> = (0..N).map(value).collect();
        assert_eq!(
            multiset(plain),
            multiset(input.iter().copied()),
            "plain, p={parallelism}"
        );
        assert_eq!(
            multiset(doubled),
            multiset(input.iter().map(|v| v * 2)),
            "doubled, p={parallelism}"
        );
        assert_eq!(
            multiset(odd),
            multiset(input.iter().copied().filter(|v| v % 2 == 1)),
            "odd, p={parallelism}"
        );
    }
}

/// Per key, the outputs of a running aggregate that carries its record count `n`: checks that
/// the counts are exactly 1..=n (each record of the key counted once, by one task) and returns
/// the final aggregate.
fn final_per_key<K, A>(outputs: Vec<(K, A)>, count: impl Fn(&A) -> u64) -> HashMap<K, A>
where
    K: std::hash::Hash + Eq + std::fmt::Debug,
    A: Clone,
{
    let mut by_key: HashMap<K, Vec<A>> = HashMap::new();
    for (key, acc) in outputs {
        by_key.entry(key).or_default().push(acc);
    }
    by_key
        .into_iter()
        .map(|(key, mut accs)| {
            accs.sort_by_key(&count);
            let counts: Vec<u64> = accs.iter().map(&count).collect();
            assert_eq!(
                counts,
                (1..=accs.len() as u64).collect::<Vec<_>>(),
                "key {key:?}"
            );
            (key, accs.pop().expect("a key has outputs"))
        })
        .collect()
}

#[test]
fn one_source_feeds_two_keyed_aggregations() {
    let mut rng = StdRng::seed_from_u64(2024);
    // (user, region, amount)
    let events: Vec<(u32, u8, u64)> = (0..8000)
        .map(|_| {
            (
                rng.gen_range(0..300u32),
                rng.gen_range(0..6u8),
                rng.gen_range(1..10_000u64),
            )
        })
        .collect();

    // Sequentially: per user (count, total amount); per region (count, max amount).
    let mut per_user: HashMap<u32, (u64, u64)> = HashMap::new();
    let mut per_region: HashMap<u8, (u64, u64)> = HashMap::new();
    for &(user, region, amount) in &events {
        let u = per_user.entry(user).or_default();
        u.0 += 1;
        u.1 += amount;
        let r = per_region.entry(region).or_default();
        r.0 += 1;
        r.1 = r.1.max(amount);
    }

    for parallelism in [1, 2, 4] {
        let input = events.clone();
        let (users, regions) = bounded("two aggregations job", move || {
            let job = Job::new("aggregations");
            let (users, regions) = (CollectSink::new(), CollectSink::new());
            let results = (users.results(), regions.results());
            let events = job.source(CollectionSource::new(input));
            events
                .clone()
                .key_by(|&(user, _, _): &(u32, u8, u64)| user)
                .fold((0u64, 0u64), |(n, total), (_, _, amount)| {
                    (n + 1, total + amount)
                })
                .sink(users);
            events
                .map(|(_, region, amount)| (region, 1u64, amount))
                .key_by(|&(region, _, _): &(u8, u64, u64)| region)
                .reduce(|a, b| (a.0, a.1 + b.1, a.2.max(b.2)))
                .parallelism(3)
                .sink(regions);
            job.run(
                &JobConfig::default()
                    .with_parallelism(parallelism)
                    .with_batch_size(32),
            )
            .unwrap();
            (results.0.take(), results.1.take())
        });

        let users = final_per_key(users, |&(n, _)| n);
        assert_eq!(users, per_user, "per user, p={parallelism}");
        let regions = final_per_key(
            regions
                .into_iter()
                .map(|(r, n, max)| (r, (n, max)))
                .collect(),
            |&(n, _)| n,
        );
        assert_eq!(regions, per_region, "per region, p={parallelism}");
    }
}

#[test]
fn diamond_rejoins_both_branches() {
    const N: u64 = 5000;
    // Tiny batches and channels make the branches block on each other as much as possible.
    for (batch, capacity) in [(1, 1), (7, 2), (256, 16)] {
        let got = bounded("diamond job", move || {
            let job = Job::new("diamond");
            let sink = CollectSink::new();
            let results = sink.results();
            let numbers = job.source(GeneratorSource::new(N, |i| i));
            let evens = numbers
                .clone()
                .filter(|i| i % 2 == 0)
                .map(|i: u64| (i, "even"))
                .parallelism(3);
            let all = numbers.map(|i: u64| (i, "all"));
            evens.union(all).parallelism(2).sink(sink);
            job.run(
                &JobConfig::default()
                    .with_parallelism(2)
                    .with_batch_size(batch)
                    .with_channel_capacity(capacity),
            )
            .unwrap();
            results.take()
        });
        let expected = (0..N)
            .filter(|i| i % 2 == 0)
            .map(|i| (i, "even"))
            .chain((0..N).map(|i| (i, "all")));
        assert_eq!(
            multiset(got),
            multiset(expected),
            "batch {batch}, capacity {capacity}"
        );
    }
}
