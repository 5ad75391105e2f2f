//! Which downstream task each record reaches, for every partitioning of an edge.

mod common;

use common::{bounded, multiset};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use snapflow::checkpoint::{key_group_of_hash, key_hash, task_for_key_group};
use snapflow::engine::{Data, OperatorLifecycle, ReadStatus, Source, SourceReader, UnaryOperator};
use snapflow::prelude::*;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Passes every record on, paired with the index of the task that saw it.
struct Tag {
    index: usize,
}

impl<T: Data> UnaryOperator<T, (usize, T)> for Tag {
    fn process_batch(
        &mut self,
        batch: Vec<T>,
        out: &mut Output<(usize, T)>,
    ) -> Result<(), BoxError> {
        for record in batch {
            out.push((self.index, record));
        }
        Ok(())
    }
}

impl<T: Data> OperatorLifecycle<(usize, T)> for Tag {}

fn tag(info: &TaskInfo) -> Tag {
    Tag { index: info.index }
}

/// Each task emits `(its index, 0..per_task)`.
struct PerTaskSource {
    per_task: u64,
}

struct PerTaskReader {
    index: usize,
    next: u64,
    end: u64,
}

impl Source for PerTaskSource {
    type Out = (usize, u64);

    fn create_reader(
        &self,
        task: &TaskInfo,
    ) -> Result<Box<dyn SourceReader<(usize, u64)>>, BoxError> {
        Ok(Box::new(PerTaskReader {
            index: task.index,
            next: 0,
            end: self.per_task,
        }))
    }
}

impl SourceReader<(usize, u64)> for PerTaskReader {
    fn read_batch(
        &mut self,
        batch: &mut Vec<(usize, u64)>,
        max: usize,
    ) -> Result<ReadStatus, BoxError> {
        let end = self.end.min(self.next + max as u64);
        batch.extend((self.next..end).map(|i| (self.index, i)));
        self.next = end;
        Ok(if self.next == self.end {
            ReadStatus::Exhausted
        } else {
            ReadStatus::More
        })
    }
}

#[test]
fn forward_keeps_records_on_the_same_task_index() {
    const PER_TASK: u64 = 500;
    let got = bounded("forward job", || {
        let job = Job::new("forward");
        let sink = CollectSink::new();
        let results = sink.results();
        job.source(PerTaskSource { per_task: PER_TASK })
            .parallelism(3)
            .forward()
            .unary("first", tag)
            .parallelism(3)
            .forward()
            .unary("second", tag)
            .parallelism(3)
            .sink(sink);
        job.run(&JobConfig::default().with_parallelism(3).with_batch_size(4))
            .unwrap();
        results.take()
    });

    for &(second, (first, (source, seq))) in &got {
        assert_eq!(
            (first, second),
            (source, source),
            "record {seq} of source task {source} went to tasks {first} and {second}"
        );
    }
    let expected = multiset((0..3).flat_map(|t| (0..PER_TASK).map(move |i| (t, i))));
    assert_eq!(multiset(got.iter().map(|&(_, (_, r))| r)), expected);
}

#[test]
fn rebalance_spreads_batches_over_all_tasks_exactly_once() {
    const N: u64 = 1000;
    const BATCH: usize = 4;
    let got = bounded("rebalance job", || {
        let job = Job::new("rebalance");
        let sink = CollectSink::new();
        let results = sink.results();
        job.source(GeneratorSource::new(N, |i| i))
            .parallelism(1)
            .rebalance()
            .unary("tag", tag)
            .parallelism(3)
            .sink(sink);
        job.run(&JobConfig::default().with_batch_size(BATCH))
            .unwrap();
        results.take()
    });

    assert_eq!(multiset(got.iter().map(|&(_, r)| r)), multiset(0..N));
    let per_task = multiset(got.iter().map(|&(task, _)| task));
    assert!(
        per_task.len() > 1,
        "only tasks {per_task:?} received records"
    );
    assert_eq!(
        per_task.len(),
        3,
        "not every task received records: {per_task:?}"
    );
    // One upstream task sending full batches round-robin: no task is more than a batch or two
    // ahead of another.
    let (min, max) = (
        per_task.values().min().unwrap(),
        per_task.values().max().unwrap(),
    );
    assert!(max - min <= 2 * BATCH, "unbalanced: {per_task:?}");
}

