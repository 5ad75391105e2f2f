//! Hash partitioning: the cost of routing a word to its task through key groups.
//!
//! For every word of a generated corpus (Zipf-distributed pseudo-words as `CompactString`s, as
//! word count routes them), at parallelism 2, 4 and 8 over the default 128 key groups:
//! `key_hash` then `key_group_of_hash` then `task_for_key_group` (the definition), and
//! `key_hash` then `KeyGroupRouter::task_of_hash` (what the engine's hash router runs). Two
//! baselines: the same hash reduced modulo the parallelism (what key groups add), and std's
//! `DefaultHasher` (SipHash) modulo the parallelism (the naive partitioner, which could not
//! restore state at another parallelism).
//!
//! `cargo bench --bench partition`. Reports words/s (criterion's element throughput).

#[path = "../examples/support/corpus.rs"]
mod corpus;
#[path = "../examples/support/rng.rs"]
mod rng;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use snapflow::checkpoint::{
    key_group_of_hash, key_hash, task_for_key_group, KeyGroupRouter, DEFAULT_MAX_PARALLELISM,
};
use snapflow::prelude::CompactString;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::hint::black_box;
use std::time::Duration;

const LINES: u64 = 10_000;
const WORDS_PER_LINE: usize = 10;
const VOCABULARY: usize = 100_000;
const PARALLELISM: [u32; 3] = [2, 4, 8];

type Word = CompactString;

/// Counts the words each task receives when `task_of` routes them.
fn route(words: &[Word], parallelism: u32, task_of: impl Fn(&Word) -> u32) -> [u64; 8] {
    let mut per_task = [0u64; 8];
    for word in words {
        let task = task_of(black_box(word));
        debug_assert!(task < parallelism);
        per_task[task as usize] += 1;
    }
    per_task
}

fn partition(c: &mut Criterion) {
    let corpus = corpus::Corpus::new(VOCABULARY, WORDS_PER_LINE, 1);
    let words: Vec<Word> = (0..LINES)
        .flat_map(|i| {
            corpus
                .line(i)
                .split_whitespace()
                .map(Word::from)
                .collect::<Vec<_>>()
        })
        .collect();
    let total = words.len() as u64;
    // Opaque, as in the engine, where both are runtime values: no division by a constant.
    let max = black_box(DEFAULT_MAX_PARALLELISM);

    let mut group = c.benchmark_group("partition");
    group.throughput(Throughput::Elements(total));
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    for p in PARALLELISM.map(black_box) {
        let check = |per_task: [u64; 8]| assert_eq!(per_task.iter().sum::<u64>(), total);
        group.bench_with_input(BenchmarkId::new("key_groups", p), &p, |b, &p| {
            b.iter(|| {
                check(route(&words, p, |w| {
                    task_for_key_group(key_group_of_hash(key_hash(w), max), p, max)
                }))
            });
        });
        let router = KeyGroupRouter::new(p, max);
        group.bench_with_input(BenchmarkId::new("router", p), &p, |b, &p| {
            b.iter(|| {
                check(route(&words, p, |w| {
                    router.task_of_hash(key_hash(w)) as u32
                }))
            });
        });
        group.bench_with_input(BenchmarkId::new("baseline_hash_mod", p), &p, |b, &p| {
            b.iter(|| check(route(&words, p, |w| (key_hash(w) % u64::from(p)) as u32)));
        });
        group.bench_with_input(BenchmarkId::new("baseline_siphash_mod", p), &p, |b, &p| {
            b.iter(|| {
                check(route(&words, p, |w| {
                    let mut hasher = DefaultHasher::new();
                    w.hash(&mut hasher);
                    (hasher.finish() % u64::from(p)) as u32
                }))
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // 10k bootstrap resamples (the default is 100k) are plenty for 10 to 20 samples, and save
    // seconds of analysis per benchmark.
    config = Criterion::default().nresamples(10_000);
    targets = partition
}
criterion_main!(benches);
