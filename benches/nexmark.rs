//! Nexmark q5 (hot items: HOP-window counts, then the maximum per window) and q7 (highest
//! bid: the bids at each 10 s window's maximum price) end to end: the `nexmark` example's
//! jobs over [`EVENTS`] generated events, discarding the rows, at parallelism 1 and 2, with
//! checkpoints every second. Every run checks the row count against a sequential computation
//! done once up front.
//!
//! `cargo bench --bench nexmark`. Reports events/s (criterion's element throughput).

#[path = "../examples/support/nexmark_job.rs"]
mod nexmark_job;

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use snapflow::prelude::*;
use std::time::Duration;

const EVENTS: u64 = 1_000_000;

fn queries(c: &mut Criterion) {
    for query in ["q5", "q7"] {
        let rows = nexmark_job::expected(query, EVENTS).len() as u64;
        let mut group = c.benchmark_group(format!("nexmark_{query}"));
        group.throughput(Throughput::Elements(EVENTS));
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(5));
        for parallelism in [1, 2] {
            group.bench_with_input(
                BenchmarkId::new("checkpoints_1s", parallelism),
                &parallelism,
                |b, &parallelism| {
                    b.iter_batched(
                        || tempfile::tempdir().expect("checkpoint tempdir"),
                        |checkpoints| {
                            let config = JobConfig::default()
                                .with_parallelism(parallelism)
                                .with_checkpointing(checkpoints.path(), Duration::from_secs(1));
                            let report = nexmark_job::build(query, EVENTS, DiscardSink::new())
                                .run(&config)
                                .expect("the query runs");
                            assert_eq!(report.operator("write").map(|m| m.records_in), Some(rows));
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
