//! Helpers shared by the integration tests: bounded waits and multisets.

// Each test binary uses only some of these.
#![allow(dead_code)]
// Only ever in test binaries, where `pub` is crate-wide.
#![allow(unreachable_pub)]

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// The longest any test waits for a job; a job that takes longer is taken to hang.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `f` on its own thread and returns its result, failing the test if it does not finish
/// within [`TIMEOUT`]. A panic in `f` is passed on to the caller.
pub fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(value) => value,
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not finish within {TIMEOUT:?}"),
    }
}

/// How often each item occurs.
pub fn multiset<T: Hash + Eq>(items: impl IntoIterator<Item = T>) -> HashMap<T, usize> {
    let mut counts = HashMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// Checkpoint tests (tests/checkpoint_*.rs): reading checkpoints back, generator shares, a gated
// source wrapper, and the file sink's committed output.
// ---------------------------------------------------------------------------------------------

use crossbeam_channel::{Receiver, Sender};
use serde::de::DeserializeOwned;
use snapflow::checkpoint::{
    decode_keyed_changes, CheckpointState, CheckpointStore, KeyGroupRange, KeyedChanges, Manifest,
    DEFAULT_MAX_PARALLELISM,
};
use snapflow::engine::{
    BoxError, CheckpointEvent, ReadStatus, Source, SourcePosition, SourceReader, TaskInfo,
};
use std::fmt::Debug;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Task `task`'s share of a `GeneratorSource` (or `CollectionSource`) of `n` items at
/// `parallelism`: the contiguous range `[n*task/p, n*(task+1)/p)`.
pub fn share(n: u64, task: usize, parallelism: usize) -> Range<u64> {
    let bound = |i: usize| (u128::from(n) * i as u128 / parallelism as u128) as u64;
    bound(task)..bound(task + 1)
}

/// Decodes the position of an index-based source: the next item index, u64 little-endian.
pub fn decode_index(offset: &[u8]) -> u64 {
    u64::from_le_bytes(
        offset
            .try_into()
            .unwrap_or_else(|_| panic!("an index position is 8 bytes, got {offset:?}")),
    )
}

/// The recorded position (next item index) of task `task` of source `uid` in `manifest`.
pub fn index_offset(manifest: &Manifest, uid: &str, task: u32) -> u64 {
    let offset = manifest.source_offset(uid, task).unwrap_or_else(|| {
        panic!(
            "checkpoint {} has no offset for source '{uid}' task {task}: {:?}",
            manifest.checkpoint, manifest.source_offsets
        )
    });
    decode_index(&offset.offset)
}

/// Every complete checkpoint in `store`, oldest first, with its manifest. Fails the test on a
/// corrupt checkpoint; in-progress directories are skipped.
pub fn complete_checkpoints(store: &CheckpointStore) -> Vec<Manifest> {
    let mut manifests = Vec::new();
    for status in store.scan().expect("scan the checkpoint store") {
        match status.state {
            CheckpointState::Complete => manifests.push(
                store
                    .load_manifest(status.id)
                    .expect("manifest of a complete checkpoint"),
            ),
            CheckpointState::InProgress => {}
            CheckpointState::Corrupt { reason } => {
                panic!("checkpoint {} is corrupt: {reason}", status.id)
            }
        }
    }
    manifests
}

/// The keyed state of operator `uid` in `manifest`'s checkpoint, over all key groups, merged
/// from every task's snapshot file. Fails the test if a key appears in two files.
pub fn keyed_state<K, S>(store: &CheckpointStore, manifest: &Manifest, uid: &str) -> HashMap<K, S>
where
    K: DeserializeOwned + Eq + Hash + Debug,
    S: DeserializeOwned,
{
    let everything = KeyGroupRange::for_task(0, 1, DEFAULT_MAX_PARALLELISM);
    let mut state = HashMap::new();
    let mut files = 0;
    for entry in manifest.snapshots_of(uid) {
        files += 1;
        // An incremental snapshot: its chain's files, oldest (full) first, then its own.
        let mut chain = Vec::new();
        for link in &entry.base {
            chain.push(store.open_link(entry, link).unwrap_or_else(|e| {
                panic!("file {} of checkpoint {}: {e}", link.file, link.checkpoint)
            }));
        }
        chain.push(store.open_snapshot(manifest, entry).unwrap_or_else(|e| {
            panic!(
                "snapshot {} of checkpoint {}: {e}",
                entry.file, manifest.checkpoint
            )
        }));
        let mut own: HashMap<K, S> = HashMap::new();
        for snapshot in &chain {
            let changes: KeyedChanges<K, S> =
                decode_keyed_changes(snapshot.payload(), &everything, DEFAULT_MAX_PARALLELISM)
                    .unwrap_or_else(|e| panic!("decode {}: {e}", entry.file));
            for (key, value) in changes.entries {
                match value {
                    Some(value) => own.insert(key, value),
                    None => own.remove(&key),
                };
            }
        }
        for (key, value) in own {
            assert!(
                !state.contains_key(&key),
                "key {key:?} is in two snapshot files of operator '{uid}' in checkpoint {}",
                manifest.checkpoint
            );
            state.insert(key, value);
        }
    }
    assert!(
        files > 0,
        "checkpoint {} has no snapshot of operator '{uid}': {:?}",
        manifest.checkpoint,
        manifest.snapshots
    );
    state
}

/// The next checkpoint event, waiting at most [`TIMEOUT`]. Fails the test at once if the job
/// ended (its coordinator dropped the listener), provided the test holds no other sender.
pub fn next_event(events: &Receiver<CheckpointEvent>) -> CheckpointEvent {
    match events.recv_timeout(TIMEOUT) {
        Ok(event) => event,
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
            panic!("the job ended, or failed, before the checkpoint event the test waits for")
        }
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
            panic!("no checkpoint event within {TIMEOUT:?}")
        }
    }
}

