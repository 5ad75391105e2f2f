#![allow(dead_code)] // Shared by the wordcount example, the chaos driver and the tests.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! The word count job graph, shared so that tests and the chaos driver run exactly what the
//! example runs: one `word<TAB>running_count` line per word occurrence.

use snapflow::operators::text::words;
use snapflow::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Builds word count over the lines of `input`. Counts go to files under `output`, or are
/// discarded when it is `None`; `distinct` counts the words seen for the first time.
pub fn build(input: &Path, output: Option<&Path>, distinct: Arc<AtomicU64>) -> Job {
    build_timed(input, output, distinct, Arc::default())
}

/// [`build`], recording in `first_count` when the counting operator processed its first word
/// (the end of a recovery, for the report).
pub fn build_timed(
    input: &Path,
    output: Option<&Path>,
    distinct: Arc<AtomicU64>,
    first_count: Arc<OnceLock<Instant>>,
) -> Job {
    let job = Job::new("wordcount");
    let counts = job
        .source(TextFileSource::new(input))
        .name("read")
        .uid("read")
        // Words are small inline strings: no heap allocation per word (up to 24 bytes).
        .flat_map_with(|line: String, out: &mut Output<CompactString>| {
            for word in words(&line) {
                out.push(CompactString::from(word));
            }
        })
        .name("tokenize")
        .uid("tokenize")
        .key_by(|word: &CompactString| word.clone())
        .process(
            move |_,
                  word: CompactString,
                  count: &mut ValueState<u64>,
                  out: &mut Output<(CompactString, u64)>| {
                if first_count.get().is_none() {
                    let _ = first_count.set(Instant::now());
                }
                let n = count.get().copied().unwrap_or(0) + 1;
                count.set(n);
                if n == 1 {
                    distinct.fetch_add(1, Ordering::Relaxed);
                }
                out.push((word, n));
                Ok(())
            },
        )
        .name("count")
        .uid("count");
    match output {
        Some(dir) => {
            counts
                .sink(FileSink::with_format(
                    dir,
                    |(word, n): &(CompactString, u64), buf: &mut Vec<u8>| {
                        buf.extend_from_slice(word.as_bytes());
                        buf.push(b'\t');
                        buf.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
                    },
                ))
                .name("write")
                .uid("write");
        }
        None => {
            counts.sink(DiscardSink::new()).name("write").uid("write");
        }
    }
    job
}

/// The sequential result, as sorted output lines: the n-th occurrence of a word (a token of
/// `split_whitespace`) yields `word<TAB>n`.
pub fn expected_output(text: &str) -> Vec<String> {
    let mut counts: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    let mut lines: Vec<String> = text
        .split_whitespace()
        .map(|word| {
            let n = counts.entry(word).or_insert(0);
            *n += 1;
            format!("{word}\t{n}")
        })
        .collect();
    lines.sort();
    lines
}
