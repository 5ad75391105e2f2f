//! The file sink's reader contract under a concurrent reader: at every moment the committed
//! output is the output of a prefix of whole checkpoints (each key's running counts are exactly
//! 1..n, and together they are the output of the input up to the newest published
//! checkpoint's source offsets), and published files never change.
//!
//! The source is held at the middle of each task's input until a checkpoint covering exactly
//! that point has completed, so the reader is sure to see the output of some but not all of
//! the input, whatever the machine's speed.

mod common;

use common::{
    assert_same_map, bounded, complete_runs, gated, index_offset, next_event, parse_count_lines,
    published_files, read_published_counts, share,
};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use snapflow::checkpoint::{CheckpointId, CheckpointLayout, CheckpointStore};
use snapflow::engine::CheckpointEvent;
use snapflow::prelude::*;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const RECORDS: u64 = 1_000_000;
const PARALLELISM: usize = 2;
const WORDS: u64 = 5000;
/// Pads every line, so that the sink writes a chunk of a checkpoint's output to its staging
/// file every few thousand records: output of checkpoints in progress is on disk, unpublished,
/// nearly all the time.
const PAD: &str = "................................................";

/// A skewed word: a third of the records fall on seven hot words.
fn word_of(i: u64) -> u64 {
    if i.is_multiple_of(3) {
        i % 7
    } else {
        i.wrapping_mul(2_654_435_761) % WORDS
    }
}

/// Where each source task waits: the middle of its share.
fn gate_of(task: usize) -> u64 {
    let range = share(RECORDS, task, PARALLELISM);
    range.start + (range.end - range.start) / 2
}

/// The key a word is written under.
fn word_key(word: u64) -> String {
    format!("w{word}{PAD}")
}

/// Expected count per word (indexed by word) after the given prefix of each task's share.
fn counts_by_word(ends: impl Fn(usize) -> u64) -> Vec<u64> {
    let mut counts = vec![0u64; WORDS as usize];
    for task in 0..PARALLELISM {
        for i in share(RECORDS, task, PARALLELISM).start..ends(task) {
            counts[word_of(i) as usize] += 1;
        }
    }
    counts
}

/// Expected `word key -> n` after the given prefix of each task's share.
fn counts_over(ends: impl Fn(usize) -> u64) -> HashMap<String, u64> {
    counts_by_word(ends)
        .into_iter()
        .enumerate()
        .filter(|&(_, n)| n > 0)
        .map(|(word, n)| (word_key(word as u64), n))
        .collect()
}

/// A published file as first read.
struct FileSummary {
    len: u64,
    modified: SystemTime,
    /// A hash of its bytes, checked again at the end.
    hash: u64,
    /// Per word, the first and last count in the file; the counts in between are checked to
    /// be contiguous (one sink task writes each word's updates in order).
    ranges: HashMap<usize, (u64, u64)>,
}

/// What the reader thread saw.
struct ReaderLog {
    passes: usize,
    /// Passes that saw some, but not all, of the output.
    partial: usize,
    files: HashMap<PathBuf, FileSummary>,
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Reads and summarizes one published file.
fn summarize(file: &Path) -> Result<FileSummary, String> {
    let meta = std::fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let bytes = std::fs::read(file).map_err(|e| format!("read {}: {e}", file.display()))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut ranges: HashMap<usize, (u64, u64)> = HashMap::new();
    for (key, n) in parse_count_lines(text) {
        let word: usize = key
            .strip_prefix('w')
            .and_then(|k| k.strip_suffix(PAD))
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| format!("{}: unexpected key {key:?}", file.display()))?;
        match ranges.get_mut(&word) {
            None => {
                ranges.insert(word, (n, n));
            }
            Some((_, last)) if n == *last + 1 => *last = n,
            Some((_, last)) => {
                return Err(format!(
                    "{}: word {word} has count {n} after {last}",
                    file.display()
                ))
            }
        }
    }
    Ok(FileSummary {
        len: bytes.len() as u64,
        modified: meta.modified().map_err(|e| e.to_string())?,
        hash: hash_bytes(&bytes),
        ranges,
    })
}