/// Wraps an index-based source (positions are next item indices, u64 little-endian) so that
/// each task stops at an index until the test opens the [`Gate`]. A waiting task returns empty
/// batches (after a short bounded wait on the gate), so it keeps taking checkpoint triggers.
pub struct GatedSource<S> {
    inner: S,
    at: Arc<dyn Fn(&TaskInfo) -> u64 + Send + Sync>,
    open: Receiver<()>,
    reached: Sender<usize>,
}

/// The test's side of a [`GatedSource`]: learns which tasks reached the gate, and opens it.
/// Dropping the gate opens it too, so that a failing test cannot leave a job waiting.
pub struct Gate {
    open: Option<Sender<()>>,
    reached: Receiver<usize>,
}

/// Gates `inner` at index `at(task)` for each task.
pub fn gated<S: Source>(
    inner: S,
    at: impl Fn(&TaskInfo) -> u64 + Send + Sync + 'static,
) -> (GatedSource<S>, Gate) {
    let (open_tx, open_rx) = crossbeam_channel::bounded(0);
    let (reached_tx, reached_rx) = crossbeam_channel::unbounded();
    (
        GatedSource {
            inner,
            at: Arc::new(at),
            open: open_rx,
            reached: reached_tx,
        },
        Gate {
            open: Some(open_tx),
            reached: reached_rx,
        },
    )
}

impl Gate {
    /// Waits until `tasks` tasks have reached the gate; returns their indices, sorted.
    pub fn wait_reached(&self, tasks: usize) -> Vec<usize> {
        let mut reached: Vec<usize> = (0..tasks)
            .map(|_| {
                self.reached
                    .recv_timeout(TIMEOUT)
                    .unwrap_or_else(|e| panic!("source tasks did not reach the gate: {e}"))
            })
            .collect();
        reached.sort_unstable();
        reached
    }

    /// Lets every task go on.
    pub fn open(&mut self) {
        self.open = None;
    }
}

impl<S: Source> Source for GatedSource<S> {
    type Out = S::Out;

    fn name(&self) -> String {
        format!("gated-{}", self.inner.name())
    }

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<S::Out>>, BoxError> {
        Ok(Box::new(GatedReader {
            inner: self.inner.create_reader(task)?,
            at: (self.at)(task),
            open: Some(self.open.clone()),
            reached: self.reached.clone(),
            task: task.index,
            notified: false,
        }))
    }
}

