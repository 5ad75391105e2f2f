//! End-to-end word count through the engine, at parallelism 1 and 2, with a discarding sink.
//!
//! `cargo bench --bench pipeline`. Reports words/s (criterion's element throughput).

#[path = "../examples/support/corpus.rs"]
mod corpus;
#[path = "../examples/support/rng.rs"]
mod rng;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use snapflow::prelude::*;

const LINES: u64 = 100_000;
const WORDS_PER_LINE: usize = 10;

fn wordcount(lines: &[String], parallelism: usize) -> u64 {
    let job = Job::new("wordcount-bench");
    let sink = DiscardSink::new();
    let counter = sink.counter();
    job.source(CollectionSource::new(lines.to_vec()))
        .flat_map(|line: String| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .key_by(|word: &String| word.clone())
        .process(
            |_, word: String, count: &mut ValueState<u64>, out: &mut Output<(String, u64)>| {
                let n = count.get().copied().unwrap_or(0) + 1;
                count.set(n);
                out.push((word, n));
                Ok(())
            },
        )
        .sink(sink);
    job.run(&JobConfig::default().with_parallelism(parallelism))
        .expect("word count runs");
    counter.get()
}

fn end_to_end(c: &mut Criterion) {
    let corpus = corpus::Corpus::new(100_000, WORDS_PER_LINE, 1);
    let lines: Vec<String> = (0..LINES).map(|i| corpus.line(i)).collect();
    let mut group = c.benchmark_group("wordcount");
    group.throughput(Throughput::Elements(LINES * WORDS_PER_LINE as u64));
    group.sample_size(10);
    for parallelism in [1, 2] {
        group.bench_with_input(
            BenchmarkId::new("parallelism", parallelism),
            &parallelism,
            |b, &p| {
                b.iter(|| assert_eq!(wordcount(&lines, p), LINES * WORDS_PER_LINE as u64));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
