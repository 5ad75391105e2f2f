//! A job owns its directories: a second job on the same checkpoint or output directory is
//! refused naming the holder (in this process or another), a killed holder leaves no stale
//! lock, and overlapping, foreign or other jobs' directories are refused before anything
//! starts, with nothing in them changed.

mod common;
#[path = "../examples/support/corpus.rs"]
mod corpus;
#[path = "../examples/support/output.rs"]
mod output;
#[path = "../examples/support/rng.rs"]
mod rng;
#[path = "../examples/support/wordcount_job.rs"]
mod wordcount_job;

use common::bounded;
use snapflow::engine::ownership::{DirRole, OwnershipError, LOCK_FILE, MARK_FILE};
use snapflow::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const RECORDS: u64 = 100_000;

/// A keyed running count over a generator gated at half of each task's share.
fn gated_count_job(out: &Path) -> (Job, common::Gate) {
    let (source, gate) = common::gated(GeneratorSource::new(RECORDS, |i| i), |task| {
        common::share(RECORDS, task.index, task.parallelism).start + RECORDS / 4
    });
    let job = Job::new("gated-count");
    job.source(source)
        .uid("source")
        .key_by(|i: &u64| i % 100)
        .process(
            |key: &u64, _: u64, n: &mut ValueState<u64>, out: &mut Output<String>| {
                let next = n.get().copied().unwrap_or(0) + 1;
                n.set(next);
                out.push(format!("{key}\t{next}"));
                Ok(())
            },
        )
        .uid("count")
        .sink(FileSink::new(out))
        .uid("write");
    (job, gate)
}

fn expected_counts() -> Vec<String> {
    let mut lines: Vec<String> = (0..100u64)
        .flat_map(|k| (1..=RECORDS / 100).map(move |n| format!("{k}\t{n}")))
        .collect();
    lines.sort();
    lines
}

fn committed_sorted(dir: &Path) -> Vec<String> {
    let mut lines = output::committed_lines(dir).unwrap();
    lines.sort();
    lines
}

fn config(checkpoints: &Path) -> JobConfig {
    JobConfig::default()
        .with_parallelism(2)
        .with_checkpointing(checkpoints, Duration::from_millis(5))
}

fn second_job(out: &Path, checkpoints: &Path) -> Result<JobReport, JobError> {
    let (out, checkpoints) = (out.to_path_buf(), checkpoints.to_path_buf());
    bounded("second job", move || {
        let (job, gate) = gated_count_job(&out);
        // An open gate: this job runs straight through.
        drop(gate);
        job.run(&config(&checkpoints))
    })
}

#[test]
fn a_second_job_on_a_running_jobs_directories_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (out, checkpoints) = (root.path().join("out"), root.path().join("ck"));
    let (job, mut gate) = gated_count_job(&out);
    let handle = job
        .launch(&config(&checkpoints))
        .expect("the first job starts");
    gate.wait_reached(2);

    // The same checkpoint directory: refused, naming this process as the holder.
    match second_job(&root.path().join("out2"), &checkpoints) {
        Err(JobError::Ownership(OwnershipError::Locked { role, holder, .. })) => {
            assert_eq!(role, DirRole::Checkpoints);
            assert_eq!(holder, Some(std::process::id()));
        }
        other => panic!("expected a lock refusal, got {other:?}"),
    }
    assert!(!root.path().join("out2").exists(), "nothing was created");
    // The same output directory with another checkpoint directory.
    match second_job(&out, &root.path().join("ck2")) {
        Err(JobError::Ownership(OwnershipError::Locked { role, .. })) => {
            assert!(matches!(role, DirRole::Output { .. }))
        }
        other => panic!("expected a lock refusal, got {other:?}"),
    }

    gate.open();
    handle.join().expect("the first job finishes");
    assert!(committed_sorted(&out) == expected_counts());
}

#[test]
fn overlapping_directories_are_refused_before_anything_is_created() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    for checkpoints in [out.clone(), out.join("ck"), root.path().join("out/./ck/..")] {
        match second_job(&out, &checkpoints) {
            Err(JobError::Ownership(OwnershipError::Overlap { .. })) => {}
            other => panic!(
                "{}: expected an overlap refusal, got {other:?}",
                checkpoints.display()
            ),
        }
        assert!(!out.exists(), "nothing was created");
    }
    // The output directory inside the checkpoint directory.
    let checkpoints = root.path().join("ck");
    match second_job(&checkpoints.join("out"), &checkpoints) {
        Err(JobError::Ownership(OwnershipError::Overlap { .. })) => {}
        other => panic!("expected an overlap refusal, got {other:?}"),
    }
}

