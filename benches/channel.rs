//! Channel throughput by batch size: what batching buys on the engine's data path.
//!
//! A producer thread sends [`RECORDS`] `(u64, u64)` records to the bench thread over a
//! bounded crossbeam channel of `Vec` batches, swept over batch sizes 1 to 4096; the channel
//! holds [`CAPACITY`] batches, as the engine's channels do by default. Every batch is a fresh
//! allocation moved to the receiver, as in the engine. The baseline sends bare records, one
//! channel operation each and no allocation: what batching must beat.
//!
//! `cargo bench --bench channel`. Reports records/s (criterion's element throughput).

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use crossbeam_channel::bounded;
use std::hint::black_box;
use std::thread;
use std::time::Duration;

/// Records per iteration.
const RECORDS: u64 = 1 << 18;
/// Batches (or, for the baseline, records) a channel holds before the sender blocks.
const CAPACITY: usize = 16;
const BATCH_SIZES: [usize; 7] = [1, 4, 16, 64, 256, 1024, 4096];

type Record = (u64, u64);

fn record(i: u64) -> Record {
    (i, i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Sends [`RECORDS`] records in batches of `batch_size` and returns the receiver's checksum.
fn batched(batch_size: usize) -> u64 {
    let (tx, rx) = bounded::<Vec<Record>>(CAPACITY);
    thread::scope(|s| {
        s.spawn(move || {
            let mut batch = Vec::with_capacity(batch_size);
            for i in 0..RECORDS {
                batch.push(record(i));
                if batch.len() == batch_size {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                    tx.send(full).expect("receiver alive");
                }
            }
            if !batch.is_empty() {
                tx.send(batch).expect("receiver alive");
            }
        });
        rx.iter()
            .flatten()
            .fold(0u64, |sum, (k, v)| sum.wrapping_add(k ^ v))
    })
}

/// The baseline: one channel operation per record.
fn unbatched() -> u64 {
    let (tx, rx) = bounded::<Record>(CAPACITY);
    thread::scope(|s| {
        s.spawn(move || {
            for i in 0..RECORDS {
                tx.send(record(i)).expect("receiver alive");
            }
        });
        rx.iter().fold(0u64, |sum, (k, v)| sum.wrapping_add(k ^ v))
    })
}

fn channel(c: &mut Criterion) {
    let expected = (0..RECORDS)
        .map(record)
        .fold(0u64, |sum, (k, v)| sum.wrapping_add(k ^ v));
    let mut group = c.benchmark_group("channel");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    // Batch size 1 takes ~100 ms an iteration: one iteration per sample is enough.
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("unbatched", |b| {
        b.iter(|| assert_eq!(black_box(unbatched()), expected));
    });
    for batch_size in BATCH_SIZES {
        group.bench_with_input(
            BenchmarkId::new("batch", batch_size),
            &batch_size,
            |b, &n| b.iter(|| assert_eq!(black_box(batched(n)), expected)),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // 10k bootstrap resamples (the default is 100k) are plenty for 10 to 20 samples, and save
    // seconds of analysis per benchmark.
    config = Criterion::default().nresamples(10_000);
    targets = channel
}
criterion_main!(benches);
