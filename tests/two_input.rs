//! Operators with two inputs: keyed `connect`, the engine's `binary`, and `union`.

mod common;

use common::{bounded, multiset};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use snapflow::engine::{BinaryOperator, OperatorLifecycle};
use snapflow::prelude::*;
use std::collections::HashMap;

/// The per-account state of the connected job: sum of the limits (stream A), number of
/// payments (stream B), and records seen.
type AccountState = (u64, u64, u64);

#[test]
fn keyed_connect_shares_one_state_per_key_across_both_inputs() {
    let mut rng = StdRng::seed_from_u64(7);
    let limits: Vec<(u32, u64)> = (0..600)
        .map(|_| (rng.gen_range(0..40u32), rng.gen_range(1..1000u64)))
        .collect();
    let payments: Vec<(u32, u64)> = (0..900)
        .map(|_| (rng.gen_range(0..50u32), rng.gen_range(1..500u64)))
        .collect();

    // Sequentially: per account, the sum of limits, the number of payments, records in all.
    let mut expected: HashMap<u32, AccountState> = HashMap::new();
    for &(account, limit) in &limits {
        let e = expected.entry(account).or_default();
        e.0 += limit;
        e.2 += 1;
    }
    for &(account, _) in &payments {
        let e = expected.entry(account).or_default();
        e.1 += 1;
        e.2 += 1;
    }

    for parallelism in [1, 2, 4] {
        let (a, b) = (limits.clone(), payments.clone());
        let got = bounded("connected job", move || {
            let job = Job::new("accounts");
            let sink = CollectSink::new();
            let results = sink.results();
            let limits = job
                .source(CollectionSource::new(a))
                .key_by(|&(account, _): &(u32, u64)| account);
            let payments = job
                .source(CollectionSource::new(b))
                .key_by(|&(account, _): &(u32, u64)| account);
            limits
                .connect(payments)
                .process(
                    |account: &u32,
                     record: Either<(u32, u64), (u32, u64)>,
                     state: &mut ValueState<AccountState>,
                     out: &mut Output<(u32, AccountState)>| {
                        let mut s = state.get().copied().unwrap_or_default();
                        match record {
                            Either::Left((_, limit)) => s.0 += limit,
                            Either::Right(_) => s.1 += 1,
                        }
                        s.2 += 1;
                        state.set(s);
                        out.push((*account, s));
                        Ok(())
                    },
                )
                .sink(sink);
            job.run(
                &JobConfig::default()
                    .with_parallelism(parallelism)
                    .with_batch_size(8),
            )
            .unwrap();
            results.take()
        });

        // Every record of a key updates the one state of that key: the key's outputs count
        // 1, 2, ..., n exactly once, and the one with count n holds the final totals.
        let mut outputs: HashMap<u32, Vec<AccountState>> = HashMap::new();
        for (account, s) in got {
            outputs.entry(account).or_default().push(s);
        }
        assert_eq!(
            outputs.len(),
            expected.len(),
            "parallelism {parallelism}: accounts"
        );
        for (account, want) in &expected {
            let mut states = outputs.remove(account).unwrap_or_default();
            states.sort_by_key(|s| s.2);
            let seen: Vec<u64> = states.iter().map(|s| s.2).collect();
            assert_eq!(
                seen,
                (1..=want.2).collect::<Vec<_>>(),
                "parallelism {parallelism}: account {account}"
            );
            assert_eq!(
                states.last(),
                Some(want),
                "parallelism {parallelism}: account {account}"
            );
        }
    }
}

/// Merges numbers and words into one stream of text, and reports per task on close how many
/// of each it saw.
#[derive(Default)]
struct Merge {
    numbers: u64,
    words: u64,
}

impl BinaryOperator<u64, String, String> for Merge {
    fn process_first(&mut self, batch: Vec<u64>, out: &mut Output<String>) -> Result<(), BoxError> {
        for n in batch {
            self.numbers += 1;
            out.push(format!("n:{n}"));
        }
        Ok(())
    }

