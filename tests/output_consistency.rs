//! A rerun checks the output directory against the checkpoint it resumes from. Each way the
//! two can disagree after a kill (a lost manifest, a lost or damaged `_staging`, a foreign
//! file) is refused with an error naming it, nothing is published or deleted, and
//! `snapflow verify --output` reports the same; an intact directory resumes to exactly the
//! sequential result.

mod common;
#[path = "../examples/support/corpus.rs"]
mod corpus;
#[path = "support/killed_wordcount.rs"]
mod fixture;
#[path = "../examples/support/output.rs"]
mod output;
#[path = "../examples/support/rng.rs"]
mod rng;
#[path = "../examples/support/wordcount_job.rs"]
mod wordcount_job;

use fixture::{committed_sorted, config, run, Dirs};
use snapflow::checkpoint::{CheckpointId, CheckpointLayout, CheckpointStore};
use snapflow::operators::sink::file::OutputInconsistency;
use snapflow::prelude::*;
use std::path::PathBuf;
use std::process::Command;

/// Fresh directories over a corpus of seed `seed`.
fn dirs(seed: u64) -> Dirs {
    fixture::dirs(&fixture::text(seed))
}

/// Runs the job until a task is killed after checkpoint 3 completed; returns the latest
/// complete checkpoint, whose output is published.
fn killed_run(d: &Dirs) -> CheckpointId {
    fixture::killed_run(d, 3);
    let store = CheckpointStore::open(&d.checkpoints).unwrap();
    let latest = store.latest().unwrap().1.expect("a complete checkpoint");
    assert!(
        published(d, latest.checkpoint).is_dir(),
        "checkpoint {} published output",
        latest.checkpoint
    );
    latest.checkpoint
}

fn published(d: &Dirs, id: CheckpointId) -> PathBuf {
    d.out.join(snapflow::checkpoint::checkpoint_dir_name(id))
}

fn staged(d: &Dirs, id: CheckpointId) -> PathBuf {
    d.out
        .join("_staging")
        .join(snapflow::checkpoint::checkpoint_dir_name(id))
}

/// The state a crash between writing checkpoint `id`'s manifest and publishing its output
/// leaves behind.
fn unpublish(d: &Dirs, id: CheckpointId) {
    std::fs::create_dir_all(d.out.join("_staging")).unwrap();
    std::fs::rename(published(d, id), staged(d, id)).unwrap();
}

/// Reruns the job and returns how the output disagrees with the checkpoint.
fn refusal(d: &Dirs) -> OutputInconsistency {
    match run(d, config(d)) {
        Err(JobError::SinkOpenFailed { source }) => {
            match source.downcast::<OutputInconsistency>() {
                Ok(e) => *e,
                Err(other) => panic!("not an output inconsistency: {other}"),
            }
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Runs `snapflow verify` on the job's directories: (success, stdout).
fn verify(d: &Dirs) -> (bool, String) {
    let result = Command::new(env!("CARGO_BIN_EXE_snapflow"))
        .arg("verify")
        .arg(&d.checkpoints)
        .arg("--output")
        .arg(&d.out)
        .output()
        .expect("start snapflow");
    (
        result.status.success(),
        String::from_utf8_lossy(&result.stdout).into_owned(),
    )
}

fn finishes_exactly(d: &Dirs) {
    run(d, config(d)).expect("the rerun");
    assert!(
        committed_sorted(&d.out)
            == wordcount_job::expected_output(&std::fs::read_to_string(&d.input).unwrap()),
        "the output differs from the sequential count"
    );
    let (ok, report) = verify(d);
    assert!(ok, "{report}");
}

#[test]
fn output_pre_committed_but_not_published_is_published_once() {
    let d = dirs(11);
    let id = killed_run(&d);
    unpublish(&d, id);
    let (ok, report) = verify(&d);
    assert!(
        ok && report.contains(&format!("publishes [{}]", id.0)),
        "{report}"
    );
    finishes_exactly(&d);
}

#[test]
fn a_lost_manifest_is_refused_not_republished() {
    let d = dirs(12);
    let id = killed_run(&d);
    let layout = CheckpointLayout::new(&d.checkpoints);
    let manifest = layout.manifest_file(id);
    let kept = std::fs::read(&manifest).unwrap();
    std::fs::remove_file(&manifest).unwrap();
    let before = committed_sorted(&d.out);
    match refusal(&d) {
        OutputInconsistency::NewerPublished {
            published,
            restored,
            ..
        } => {
            assert_eq!(published, id);
            assert!(restored < id);
        }
        other => panic!("expected NewerPublished, got {other}"),
    }
    assert_eq!(committed_sorted(&d.out), before, "nothing was published");
    let (ok, report) = verify(&d);
    assert!(!ok && report.contains("INCONSISTENT"), "{report}");
    // With the manifest back, the job resumes from it.
    std::fs::write(&manifest, kept).unwrap();
    finishes_exactly(&d);
}

#[test]
fn lost_staging_is_refused_not_skipped() {
    let d = dirs(13);
    let id = killed_run(&d);
    unpublish(&d, id);
    let parked = d.root.path().join("parked");
    std::fs::rename(staged(&d, id), &parked).unwrap();
    let before = committed_sorted(&d.out);
    assert!(matches!(refusal(&d), OutputInconsistency::Missing { .. }));
    assert_eq!(committed_sorted(&d.out), before);
    let (ok, report) = verify(&d);
    assert!(!ok && report.contains("INCONSISTENT"), "{report}");
    std::fs::rename(&parked, staged(&d, id)).unwrap();
    finishes_exactly(&d);
}

#[test]
fn damaged_or_foreign_staged_files_are_refused_and_left_alone() {
    let d = dirs(14);
    let id = killed_run(&d);
    unpublish(&d, id);
    // A file snapflow did not write, in the staging of the checkpoint to publish.
    let foreign = staged(&d, id).join("part-00007");
    std::fs::write(&foreign, "not mine\n").unwrap();
    assert!(matches!(refusal(&d), OutputInconsistency::Foreign { .. }));
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "not mine\n");
    std::fs::remove_file(&foreign).unwrap();
    // A byte of a staged file changed.
    let part = std::fs::read_dir(staged(&d, id))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .expect("a staged part");
    let original = std::fs::read(&part).unwrap();
    let mut changed = original.clone();
    changed[0] ^= 0x20;
    std::fs::write(&part, &changed).unwrap();
    assert!(matches!(refusal(&d), OutputInconsistency::Damaged { .. }));
    std::fs::write(&part, &original).unwrap();
    finishes_exactly(&d);
}

#[test]
fn a_file_added_to_the_output_directory_is_refused() {
    let d = dirs(15);
    run(&d, config(&d)).expect("the first run");
    std::fs::write(d.out.join("notes.txt"), "mine").unwrap();
    assert!(matches!(refusal(&d), OutputInconsistency::Foreign { .. }));
    assert_eq!(
        std::fs::read_to_string(d.out.join("notes.txt")).unwrap(),
        "mine"
    );
}
