//! End-to-end word count through the engine: the example's job (`wordcount_job::build`) over
//! a generated corpus file, discarding its output, at parallelism 1 and 2, without and with
//! periodic checkpoints.
//!
//! The corpus ([`LINES`] lines of [`WORDS_PER_LINE`] Zipf-distributed words) is written once
//! to a temporary file. With checkpoints, every run gets a fresh checkpoint directory and
//! checkpoints every 100 ms, so that one run takes several; the number taken is printed after
//! the group. Every run checks that each word was counted, and that the distinct words match a
//! sequential count. The baseline is that sequential count: one thread, `read_to_string`,
//! `split_whitespace` and a std `HashMap`.
//!
//! `cargo bench --bench pipeline`. Reports words/s (criterion's element throughput).

#[path = "../examples/support/corpus.rs"]
mod corpus;
#[path = "../examples/support/rng.rs"]
mod rng;
#[path = "../examples/support/wordcount_job.rs"]
mod wordcount_job;

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use snapflow::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const LINES: u64 = 200_000;
const WORDS_PER_LINE: usize = 10;
const WORDS: u64 = LINES * WORDS_PER_LINE as u64;
const VOCABULARY: usize = 100_000;
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// Runs word count over `input` and checks that it counted every word and found `distinct`
/// distinct ones.
fn wordcount(input: &Path, config: &JobConfig, distinct: u64) -> JobReport {
    let seen = Arc::new(AtomicU64::new(0));
    let report = wordcount_job::build(input, None, seen.clone())
        .run(config)
        .expect("word count runs");
    assert_eq!(report.operator("count").map(|m| m.records_in), Some(WORDS));
    assert_eq!(report.operator("write").map(|m| m.records_in), Some(WORDS));
    assert_eq!(seen.load(Ordering::Relaxed), distinct);
    report
}

/// The baseline: the distinct words of `input`, counted on one thread.
fn sequential(input: &Path) -> u64 {
    let text = std::fs::read_to_string(input).expect("read corpus");
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut words = 0;
    for word in text.split_whitespace() {
        *counts.entry(word).or_insert(0) += 1;
        words += 1;
    }
    assert_eq!(words, WORDS);
    counts.len() as u64
}

fn end_to_end(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("corpus.txt");
    corpus::Corpus::new(VOCABULARY, WORDS_PER_LINE, 1)
        .write_to(&input, LINES)
        .expect("write corpus");
    let distinct = sequential(&input);

    let mut group = c.benchmark_group("wordcount");
    group.throughput(Throughput::Elements(WORDS));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("baseline_sequential", |b| {
        b.iter(|| assert_eq!(sequential(&input), distinct));
    });
    for parallelism in [1, 2] {
        let config = JobConfig::default().with_parallelism(parallelism);
        group.bench_with_input(
            BenchmarkId::new("no_checkpoints", parallelism),
            &config,
            |b, config| b.iter(|| wordcount(&input, config, distinct)),
        );
        let mut taken = Vec::new();
        group.bench_with_input(
            BenchmarkId::new("checkpoints_100ms", parallelism),
            &config,
            |b, config| {
                b.iter_batched(
                    || tempfile::tempdir().expect("checkpoint tempdir"),
                    |checkpoints| {
                        let config = config
                            .clone()
                            .with_checkpointing(checkpoints.path(), CHECKPOINT_INTERVAL);
                        let report = wordcount(&input, &config, distinct);
                        taken.push(report.checkpoints.iter().filter(|c| !c.is_final).count());
                        // Returned, so that deleting the directory is not timed.
                        checkpoints
                    },
                    BatchSize::PerIteration,
                );
            },
        );
        taken.sort_unstable();
        eprintln!(
            "parallelism {parallelism}: periodic checkpoints per run min {} median {} max {}",
            taken.first().unwrap_or(&0),
            taken.get(taken.len() / 2).unwrap_or(&0),
            taken.last().unwrap_or(&0),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // 10k bootstrap resamples (the default is 100k) are plenty for 10 to 20 samples, and save
    // seconds of analysis per benchmark.
    config = Criterion::default().nresamples(10_000);
    targets = end_to_end
}
criterion_main!(benches);