/// Reads the committed output over and over until told to stop (then once more), checking on
/// every pass that
/// - each word's counts are exactly 1..n, no gap, no duplicate;
/// - the output is exactly that of the input up to the source offsets recorded by the newest
///   checkpoint whose directory is published (the sink publishes `chk-<id>` directories);
/// - no file seen before changed (length, modification time) or disappeared, and no file
///   appeared in a directory published before.
///
/// A file is read once, when it first appears, so that passes stay cheap and many of them see
/// the output change. Reports each pass's number of lines.
fn reader(
    out: &Path,
    checkpoints: &Path,
    stop: Receiver<()>,
    passes: Sender<u64>,
) -> Result<ReaderLog, String> {
    let store = CheckpointStore::open(checkpoints).map_err(|e| e.to_string())?;
    let mut expected: HashMap<CheckpointId, Vec<u64>> = HashMap::new();
    let mut dirs: HashMap<PathBuf, Vec<PathBuf>> = HashMap::new();
    let mut log = ReaderLog {
        passes: 0,
        partial: 0,
        files: HashMap::new(),
    };
    let mut previous_lines = 0;
    loop {
        let last = !matches!(stop.try_recv(), Err(TryRecvError::Empty));
        let pass = log.passes;
        let files = published_files(out);
        let mut in_dirs: HashMap<PathBuf, Vec<PathBuf>> = HashMap::new();
        for file in &files {
            let dir = file.parent().expect("a file has a directory").to_path_buf();
            in_dirs.entry(dir).or_default().push(file.clone());
            match log.files.get(file) {
                None => {
                    let summary = summarize(file).map_err(|e| format!("pass {pass}: {e}"))?;
                    log.files.insert(file.clone(), summary);
                }
                Some(before) => {
                    let meta = std::fs::metadata(file)
                        .map_err(|e| format!("pass {pass}: {}: {e}", file.display()))?;
                    if (meta.len(), meta.modified().ok()) != (before.len, Some(before.modified)) {
                        return Err(format!(
                            "pass {pass}: {} changed after it was published",
                            file.display()
                        ));
                    }
                }
            }
        }
        if let Some(gone) = log.files.keys().find(|f| !files.contains(f)) {
            return Err(format!("pass {pass}: {} disappeared", gone.display()));
        }
        for (dir, now) in in_dirs {
            let before = dirs.entry(dir.clone()).or_insert_with(|| now.clone());
            if *before != now {
                return Err(format!(
                    "pass {pass}: published directory {} changed: {before:?}, then {now:?}",
                    dir.display()
                ));
            }
        }

        // Each word's ranges, over all files, must tile 1..n.
        let mut ranges: Vec<Vec<(u64, u64)>> = vec![Vec::new(); WORDS as usize];
        for file in &files {
            for (&word, &range) in &log.files[file].ranges {
                ranges[word].push(range);
            }
        }
        let mut got = vec![0u64; WORDS as usize];
        for (word, ranges) in ranges.iter_mut().enumerate() {
            ranges.sort_unstable();
            for &(first, last) in ranges.iter() {
                if first != got[word] + 1 {
                    return Err(format!(
                        "pass {pass}: word {word} has counts {ranges:?}, not 1..n"
                    ));
                }
                got[word] = last;
            }
        }

        let newest = files
            .iter()
            .filter_map(|f| f.parent()?.file_name()?.to_str())
            .map(|name| {
                CheckpointLayout::parse_checkpoint_dir_name(name)
                    .ok_or_else(|| format!("published directory {name} is not chk-<id>"))
            })
            .collect::<Result<Vec<CheckpointId>, String>>()?
            .into_iter()
            .max();
        if let Some(id) = newest {
            let want = match expected.get(&id) {
                Some(want) => want,
                None => {
                    let manifest = store
                        .load_manifest(id)
                        .map_err(|e| format!("pass {pass}: published checkpoint {id}: {e}"))?;
                    let want = counts_by_word(|t| index_offset(&manifest, "numbers", t as u32));
                    expected.entry(id).or_insert(want)
                }
            };
            if let Some(word) = (0..got.len()).find(|&w| got[w] != want[w]) {
                return Err(format!(
                    "pass {pass}: with checkpoint {id} the newest published, word {word} has {} \
                     lines, but {} records precede that checkpoint's offsets",
                    got[word], want[word]
                ));
            }
        }
        let lines: u64 = got.iter().sum();
        if lines < previous_lines {
            return Err(format!("pass {pass}: {lines} lines after {previous_lines}"));
        }
        previous_lines = lines;
        if lines > 0 && lines < RECORDS {
            log.partial += 1;
        }
        log.passes += 1;
        let _ = passes.send(lines);
        if last {
            return Ok(log);
        }
    }
}

