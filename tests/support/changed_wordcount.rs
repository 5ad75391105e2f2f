#![allow(dead_code)] // Each test uses only some of these.
//! Word count changed between runs, for the tests of state matched by uid (a checkpoint or a
//! savepoint of the plain word count restored into these): one operator more, or one less.

use snapflow::operators::text::words;
use snapflow::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// Word count's tokenizer (uid `tokenize`): one record per word of each line.
fn tokenize(lines: Stream<String>) -> Stream<String> {
    lines
        .flat_map_with(|line: String, out: &mut Output<String>| {
            for word in words(&line) {
                out.push(word.to_owned());
            }
        })
        .name("tokenize")
        .uid("tokenize")
}

/// Word count whose counts changed type (`ValueState<String>` instead of `ValueState<u64>`),
/// behind a filter that drops every line: the count operator never sees a record.
pub(crate) fn with_counts_as_text(
    input: &Path,
    out: &Path,
    config: &JobConfig,
) -> Result<JobReport, JobError> {
    let job = Job::new("wordcount");
    let lines = job
        .source(TextFileSource::new(input))
        .name("read")
        .uid("read")
        .filter(|_: &String| false)
        .name("drop")
        .uid("drop");
    tokenize(lines)
        .key_by(|word: &String| word.clone())
        .process(
            |_, word: String, count: &mut ValueState<String>, out: &mut Output<String>| {
                count.set(word.clone());
                out.push(word);
                Ok(())
            },
        )
        .name("count")
        .uid("count")
        .sink(FileSink::new(out))
        .name("write")
        .uid("write");
    job.run(config)
}

/// Word count with a filter that keeps every line inserted between read and tokenize.
pub(crate) fn with_a_new_filter(
    input: &Path,
    out: &Path,
    config: &JobConfig,
) -> Result<JobReport, JobError> {
    let job = Job::new("wordcount");
    let lines = job
        .source(TextFileSource::new(input))
        .name("read")
        .uid("read")
        .filter(|_: &String| true)
        .name("keep")
        .uid("keep");
    tokenize(lines)
        .key_by(|word: &String| word.clone())
        .process(
            |_, word: String, count: &mut ValueState<u64>, out: &mut Output<String>| {
                let n = count.get().copied().unwrap_or(0) + 1;
                count.set(n);
                out.push(format!("{word}\t{n}"));
                Ok(())
            },
        )
        .name("count")
        .uid("count")
        .sink(FileSink::new(out))
        .name("write")
        .uid("write");
    job.run(config)
}

/// Word count without its counts: every word goes out as `word<TAB>0` ("not counted").
pub(crate) fn without_count(
    input: &Path,
    out: &Path,
    config: &JobConfig,
) -> Result<JobReport, JobError> {
    let job = Job::new("wordcount");
    let lines = job
        .source(TextFileSource::new(input))
        .name("read")
        .uid("read");
    tokenize(lines)
        .map(|word: String| format!("{word}\t0"))
        .name("uncounted")
        .uid("uncounted")
        .sink(FileSink::new(out))
        .name("write")
        .uid("write");
    job.run(config)
}

/// Checks the output of word count resumed into [`without_count`]: every word occurrence of
/// `original` exactly once, counted (`word<TAB>n`, n >= 1) by the first run up to the
/// checkpoint it resumed from, then uncounted (`word<TAB>0`); the counted ones of a word are
/// 1..=k, as the sequential count has them.
pub(crate) fn assert_counted_then_uncounted(committed: &[String], original: &str) {
    let mut counted: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for line in committed {
        let (word, n) = line.split_once('\t').expect("word<TAB>n");
        *seen.entry(word).or_insert(0) += 1;
        let n: u64 = n.parse().unwrap();
        if n > 0 {
            counted.entry(word).or_default().push(n);
        }
    }
    let mut expected: HashMap<&str, u64> = HashMap::new();
    for word in original.split_whitespace() {
        *expected.entry(word).or_insert(0) += 1;
    }
    assert!(seen == expected, "every word occurrence exactly once");
    assert!(
        counted.values().any(|c| !c.is_empty()),
        "the first run counted some words"
    );
    assert!(
        committed.iter().any(|l| l.ends_with("\t0")),
        "the second run wrote uncounted words"
    );
    for (word, mut ns) in counted {
        ns.sort_unstable();
        let k = ns.len() as u64;
        assert!(
            ns == (1..=k).collect::<Vec<_>>(),
            "counts of {word}: {ns:?}"
        );
    }
}
