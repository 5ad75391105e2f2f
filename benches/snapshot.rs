//! Snapshot write and read for a keyed operator's state of 10k, 100k and 1M keys (a
//! `KeyedStore<String, ValueState<u64>>`, word count's running counts).
//!
//! Write, as a task does on a barrier: `KeyedStore::snapshot` (encode by key group), then
//! `write_snapshot` into a begun checkpoint of a `CheckpointStore` (memory-mapped, checksummed,
//! fsynced). Read, as a task does on restore: `CheckpointStore::open_snapshot` (map, verify
//! header, length and checksum against the manifest), then `decode_keyed_state` of every key
//! group. The baselines are a plain `write_all` + `sync_all` of the same bytes, and a plain
//! `fs::read`. Reads hit the page cache: the files were just written.
//!
//! `cargo bench --bench snapshot`. Reports payload bytes/s (criterion's byte throughput); the
//! payload sizes are printed first.

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use snapflow::checkpoint::{
    decode_keyed_state, write_snapshot, CheckpointId, CheckpointStore, KeyGroupRange, Manifest,
    SnapshotEntry, DEFAULT_MAX_PARALLELISM,
};
use snapflow::operators::{KeyedStore, ValueState};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

const KEYS: [usize; 3] = [10_000, 100_000, 1_000_000];
const UID: &str = "count";
const MAX: u32 = DEFAULT_MAX_PARALLELISM;

type CountStore = KeyedStore<String, ValueState<u64>>;

/// One state size: the state, its encoding, and a checkpoint store to write it into.
struct Fixture {
    keys: usize,
    state: CountStore,
    payload: Vec<u8>,
    _dir: TempDir,
    store: CheckpointStore,
    id: CheckpointId,
    baseline_file: PathBuf,
}

impl Fixture {
    fn new(keys: usize) -> Fixture {
        let mut state = CountStore::new();
        for i in 0..keys {
            state.with(format!("word{i}"), |_, count| count.set(i as u64 + 1));
        }
        let payload = state.snapshot(MAX).expect("encode");
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path().join("checkpoints")).expect("open store");
        let id = store.next_id().expect("next id");
        store.begin(id).expect("begin");
        let baseline_file = dir.path().join("baseline.bin");
        Fixture {
            keys,
            state,
            payload,
            _dir: dir,
            store,
            id,
            baseline_file,
        }
    }

    fn snapshot_file(&self) -> PathBuf {
        self.store.layout().snapshot_file(self.id, UID, 0)
    }

    fn throughput(&self) -> Throughput {
        Throughput::Bytes(self.payload.len() as u64)
    }

    /// Writes the snapshot once more and commits the checkpoint, for the read benchmarks.
    fn commit(&self) -> Manifest {
        let info =
            write_snapshot(&self.snapshot_file(), UID, 0, self.id, &self.payload).expect("write");
        let manifest = Manifest {
            checkpoint: self.id,
            job: "snapshot-bench".into(),
            graph_fingerprint: 0,
            triggered_at_ms: 0,
            completed_at_ms: 0,
            snapshots: vec![SnapshotEntry::new(UID, 0, info)],
            source_offsets: vec![],
            operators: vec![UID.into()],
            is_final: false,
        };
        self.store.commit(&manifest).expect("commit");
        manifest
    }
}

/// The simplest durable write: a fresh file, `write_all`, `sync_all`.
fn baseline_write(path: &Path, bytes: &[u8]) {
    let _ = fs::remove_file(path);
    let mut file = File::create(path).expect("create");
    file.write_all(bytes).expect("write");
    file.sync_all().expect("sync");
}

/// Few samples, one iteration each for the slow sizes (1M keys take up to 0.5 s).
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
}

fn snapshot(c: &mut Criterion) {
    let fixtures: Vec<Fixture> = KEYS.into_iter().map(Fixture::new).collect();
    for f in &fixtures {
        eprintln!("{} keys: payload {} bytes", f.keys, f.payload.len());
    }

    let mut group = c.benchmark_group("snapshot_write");
    configure(&mut group);
    for f in &fixtures {
        group.throughput(f.throughput());
        let path = f.snapshot_file();
        group.bench_function(BenchmarkId::new("encode", f.keys), |b| {
            b.iter(|| {
                assert_eq!(
                    f.state.snapshot(MAX).expect("encode").len(),
                    f.payload.len()
                )
            });
        });
        group.bench_function(BenchmarkId::new("write_snapshot", f.keys), |b| {
            b.iter(|| write_snapshot(&path, UID, 0, f.id, &f.payload).expect("write"));
        });
        group.bench_function(BenchmarkId::new("encode_and_write", f.keys), |b| {
            b.iter(|| {
                let payload = f.state.snapshot(MAX).expect("encode");
                write_snapshot(&path, UID, 0, f.id, &payload).expect("write")
            });
        });
        group.bench_function(BenchmarkId::new("baseline_fs_write", f.keys), |b| {
            b.iter(|| baseline_write(&f.baseline_file, &f.payload));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("snapshot_read");
    configure(&mut group);
    let all_groups = KeyGroupRange::for_task(0, 1, MAX);
    for f in &fixtures {
        group.throughput(f.throughput());
        let manifest = f.commit();
        let entry = &manifest.snapshots[0];
        group.bench_function(BenchmarkId::new("open_verify", f.keys), |b| {
            b.iter(|| {
                let snapshot = f.store.open_snapshot(&manifest, entry).expect("open");
                assert_eq!(snapshot.payload().len(), f.payload.len());
            });
        });
        group.bench_function(BenchmarkId::new("open_verify_decode", f.keys), |b| {
            b.iter(|| {
                let snapshot = f.store.open_snapshot(&manifest, entry).expect("open");
                let state: Vec<(String, ValueState<u64>)> =
                    decode_keyed_state(snapshot.payload(), &all_groups, MAX).expect("decode");
                assert_eq!(state.len(), f.keys);
            });
        });
        let file = f.store.layout().listed_file(f.id, &entry.file);
        group.bench_function(BenchmarkId::new("baseline_fs_read", f.keys), |b| {
            b.iter(|| assert_eq!(fs::read(&file).expect("read").len() as u64, entry.bytes));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // 10k bootstrap resamples (the default is 100k) are plenty for 10 to 20 samples, and save
    // seconds of analysis per benchmark.
    config = Criterion::default().nresamples(10_000);
    targets = snapshot
}
criterion_main!(benches);
