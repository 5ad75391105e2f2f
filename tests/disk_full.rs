//! Disk full: a snapshot, a manifest or a sink's staging file that does not fit fails with an
//! error naming the file and saying there is no space (never a SIGBUS), nothing partial is
//! ever loaded, and a job under a restart strategy succeeds, with exact output, once space is
//! freed.
//!
//! Each test mounts its own small tmpfs, which needs root (or CAP_SYS_ADMIN); where mounting
//! fails the test says why on stderr and passes without checking anything.

mod common;

use common::{
    assert_same_map, bounded, complete_runs, gated, next_event, read_published_counts, share,
    TIMEOUT,
};
use crossbeam_channel::{Receiver, Sender};
use snapflow::checkpoint::{
    write_atomic, write_snapshot, write_snapshot_serialized, CheckpointError, CheckpointId,
    CheckpointState, CheckpointStore, ExpectedSnapshot, Manifest, Snapshot, SnapshotEntry,
};
use snapflow::engine::ownership::{DirRole, Mark, MARK_FILE};
use snapflow::engine::{
    BoxError, CheckpointEvent, ErrorChain, ReadStatus, RestartStrategy, Source, SourcePosition,
    SourceReader, TaskInfo,
};
use snapflow::prelude::*;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A tmpfs of a fixed size mounted on a fresh temporary directory; unmounted on drop.
struct Tmpfs {
    // Dropped after `drop` unmounts, so the directory is removed once it is empty again.
    dir: tempfile::TempDir,
    bytes: u64,
}

impl Tmpfs {
    /// Mounts a tmpfs of `kib` KiB, or says on stderr why it cannot and returns `None`.
    fn mount(test: &str, kib: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let result = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match result {
            Ok(out) if out.status.success() => {
                return Some(Tmpfs {
                    dir,
                    bytes: kib * 1024,
                })
            }
            Ok(out) => format!(
                "`mount -t tmpfs` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => format!("cannot run `mount`: {e}"),
        };
        eprintln!("SKIPPED {test}: cannot mount a small tmpfs to fill (needs root): {why}");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        match Command::new("umount").arg(self.dir.path()).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "cannot unmount {}: {}",
                self.dir.path().display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("cannot run umount {}: {e}", self.dir.path().display()),
        }
    }
}

/// Writes `path` with zeros until the file system is full; returns the bytes written.
/// Prepares `dir` for the job "disk-full" as a job's first run does (its mark), so that a job
/// started after the disk is filled finds its directory already its own.
fn claimed(dir: &Path, role: DirRole) {
    fs::create_dir_all(dir).expect("create the directory");
    fs::write(dir.join(MARK_FILE), Mark::new(&role, "disk-full").encode()).expect("mark it");
}

fn fill(path: &Path) -> u64 {
    let mut file = File::create(path).expect("create the ballast");
    let chunk = vec![0u8; 4096];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == io::ErrorKind::StorageFull => break,
            Err(e) => panic!("fill {}: {e}", path.display()),
        }
    }
    written
}

/// Writes a ballast of `bytes` zeros at `path`.
fn ballast(path: &Path, bytes: u64) {
    let mut file = File::create(path).expect("create the ballast");
    io::copy(&mut io::repeat(0).take(bytes), &mut file).expect("write the ballast");
}

/// The operating system's text for ENOSPC ("No space left on device (os error 28)"); 28 is
/// ENOSPC on Linux, the platform these tests mount a tmpfs on.
fn no_space() -> String {
    io::Error::from_raw_os_error(28).to_string()
}

