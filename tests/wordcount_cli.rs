//! The wordcount example end to end: its output over a seeded random corpus, at parallelism
//! 1, 2 and 4, equals a sequential count; bad input gives a one-line error and a non-zero exit.

#[path = "support/example_bin.rs"]
mod example_bin;

use example_bin::example_bin;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run_wordcount(args: &[&str]) -> Output {
    Command::new(example_bin("wordcount"))
        .args(args)
        .output()
        .expect("start wordcount")
}

/// A corpus with the cases that break line splitting: empty lines, `\r\n`, tabs and runs of
/// spaces, Unicode words and Unicode whitespace, a line longer than the reader's buffer, and no
/// final newline.
fn random_corpus(seed: u64) -> String {
    const WORDS: &[&str] = &[
        "the",
        "a",
        "of",
        "snapflow",
        "naïve",
        "日本語",
        "🦀",
        "ünïcödé",
        "Straße",
        "x",
        "ÆØÅ",
        "flink",
        "barrier",
        "κόσμε",
        "e\u{301}",
    ];
    const SEPARATORS: &[&str] = &[" ", "  ", "\t", " \t ", "\u{3000}", "\u{a0}"];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut text = String::new();
    let word = |rng: &mut StdRng| -> String {
        if rng.gen_bool(0.2) {
            format!("w{}", rng.gen_range(0..500))
        } else {
            WORDS[rng.gen_range(0..WORDS.len())].to_owned()
        }
    };
    for i in 0..20_000 {
        if i == 10_000 {
            // Longer than the source's 1 MiB read buffer.
            for _ in 0..250_000 {
                text.push_str(&word(&mut rng));
                text.push(' ');
            }
        }
        match rng.gen_range(0..10) {
            0 => {}
            1 => text.push_str("   "),
            _ => {
                for _ in 0..rng.gen_range(1..12) {
                    text.push_str(&word(&mut rng));
                    text.push_str(SEPARATORS[rng.gen_range(0..SEPARATORS.len())]);
                }
            }
        }
        text.push_str(if rng.gen_bool(0.1) { "\r\n" } else { "\n" });
    }
    text.push_str("final line without newline");
    text
}

/// The committed output, by the sink's reader contract: every regular file under `dir` whose
/// relative path has no component starting with `.` or `_`.
fn committed_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("output directory") {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files.extend(committed_files(&entry.path()));
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    files
}

/// Every `word<TAB>count` line the job committed.
fn read_output(dir: &Path) -> Vec<(String, u64)> {
    let mut lines = Vec::new();
    for file in committed_files(dir) {
        let text = std::fs::read_to_string(file).expect("UTF-8 output");
        for line in text.lines() {
            let (word, count) = line.rsplit_once('\t').expect("word<TAB>count");
            lines.push((word.to_owned(), count.parse().expect("count")));
        }
    }
    lines
}

/// The sequential result: the n-th occurrence of a word yields (word, n).
fn sequential(text: &str) -> Vec<(String, u64)> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        let n = counts.entry(word).or_insert(0);
        *n += 1;
        out.push((word.to_owned(), *n));
    }
    out
}

#[test]
fn output_equals_sequential_count_at_parallelism_1_2_4() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("corpus.txt");
    let text = random_corpus(7);
    std::fs::write(&input, &text).unwrap();
    let mut expected = sequential(&text);
    expected.sort();
    assert!(expected.len() > 300_000, "the corpus exercises the job");

    for parallelism in ["1", "2", "4"] {
        let output = dir.path().join(format!("out-{parallelism}"));
        let result = run_wordcount(&[
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--parallelism",
            parallelism,
            // Small batches so that every channel carries many of them.
            "--batch-size",
            "64",
        ]);
        assert!(
            result.status.success(),
            "wordcount failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        let mut got = read_output(&output);
        got.sort();
        assert_eq!(got.len(), expected.len(), "parallelism {parallelism}");
        assert!(
            got == expected,
            "parallelism {parallelism}: output differs from the sequential count"
        );
    }
}

fn assert_one_line_error(result: &Output, mentions: &[&str]) {
    assert!(!result.status.success(), "bad input must fail");
    let stderr = String::from_utf8_lossy(&result.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line expected, got: {stderr}");
    for m in mentions {
        assert!(
            errors[0].contains(m),
            "error line should mention {m:?}: {}",
            errors[0]
        );
    }
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
}

#[test]
fn invalid_utf8_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("latin1.txt");
    let mut bytes = b"fine line\nanother fine line\n".repeat(1000);
    bytes.extend_from_slice(b"caf\xe9 au lait\nmore\n");
    std::fs::write(&input, bytes).unwrap();
    let out = dir.path().join("out");
    for parallelism in ["1", "3"] {
        let result = run_wordcount(&[
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--parallelism",
            parallelism,
        ]);
        assert_one_line_error(&result, &["latin1.txt:2001:", "invalid UTF-8"]);
    }
}

#[test]
fn missing_input_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-file.txt");
    let result = run_wordcount(&["--input", missing.to_str().unwrap(), "--sink", "discard"]);
    assert_one_line_error(&result, &["no-such-file.txt"]);
}

/// Sizes, counts and intervals out of range are refused while parsing the command line, with
/// the option and its bounds, before anything is allocated (1e12 records per batch used to
/// abort on an allocation failure with a backtrace).
#[test]
fn options_out_of_range_name_the_option_and_its_bounds() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--batch-size", "1000000000000"],
            &["--batch-size", "1..=1048576"],
        ),
        (&["--batch-size", "0"], &["--batch-size", "1..=1048576"]),
        (
            &["--channel-capacity", "0"],
            &["--channel-capacity", "1..=65536"],
        ),
        (
            &["--channel-capacity", "100000000"],
            &["--channel-capacity", "1..=65536"],
        ),
        (&["--parallelism", "0"], &["--parallelism", "1..=128"]),
        (&["--parallelism", "100000"], &["--parallelism", "1..=128"]),
        (
            &["--checkpoint-interval-ms", "0"],
            &["--checkpoint-interval-ms", "1..=86400000"],
        ),
        (&["--max-rate", "0"], &["--max-rate", "1..=1000000000"]),
        (&["--lines", "0"], &["--lines", "1..=1000000000"]),
        (
            &["--vocabulary", "1000000000000"],
            &["--vocabulary", "1..=10000000"],
        ),
    ];
    for (args, mentions) in cases {
        let result = Command::new(example_bin("wordcount"))
            .args(*args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("start wordcount");
        assert_one_line_error(&result, mentions);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!stderr.contains("backtrace"), "{args:?}: {stderr}");
        assert!(!stderr.contains("generating"), "{args:?}: nothing may run");
    }
}

/// An output directory that cannot be created fails the job with one error line that gives the
/// OS error once (not repeated by every level of the chain) and names the directory.
#[test]
fn an_output_that_cannot_be_created_prints_the_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    std::fs::write(&input, "one two three\n").unwrap();
    // A regular file where the output's parent directory should be: ENOTDIR.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let out = blocker.join("out");
    let result = run_wordcount(&[
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--checkpoint-dir",
        dir.path().join("checkpoints").to_str().unwrap(),
    ]);
    assert_one_line_error(&result, &[out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    let os_error = std::io::Error::from_raw_os_error(20).to_string();
    assert_eq!(
        stderr.matches(&os_error).count(),
        1,
        "the OS error {os_error:?} must be printed exactly once: {stderr}"
    );
}