#[test]
fn a_concurrent_reader_only_ever_sees_whole_checkpoints() {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoints = dir.path().join("checkpoints");
    let out = dir.path().join("out");
    let (events_tx, events) = crossbeam_channel::unbounded();
    let config = JobConfig::default()
        .with_parallelism(PARALLELISM)
        .with_checkpointing(&checkpoints, Duration::from_millis(10))
        .with_retained_checkpoints(1000)
        .with_checkpoint_listener(events_tx);

    let (source, mut gate) = gated(GeneratorSource::new(RECORDS, |i| i), |task| {
        gate_of(task.index)
    });
    let handle = {
        let job = Job::new("visibility");
        job.source(source)
            .uid("numbers")
            .key_by(|i: &u64| word_of(*i))
            .process(
                |word: &u64, _i: u64, count: &mut ValueState<u64>, out: &mut Output<(u64, u64)>| {
                    let n = count.get().copied().unwrap_or(0) + 1;
                    count.set(n);
                    out.push((*word, n));
                    Ok(())
                },
            )
            .uid("count")
            .sink(FileSink::with_format(
                &out,
                |(word, n): &(u64, u64), buf: &mut Vec<u8>| {
                    let _ = write!(buf, "w{word}{PAD}\t{n}");
                },
            ));
        job.launch(&config).expect("launch the job")
    };
    // Only the job holds the listener now: if it fails, waiting for events ends at once.
    drop(config);

    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let (passes_tx, passes) = crossbeam_channel::unbounded();
    let reader = {
        let out = out.clone();
        let checkpoints = checkpoints.clone();
        std::thread::spawn(move || reader(&out, &checkpoints, stop_rx, passes_tx))
    };

    // Both tasks stop at the gate; wait for a checkpoint that covers exactly that point.
    assert_eq!(gate.wait_reached(PARALLELISM), vec![0, 1]);
    let store = CheckpointStore::open(&checkpoints).expect("open the store");
    loop {
        match next_event(&events) {
            CheckpointEvent::Completed(stats) => {
                let manifest = store.load_manifest(stats.id).expect("manifest");
                if (0..PARALLELISM)
                    .all(|t| index_offset(&manifest, "numbers", t as u32) == gate_of(t))
                {
                    break;
                }
            }
            CheckpointEvent::Aborted { id, reason } => {
                panic!("checkpoint {id} was aborted: {reason}")
            }
        }
    }
    // Nothing moves now: the committed output is exactly that of the first halves.
    let half = counts_over(gate_of);
    let half_lines: u64 = half.values().sum();
    let published = complete_runs(&read_published_counts(&out)).expect("whole checkpoints");
    assert_same_map("output published at the gate", &published, &half);
    // The reader sees that state too.
    loop {
        let lines = match passes.recv_timeout(common::TIMEOUT) {
            Ok(lines) => lines,
            Err(RecvTimeoutError::Disconnected) => match reader.join() {
                Ok(Err(violation)) => panic!("the reader saw a violation: {violation}"),
                Ok(Ok(_)) => panic!("the reader stopped before it was told to"),
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(RecvTimeoutError::Timeout) => panic!("the reader stopped reading"),
        };
        if lines == half_lines {
            break;
        }
    }

    gate.open();
    let report = bounded("join the job", move || handle.join()).expect("the job finishes");
    let _ = stop_tx.send(());
    let log = bounded("join the reader", move || reader.join())
        .expect("the reader does not panic")
        .unwrap_or_else(|e| panic!("the reader saw a violation: {e}"));
    assert!(log.partial >= 1);
    assert!(report.checkpoints.len() >= 2);

    // In the end, everything is published exactly once.
    let lines = read_published_counts(&out);
    assert_eq!(lines.len() as u64, RECORDS, "one line per record");
    let all = complete_runs(&lines).expect("whole checkpoints");
    assert_same_map(
        "all output",
        &all,
        &counts_over(|t| share(RECORDS, t, PARALLELISM).end),
    );
    // And what the reader saw published was never changed afterwards.
    for (file, summary) in &log.files {
        let bytes = std::fs::read(file).expect("a published file stays");
        assert_eq!(
            (bytes.len() as u64, hash_bytes(&bytes)),
            (summary.len, summary.hash),
            "{} changed",
            file.display()
        );
    }
    assert_eq!(
        published_files(&out).len(),
        log.files.len(),
        "the reader's last pass saw every file"
    );
    eprintln!(
        "{} reader passes, {} partial, {} files, {} checkpoints",
        log.passes,
        log.partial,
        log.files.len(),
        report.checkpoints.len()
    );
}
