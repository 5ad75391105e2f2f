//! Nexmark q5 (hot items: sliding windows, then the maximum per window) and q7 (highest bid:
//! tumbling windows, then the bids at the maximum) end to end through the engine, on
//! generated events, discarding the rows, at parallelism 1 and 2, with checkpoints every
//! second (as the README's Nexmark figures) and without. Every run checks its row count
//! against the sequential computation of the query; the sequential computation itself (one
//! thread over the events already in memory) is the baseline.
//!
//! `cargo bench --bench nexmark`. Reports events/s (criterion's element throughput).

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use snapflow::prelude::*;
use snapflow_nexmark::event::{event_time, generate};
use snapflow_nexmark::sequential;
use snapflow_nexmark::source::NexmarkSource;
use snapflow_nexmark::Query;
use std::time::Duration;

/// 100 s of event time: ten 10 s windows, fifty 2 s slides.
const EVENTS: u64 = 1_000_000;

fn run(query: Query, config: &JobConfig, rows: u64) {
    let job = Job::new(format!("nexmark-{query}"));
    let events = job
        .source(NexmarkSource::new(EVENTS))
        .name("events")
        .with_timestamp_assigner(event_time);
    query.build(events).sink(DiscardSink::new()).name("write");
    let report = job.run(config).expect("the query runs");
    assert_eq!(
        report.operator("events").map(|m| m.records_out),
        Some(EVENTS)
    );
    assert_eq!(report.operator("write").map(|m| m.records_in), Some(rows));
}

fn queries(c: &mut Criterion) {
    let events = generate(EVENTS);
    for query in [Query::Q5, Query::Q7] {
        let rows = sequential::run(query, &events).len() as u64;
        let mut group = c.benchmark_group(format!("nexmark_{query}"));
        group.throughput(Throughput::Elements(EVENTS));
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(10));
        group.bench_function("sequential_in_memory", |b| {
            b.iter(|| assert_eq!(sequential::run(query, &events).len() as u64, rows));
        });
        for parallelism in [1, 2] {
            let config = JobConfig::default().with_parallelism(parallelism);
            group.bench_with_input(
                BenchmarkId::new("no_checkpoints", parallelism),
                &config,
                |b, config| b.iter(|| run(query, config, rows)),
            );
            group.bench_with_input(
                BenchmarkId::new("checkpoints_1s", parallelism),
                &config,
                |b, config| {
                    b.iter_batched(
                        || tempfile::tempdir().expect("checkpoint tempdir"),
                        |checkpoints| {
                            let config = config
                                .clone()
                                .with_checkpointing(checkpoints.path(), Duration::from_secs(1));
                            run(query, &config, rows);
                            // Returned, so that deleting the directory is not timed.
                            checkpoints
                        },
                        BatchSize::PerIteration,
                    );
                },
            );
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().nresamples(10_000);
    targets = queries
}
criterion_main!(benches);