#[test]
fn another_jobs_or_foreign_directories_are_refused_and_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let (out, checkpoints) = (root.path().join("out"), root.path().join("ck"));
    second_job(&out, &checkpoints).expect("a first job");
    let published = committed_sorted(&out);
    assert_eq!(published, expected_counts());

    // The first job's output directory as the next job's checkpoint directory: retention
    // would otherwise delete its published checkpoint directories as debris.
    match second_job(&root.path().join("out2"), &out) {
        Err(JobError::Ownership(OwnershipError::WrongKind { marked, .. })) => {
            assert_eq!(marked, "output")
        }
        other => panic!("expected a wrong-kind refusal, got {other:?}"),
    }
    assert_eq!(committed_sorted(&out), published);

    // A job of another name on the same directories.
    let (out2, ck2) = (out.clone(), checkpoints.clone());
    let other = bounded("other job", move || {
        let job = Job::new("another-job");
        job.source(GeneratorSource::new(10, |i| i))
            .sink(FileSink::new(&out2));
        job.run(&config(&ck2))
    });
    assert!(
        matches!(
            other,
            Err(JobError::Ownership(OwnershipError::OtherJob { .. }))
        ),
        "{other:?}"
    );

    // An unmarked directory holding someone's files.
    let foreign = root.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("data.csv"), "x").unwrap();
    match second_job(&foreign, &root.path().join("ck3")) {
        Err(JobError::Ownership(OwnershipError::Foreign { entry, .. })) => {
            assert_eq!(entry, foreign.join("data.csv"))
        }
        other => panic!("expected a foreign-directory refusal, got {other:?}"),
    }
    let names: Vec<_> = std::fs::read_dir(&foreign)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["data.csv"], "nothing was added");
    assert!(!root.path().join("ck3").join(MARK_FILE).exists());
}

/// The wordcount example binary that `cargo test` built next to this test.
fn wordcount_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .join("examples")
        .join(format!("wordcount{}", std::env::consts::EXE_SUFFIX))
}

#[test]
#[cfg(unix)]
fn a_second_process_is_refused_and_a_killed_holder_leaves_no_stale_lock() {
    let root = tempfile::tempdir().unwrap();
    let corpus = corpus::Corpus::new(2000, 10, 21);
    let text: String = (0..40_000).map(|i| corpus.line(i) + "\n").collect();
    let input = root.path().join("input.txt");
    std::fs::write(&input, &text).unwrap();
    let (out, checkpoints) = (root.path().join("out"), root.path().join("ck"));
    let args = |rate: &str| -> Vec<String> {
        let mut args = vec![
            "--input".to_owned(),
            input.display().to_string(),
            "--output".to_owned(),
            out.display().to_string(),
            "--checkpoint-dir".to_owned(),
            checkpoints.display().to_string(),
            "--checkpoint-interval-ms".to_owned(),
            "20".to_owned(),
            "--parallelism".to_owned(),
            "2".to_owned(),
        ];
        if !rate.is_empty() {
            args.extend(["--max-rate".to_owned(), rate.to_owned()]);
        }
        args
    };
    // The first process reads slowly enough to still hold its directories below.
    let mut first = Command::new(wordcount_bin())
        .args(args("2000"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start wordcount");
    let pid = first.id();
    // Wait for the event "the first process holds the output directory": its pid in the
    // output directory's lock file (written right after the lock is taken, and the output
    // directory is locked after the checkpoint directory).
    let lock = out.join(LOCK_FILE);
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while std::fs::read_to_string(&lock).map_or(true, |t| t.trim() != pid.to_string()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first process never locked"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first process ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    let second = Command::new(wordcount_bin())
        .args(args(""))
        .output()
        .expect("start the second wordcount");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second process is refused");
    assert!(stderr.contains(&format!("process {pid}")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // kill -9: the kernel drops the locks with the process.
    first.kill().unwrap();
    first.wait().unwrap();
    let rerun = Command::new(wordcount_bin())
        .args(args(""))
        .output()
        .expect("rerun wordcount");
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    assert!(
        committed_sorted(&out) == wordcount_job::expected_output(&text),
        "the output differs from the sequential count"
    );
}