/// Checks that `text` says there is no space exactly once and names `file`.
fn assert_no_space(text: &str, file: &Path) {
    assert_eq!(
        text.matches(&no_space()).count(),
        1,
        "should say {:?} exactly once: {text}",
        no_space()
    );
    assert!(
        text.contains(&*file.to_string_lossy()),
        "should name {}: {text}",
        file.display()
    );
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_snapshot_that_does_not_fit_is_an_error_not_a_crash() {
    let Some(fs) = Tmpfs::mount("a_snapshot_that_does_not_fit_is_an_error_not_a_crash", 256) else {
        return;
    };
    let path = fs.path().join("count-0.snap");
    let id = CheckpointId(1);

    // Before the blocks were reserved, this write went through a sparse map and the process
    // died of SIGBUS at the first page the tmpfs could not hold.
    let payload = vec![7u8; 1 << 20];
    let error = write_snapshot(&path, "count", 0, id, &payload).expect_err("1 MiB in 256 KiB");
    match &error {
        CheckpointError::Io { source, .. } => {
            assert_eq!(source.kind(), io::ErrorKind::StorageFull, "{error:?}")
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert_no_space(&ErrorChain(&error).to_string(), &path);
    assert!(!path.exists(), "the partial snapshot file is removed");

    // The same through bincode, straight into the map.
    let values: Vec<u64> = (0..200_000).collect();
    let error =
        write_snapshot_serialized(&path, "count", 0, id, &values).expect_err("1.6 MB in 256 KiB");
    assert_no_space(&ErrorChain(&error).to_string(), &path);
    assert!(!path.exists(), "the partial snapshot file is removed");

    // The space of the failed writes is free again: a snapshot that fits is written whole.
    let payload = vec![9u8; 100_000];
    let info = write_snapshot(&path, "count", 0, id, &payload).expect("100 kB fit");
    let snapshot = Snapshot::open(
        &path,
        &ExpectedSnapshot {
            operator_uid: "count",
            task: 0,
            checkpoint: id,
            checksum: Some(info.checksum),
        },
    )
    .expect("the snapshot verifies");
    assert_eq!(snapshot.payload(), &payload[..]);
}

#[test]
fn a_manifest_that_does_not_fit_commits_nothing() {
    let Some(fs) = Tmpfs::mount("a_manifest_that_does_not_fit_commits_nothing", 256) else {
        return;
    };
    let store = CheckpointStore::open(fs.path().join("checkpoints")).expect("open the store");
    let id = CheckpointId(1);
    let dir = store.begin(id).expect("begin");
    let snapshot = store.layout().snapshot_file(id, "count", 0);
    let info = write_snapshot(&snapshot, "count", 0, id, &[1, 2, 3]).expect("a small snapshot");
    let manifest = Manifest {
        checkpoint: id,
        job: "disk-full".into(),
        graph_fingerprint: 1,
        triggered_at_ms: 0,
        completed_at_ms: 0,
        snapshots: vec![SnapshotEntry::new("count", 0, info)],
        source_offsets: Vec::new(),
        operators: vec!["count".into()],
        is_final: false,
    };

    let ballast_file = fs.path().join("ballast");
    assert!(fill(&ballast_file) > 0, "the ballast takes the free space");
    let error = store
        .commit(&manifest)
        .expect_err("no space for the manifest");
    let text = ErrorChain(&error).to_string();
    assert!(
        text.matches(&no_space()).count() == 1 && text.contains("chk-"),
        "names the manifest's temp file and says there is no space, once: {text}"
    );
    // No manifest, no temp file: the checkpoint is in progress, and nothing is restored.
    let snapshot_name = snapshot.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(file_names(&dir), vec![snapshot_name.clone()]);
    let (decision, restored) = store.latest().expect("scan");
    assert_eq!(decision.latest, None, "{decision:?}");
    assert!(restored.is_none());
    let states: Vec<_> = store
        .scan()
        .expect("scan")
        .into_iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(states, vec![CheckpointState::InProgress]);

    // The same for the durable-write helper on its own.
    let other = fs.path().join("OTHER");
    let error = write_atomic(&other, &[0u8; 10_000]).expect_err("no space");
    assert!(
        ErrorChain(&error).to_string().matches(&no_space()).count() == 1,
        "{}",
        ErrorChain(&error)
    );
    assert_eq!(
        file_names(fs.path()),
        vec!["ballast".to_owned(), "checkpoints".to_owned()],
        "no temp file is left behind"
    );

    // Space is back: the commit succeeds and the checkpoint is the latest.
    fs::remove_file(&ballast_file).expect("remove the ballast");
    store.commit(&manifest).expect("commit once there is space");
    let (decision, restored) = store.latest().expect("scan");
    assert_eq!(decision.latest, Some(id));
    assert_eq!(
        restored.expect("the manifest").snapshots,
        manifest.snapshots
    );
}

// ---------------------------------------------------------------------------------------------
// Jobs on a full disk.
// ---------------------------------------------------------------------------------------------

const RECORDS: u64 = 60_000;
const KEYS: u64 = 20_000;
const PARALLELISM: usize = 2;

/// The sequential expectation: each key's running count goes 1..=RECORDS/KEYS.
fn expected_runs() -> HashMap<String, u64> {
    (0..KEYS)
        .map(|k| (format!("k{k}"), RECORDS / KEYS))
        .collect()
}

/// Wraps a source so that the readers of any attempt after the first (a restart) tell the test
/// they started, then wait until the test drops the gate's sender: the test frees space in
/// between, without racing the restarted job.
struct RestartGated<S> {
    inner: S,
    readers: Arc<AtomicUsize>,
    restarted: Sender<()>,
    freed: Receiver<()>,
}

impl<S: Source> Source for RestartGated<S> {
    type Out = S::Out;

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<S::Out>>, BoxError> {
        // The first attempt creates one reader per task; every later reader is a restart's.
        let restarted = self.readers.fetch_add(1, Ordering::SeqCst) >= task.parallelism;
        Ok(Box::new(RestartGatedReader {
            inner: self.inner.create_reader(task)?,
            wait: restarted.then(|| (self.restarted.clone(), self.freed.clone())),
        }))
    }
}

struct RestartGatedReader<T> {
    inner: Box<dyn SourceReader<T>>,
    wait: Option<(Sender<()>, Receiver<()>)>,
}

impl<T> SourceReader<T> for RestartGatedReader<T> {
    fn read_batch(&mut self, batch: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        if let Some((restarted, freed)) = self.wait.take() {
            let _ = restarted.send(());
            // Nothing is ever sent: the gate opens when the test drops its sender.
            if let Err(crossbeam_channel::RecvTimeoutError::Timeout) = freed.recv_timeout(TIMEOUT) {
                return Err("the test never freed space".into());
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

/// A keyed running count over [`RECORDS`] records and [`KEYS`] keys (about 0.5 MB of state),
/// its source gated at restarts, writing `k<key>\t<count>` lines to `out`.
fn restart_gated_count_job(out: &Path, restarted: Sender<()>, freed: Receiver<()>) -> Job {
    let source = RestartGated {
        inner: GeneratorSource::new(RECORDS, |i| i),
        readers: Arc::default(),
        restarted,
        freed,
    };
    count_job(out, source)
}

/// A keyed running count of the numbers of `source` over [`KEYS`] keys, writing
/// `k<key>\t<count>` lines to `out`.
fn count_job(out: &Path, source: impl Source<Out = u64>) -> Job {
    let job = Job::new("disk-full");
    job.source(source)
        .uid("numbers")
        .key_by(|i: &u64| i % KEYS)
        .process(
            |key: &u64, _: u64, count: &mut ValueState<u64>, out: &mut Output<(u64, u64)>| {
                let n = count.get().copied().unwrap_or(0) + 1;
                count.set(n);
                out.push((*key, n));
                Ok(())
            },
        )
        .uid("count")
        .sink(FileSink::with_format(
            out,
            |(key, n): &(u64, u64), buf: &mut Vec<u8>| {
                let _ = write!(buf, "k{key}\t{n}");
            },
        ));
    job
}

/// A config that restarts a failed job once, and takes only the final checkpoint (the
/// interval is never reached), so that the one checkpoint of the first attempt holds all the
/// state.
fn restarting(checkpoints: &Path, events: Sender<CheckpointEvent>) -> JobConfig {
    JobConfig::default()
        .with_parallelism(PARALLELISM)
        .with_checkpointing(checkpoints, Duration::from_secs(3600))
        .with_checkpoint_listener(events)
        .with_restart_strategy(RestartStrategy::FixedDelay {
            attempts: 1,
            delay: Duration::ZERO,
        })
}

fn check_output(out: &Path) {
    let runs = complete_runs(&read_published_counts(out)).unwrap_or_else(|e| panic!("{e}"));
    assert_same_map("running counts", &runs, &expected_runs());
}

#[test]
fn a_checkpoint_that_does_not_fit_fails_and_the_restarted_job_succeeds() {
    let Some(fs) = Tmpfs::mount(
        "a_checkpoint_that_does_not_fit_fails_and_the_restarted_job_succeeds",
        1024,
    ) else {
        return;
    };
    const FREE: u64 = 64 * 1024;
    let ballast_file = fs.path().join("ballast");
    ballast(&ballast_file, fs.bytes - FREE);
    let checkpoints = fs.path().join("checkpoints");
    let scratch = tempfile::tempdir().expect("temporary directory");
    let out = scratch.path().join("out");

    let (events_tx, events) = crossbeam_channel::unbounded();
    let (restarted_tx, restarted) = crossbeam_channel::unbounded();
    let (freed_tx, freed) = crossbeam_channel::bounded::<()>(0);
    let config = restarting(&checkpoints, events_tx);
    let job_out = out.clone();
    // A job is built on the thread that runs it.
    let run = std::thread::spawn(move || {
        restart_gated_count_job(&job_out, restarted_tx, freed).run(&config)
    });

    // The first attempt's final checkpoint cannot hold the state: it is aborted, which fails
    // the job (the sources have ended), and the restart strategy starts it again.
    restarted
        .recv_timeout(TIMEOUT)
        .expect("the job restarts after its checkpoint failed");
    let aborted: Vec<String> = events
        .try_iter()
        .filter_map(|e| match e {
            CheckpointEvent::Aborted { reason, .. } => Some(reason),
            CheckpointEvent::Completed(_) => None,
        })
        .collect();
    assert_eq!(aborted.len(), 1, "one aborted checkpoint: {aborted:?}");
    assert_no_space(&aborted[0], &checkpoints);
    assert!(
        aborted[0].contains(".snap"),
        "names the snapshot file: {}",
        aborted[0]
    );

    fs::remove_file(&ballast_file).expect("remove the ballast");
    drop(freed_tx);
    let report = bounded("the restarted job", move || run.join())
        .expect("the job thread")
        .unwrap_or_else(|e| panic!("the job failed: {}", ErrorChain(&e)));
    assert_eq!(report.restarts, 1);
    let last = report.checkpoints.last().expect("the final checkpoint");
    assert!(last.is_final);
    assert!(
        last.bytes > FREE,
        "the state ({} bytes) did not fit in the {FREE} bytes left",
        last.bytes
    );
    check_output(&out);
    let store = CheckpointStore::open(&checkpoints).expect("open the store");
    assert!(
        store.latest().expect("scan").0.latest.is_some(),
        "the final checkpoint is on disk"
    );
}

#[test]
fn a_sink_that_cannot_stage_fails_and_the_restarted_job_succeeds() {
    let Some(fs) = Tmpfs::mount(
        "a_sink_that_cannot_stage_fails_and_the_restarted_job_succeeds",
        1024,
    ) else {
        return;
    };
    let ballast_file = fs.path().join("ballast");
    let out = fs.path().join("out");
    claimed(
        &out,
        DirRole::Output {
            operator: "write".into(),
        },
    );
    fill(&ballast_file);
    let scratch = tempfile::tempdir().expect("temporary directory");
    let checkpoints = scratch.path().join("checkpoints");

    // Without a restart strategy, the job fails with the sink's error.
    {
        let (restarted_tx, _restarted) = crossbeam_channel::unbounded();
        let (_freed_tx, freed) = crossbeam_channel::bounded::<()>(0);
        let config = JobConfig::default()
            .with_parallelism(PARALLELISM)
            .with_checkpointing(&checkpoints, Duration::from_secs(3600));
        let job_out = out.clone();
        let error = bounded("the job on a full disk", move || {
            restart_gated_count_job(&job_out, restarted_tx, freed).run(&config)
        })
        .expect_err("the sink cannot write");
        assert!(
            matches!(error, JobError::TaskFailed { ref operator, .. } if operator.contains("write")),
            "{}",
            ErrorChain(&error)
        );
        assert_no_space(&ErrorChain(&error).to_string(), &out);
    }

    let (events_tx, _events) = crossbeam_channel::unbounded();
    let (restarted_tx, restarted) = crossbeam_channel::unbounded();
    let (freed_tx, freed) = crossbeam_channel::bounded::<()>(0);
    let config = restarting(&checkpoints, events_tx);
    let job_out = out.clone();
    let run = std::thread::spawn(move || {
        restart_gated_count_job(&job_out, restarted_tx, freed).run(&config)
    });
    restarted
        .recv_timeout(TIMEOUT)
        .expect("the job restarts after its sink failed");
    fs::remove_file(&ballast_file).expect("remove the ballast");
    drop(freed_tx);
    let report = bounded("the restarted job", move || run.join())
        .expect("the job thread")
        .unwrap_or_else(|e| panic!("the job failed: {}", ErrorChain(&e)));
    assert_eq!(report.restarts, 1);
    check_output(&out);
}

#[test]
fn periodic_checkpoints_that_do_not_fit_are_aborted_and_the_job_goes_on() {
    let Some(fs) = Tmpfs::mount(
        "periodic_checkpoints_that_do_not_fit_are_aborted_and_the_job_goes_on",
        2048,
    ) else {
        return;
    };
    // Full: no snapshot fits, so no checkpoint completes and no manifest is attempted (one
    // that could not be written would fail the job: see the restart tests).
    let ballast_file = fs.path().join("ballast");
    let checkpoints = fs.path().join("checkpoints");
    claimed(&checkpoints, DirRole::Checkpoints);
    fill(&ballast_file);
    let scratch = tempfile::tempdir().expect("temporary directory");
    let out = scratch.path().join("out");

    // Each source task stops before the last record of its share (at the end it would be
    // exhausted) until the test opens the gate, taking part in checkpoints meanwhile.
    let (source, mut gate) = gated(GeneratorSource::new(RECORDS, |i| i), |task| {
        share(RECORDS, task.index, task.parallelism).end - 1
    });
    let (events_tx, events) = crossbeam_channel::unbounded();
    // One checkpoint kept, one in flight: both fit in the tmpfs once the ballast is gone.
    let config = JobConfig::default()
        .with_parallelism(PARALLELISM)
        .with_checkpointing(&checkpoints, Duration::from_millis(10))
        .with_retained_checkpoints(1)
        .with_checkpoint_listener(events_tx);
    let handle = count_job(&out, source)
        .launch(&config)
        .expect("launch the job");
    drop(config);
    gate.wait_reached(PARALLELISM);
    let reason = loop {
        match next_event(&events) {
            CheckpointEvent::Aborted { reason, .. } => break reason,
            CheckpointEvent::Completed(_) => {}
        }
    };
    assert_no_space(&reason, &checkpoints);

    fs::remove_file(&ballast_file).expect("remove the ballast");
    gate.open();
    let report = bounded("the job", move || handle.join())
        .unwrap_or_else(|e| panic!("the job failed: {}", ErrorChain(&e)));
    assert_eq!(
        report.restarts, 0,
        "an aborted checkpoint does not fail the job"
    );
    assert!(report.aborted_checkpoints >= 1);
    let last = report.checkpoints.last().expect("the final checkpoint");
    assert!(last.is_final && last.bytes > 0, "{last:?}");
    check_output(&out);
}