    fn process_second(
        &mut self,
        batch: Vec<String>,
        out: &mut Output<String>,
    ) -> Result<(), BoxError> {
        for w in batch {
            self.words += 1;
            out.push(format!("w:{w}"));
        }
        Ok(())
    }
}

impl OperatorLifecycle<String> for Merge {
    fn close(&mut self, out: &mut Output<String>) -> Result<(), BoxError> {
        out.push(format!("closed:{}:{}", self.numbers, self.words));
        Ok(())
    }
}

#[test]
fn binary_operator_merges_two_record_types() {
    const NUMBERS: u64 = 700;
    const WORDS: u64 = 450;
    let word = |i: u64| format!("word{}", i % 97);

    for (sources, merge) in [(1, 1), (2, 3), (3, 2)] {
        let got = bounded("binary job", move || {
            let job = Job::new("merge");
            let sink = CollectSink::new();
            let results = sink.results();
            let numbers = job
                .source(GeneratorSource::new(NUMBERS, |i| i * 7))
                .parallelism(sources);
            let words = job.source(GeneratorSource::new(WORDS, word)).parallelism(1);
            numbers
                .binary(words, "merge", |_| Merge::default())
                .parallelism(merge)
                .sink(sink);
            job.run(&JobConfig::default().with_parallelism(2).with_batch_size(16))
                .unwrap();
            results.take()
        });

        let (closed, merged): (Vec<String>, Vec<String>) =
            got.into_iter().partition(|s| s.starts_with("closed:"));
        let expected = (0..NUMBERS)
            .map(|i| format!("n:{}", i * 7))
            .chain((0..WORDS).map(|i| format!("w:{}", word(i))));
        assert_eq!(
            multiset(merged),
            multiset(expected),
            "sources {sources}, merge {merge}"
        );
        assert_eq!(closed.len(), merge, "one close per merge task");
        let (mut numbers, mut words) = (0, 0);
        for c in &closed {
            let mut parts = c.split(':').skip(1).map(|p| p.parse::<u64>().unwrap());
            numbers += parts.next().unwrap();
            words += parts.next().unwrap();
        }
        assert_eq!((numbers, words), (NUMBERS, WORDS));
    }
}

#[test]
fn union_output_is_the_concatenation_of_its_inputs() {
    let mut rng = StdRng::seed_from_u64(99);
    let left: Vec<i64> = (0..1500).map(|_| rng.gen_range(-50..50)).collect();
    let right: Vec<i64> = (0..800).map(|_| rng.gen_range(0..100)).collect();
    let expected = multiset(left.iter().chain(&right).copied());

    for (p_left, p_right, p_union) in [(1, 1, 1), (2, 3, 2), (3, 1, 4)] {
        let (l, r) = (left.clone(), right.clone());
        let got = bounded("union job", move || {
            let job = Job::new("union");
            let sink = CollectSink::new();
            let results = sink.results();
            let a = job.source(CollectionSource::new(l)).parallelism(p_left);
            let b = job.source(CollectionSource::new(r)).parallelism(p_right);
            a.union(b).parallelism(p_union).sink(sink);
            job.run(&JobConfig::default().with_parallelism(2).with_batch_size(32))
                .unwrap();
            results.take()
        });
        assert_eq!(
            multiset(got),
            expected,
            "parallelism {p_left} + {p_right} -> {p_union}"
        );
    }
}

#[test]
fn union_of_a_stream_with_itself_doubles_it() {
    const N: u64 = 1000;
    let got = bounded("self-union job", || {
        let job = Job::new("self-union");
        let sink = CollectSink::new();
        let results = sink.results();
        let numbers = job.source(GeneratorSource::new(N, |i| i % 300));
        numbers.clone().union(numbers).parallelism(3).sink(sink);
        job.run(&JobConfig::default().with_parallelism(2).with_batch_size(16))
            .unwrap();
        results.take()
    });
    let once = (0..N).map(|i| i % 300);
    assert_eq!(multiset(got), multiset(once.clone().chain(once)));
}