struct GatedReader<T> {
    inner: Box<dyn SourceReader<T>>,
    at: u64,
    /// `None` once the gate is open.
    open: Option<Receiver<()>>,
    reached: Sender<usize>,
    task: usize,
    notified: bool,
}

impl<T> SourceReader<T> for GatedReader<T> {
    fn read_batch(&mut self, batch: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        let mut max = max;
        if let Some(open) = &self.open {
            let position = self
                .inner
                .position()
                .ok_or("the gated source has no position")?;
            let next = decode_index(&position.offset);
            if next >= self.at {
                if !self.notified {
                    self.notified = true;
                    let _ = self.reached.send(self.task);
                }
                // Nothing is ever sent: the gate opens when the test drops its sender.
                match open.recv_timeout(Duration::from_millis(2)) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        return Ok(ReadStatus::More)
                    }
                    _ => self.open = None,
                }
            } else {
                max = max.min((self.at - next) as usize);
            }
        }
        self.inner.read_batch(batch, max)
    }

    fn position(&self) -> Option<SourcePosition> {
        self.inner.position()
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        self.inner.seek(position)
    }
}

/// The file sink's committed output, by its reader contract: every regular file under `dir`
/// whose relative path has no component starting with `.` or `_`, sorted. A missing `dir` has
/// none.
pub fn published_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return files,
        Err(e) => panic!("list {}: {e}", dir.display()),
    };
    for entry in entries {
        let entry = entry.expect("directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            files.extend(published_files(&entry.path()));
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    files
}

/// Parses `key<TAB>count` lines.
pub fn parse_count_lines(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .map(|line| {
            let (key, count) = line
                .rsplit_once('\t')
                .unwrap_or_else(|| panic!("not key<TAB>count: {line:?}"));
            let count = count
                .parse()
                .unwrap_or_else(|_| panic!("not a count: {line:?}"));
            (key.to_owned(), count)
        })
        .collect()
}

/// Every `key<TAB>count` line of the committed output under `dir`.
pub fn read_published_counts(dir: &Path) -> Vec<(String, u64)> {
    published_files(dir)
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file)
                .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
            parse_count_lines(&text)
        })
        .collect()
}

/// Checks that the running counts of each key are exactly `1..=n` (no gap, no duplicate) and
/// returns each key's `n`.
pub fn complete_runs(lines: &[(String, u64)]) -> Result<HashMap<String, u64>, String> {
    let mut by_key: HashMap<&str, Vec<u64>> = HashMap::new();
    for (key, count) in lines {
        by_key.entry(key).or_default().push(*count);
    }
    let mut runs = HashMap::new();
    for (key, mut counts) in by_key {
        counts.sort_unstable();
        let n = counts.len() as u64;
        if counts.iter().copied().ne(1..=n) {
            let mut wrong: Vec<String> = Vec::new();
            for (want, got) in (1..=n).zip(&counts) {
                if want != *got {
                    wrong.push(format!("position {want} holds {got}"));
                    if wrong.len() == 3 {
                        break;
                    }
                }
            }
            return Err(format!(
                "key {key:?}: {n} counts, not 1..={n}: {}",
                wrong.join(", ")
            ));
        }
        runs.insert(key.to_owned(), n);
    }
    Ok(runs)
}

/// Fails the test if `got` and `want` differ, naming a few of the differences rather than
/// printing both maps.
pub fn assert_same_map<K, V>(what: &str, got: &HashMap<K, V>, want: &HashMap<K, V>)
where
    K: Eq + Hash + Debug + Ord,
    V: PartialEq + Debug,
{
    let mut keys: Vec<&K> = got.keys().chain(want.keys()).collect();
    keys.sort();
    keys.dedup();
    let differences: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(k) != want.get(k))
        .map(|k| format!("{k:?}: got {:?}, want {:?}", got.get(k), want.get(k)))
        .collect();
    assert!(
        differences.is_empty(),
        "{what}: {} of {} keys differ, e.g. {}",
        differences.len(),
        want.len(),
        differences[..differences.len().min(5)].join("; ")
    );
}