#[test]
fn broadcast_delivers_every_record_to_every_task_once() {
    const N: u64 = 300;
    // Broadcast from a source (whole batches) and from a map (record by record).
    for via_map in [false, true] {
        let got = bounded("broadcast job", move || {
            let job = Job::new("broadcast");
            let sink = CollectSink::new();
            let results = sink.results();
            let mut numbers = job.source(GeneratorSource::new(N, |i| i)).parallelism(2);
            if via_map {
                numbers = numbers.map(|i: u64| i).parallelism(2);
            }
            numbers
                .broadcast()
                .unary("tag", tag)
                .parallelism(3)
                .sink(sink);
            job.run(&JobConfig::default().with_parallelism(2).with_batch_size(8))
                .unwrap();
            results.take()
        });

        assert_eq!(got.len() as u64, 3 * N, "via map: {via_map}");
        let mut tasks_of: HashMap<u64, BTreeSet<usize>> = HashMap::new();
        for &(task, record) in &got {
            assert!(
                tasks_of.entry(record).or_default().insert(task),
                "record {record} reached task {task} twice (via map: {via_map})"
            );
        }
        let all: BTreeSet<usize> = (0..3).collect();
        assert_eq!(tasks_of.len() as u64, N, "via map: {via_map}");
        for record in 0..N {
            assert_eq!(
                tasks_of.get(&record),
                Some(&all),
                "record {record} (via map: {via_map})"
            );
        }
    }
}

#[test]
fn hash_sends_each_key_to_the_task_owning_its_key_group() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let records: Vec<(u32, u64)> = (0..5000)
        .map(|seq| (rng.gen_range(0..400u32), seq))
        .collect();

    // (max parallelism, parallelism of the keyed operator); `None` keeps the default of 128.
    for (max_parallelism, parallelism) in [(None, 4usize), (Some(7u32), 3)] {
        let input = records.clone();
        let got = bounded("hash job", move || {
            let job = Job::new("hash");
            let sink = CollectSink::new();
            let results = sink.results();
            job.source(CollectionSource::new(input))
                .key_by(|&(key, _): &(u32, u64)| key)
                .keyed_unary("tag", |info, _key| tag(info))
                .parallelism(parallelism)
                .sink(sink);
            let mut config = JobConfig::default().with_parallelism(2).with_batch_size(16);
            if let Some(max) = max_parallelism {
                config = config.with_max_parallelism(max);
            }
            job.run(&config).unwrap();
            results.take()
        });

        let max = max_parallelism.unwrap_or(128);
        assert_eq!(
            multiset(got.iter().map(|&(_, r)| r)),
            multiset(records.iter().copied()),
            "max parallelism {max}"
        );
        let mut task_of_key: HashMap<u32, usize> = HashMap::new();
        for &(task, (key, _)) in &got {
            let first = *task_of_key.entry(key).or_insert(task);
            assert_eq!(first, task, "key {key} reached tasks {first} and {task}");
            let owner = task_for_key_group(
                key_group_of_hash(key_hash(&key), max),
                parallelism as u32,
                max,
            );
            assert_eq!(task, owner as usize, "key {key}, max parallelism {max}");
        }
        let used: HashSet<usize> = task_of_key.values().copied().collect();
        assert!(used.len() > 1, "all keys on tasks {used:?}");
    }
}

#[test]
fn default_partitioning_between_different_parallelisms_delivers_each_record_once() {
    const N: u64 = 2000;
    let got = bounded("default partitioning job", || {
        let job = Job::new("default");
        let sink = CollectSink::new();
        let results = sink.results();
        job.source(GeneratorSource::new(N, |i| i * 3))
            .parallelism(2)
            .unary("tag", tag)
            .parallelism(3)
            .sink(sink);
        job.run(&JobConfig::default().with_parallelism(2).with_batch_size(8))
            .unwrap();
        results.take()
    });

    assert_eq!(
        multiset(got.iter().map(|&(_, r)| r)),
        multiset((0..N).map(|i| i * 3))
    );
    let used: HashSet<usize> = got.iter().map(|&(task, _)| task).collect();
    assert_eq!(used.len(), 3, "tasks {used:?} received records");
}
