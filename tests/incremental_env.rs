//! `SNAPFLOW_INCREMENTAL_CHECKPOINTS` sets whether checkpoints are incremental for every job
//! that does not say: the wordcount example, run as a user does, writes only full snapshots
//! with it off and deltas with it on (the default); its `--no-incremental-checkpoints` flag
//! wins over the variable; a value the engine does not know refuses the job, naming the
//! variable and the value.

#[path = "support/example_bin.rs"]
mod example_bin;

use example_bin::example_bin;
use snapflow::checkpoint::{CheckpointState, CheckpointStore, Manifest};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

const VARIABLE: &str = "SNAPFLOW_INCREMENTAL_CHECKPOINTS";

/// Lines of input, read at `RATE` lines a second: the run spans many checkpoint intervals, so
/// the retained checkpoints follow earlier ones of the same run.
const LINES: usize = 3000;
const RATE: &str = "4000";

/// Runs the wordcount example over a small corpus in `dir`, with the variable set to `value`
/// (`None`: unset) and `extra` arguments.
fn run_wordcount(dir: &Path, value: Option<&str>, extra: &[&str]) -> Output {
    let input = dir.join("input.txt");
    let mut text = String::new();
    for i in 0..LINES {
        // A few keys change in each line, most stay: what incremental snapshots are for.
        let _ = writeln!(text, "w{} w{} common", i % 500, i % 7);
    }
    std::fs::write(&input, text).expect("write input");
    let mut command = Command::new(example_bin("wordcount"));
    command
        .args([
            "--input",
            input.to_str().expect("utf-8 path"),
            "--output",
            dir.join("out").to_str().expect("utf-8 path"),
            "--checkpoint-dir",
            dir.join("checkpoints").to_str().expect("utf-8 path"),
            "--checkpoint-interval-ms",
            "20",
            "--max-rate",
            RATE,
            "--parallelism",
            "2",
        ])
        .args(extra);
    match value {
        Some(value) => command.env(VARIABLE, value),
        None => command.env_remove(VARIABLE),
    };
    command.output().expect("start wordcount")
}

/// The manifests of every complete checkpoint the run left, oldest first.
fn manifests(dir: &Path) -> Vec<Manifest> {
    let store = CheckpointStore::open(dir.join("checkpoints")).expect("open the store");
    store
        .scan()
        .expect("scan the store")
        .into_iter()
        .filter(|s| s.state == CheckpointState::Complete)
        .map(|s| store.load_manifest(s.id).expect("load a manifest"))
        .collect()
}

/// How many snapshot files of the retained checkpoints are full, and how many are deltas
/// (build on earlier files), after a successful run.
fn full_and_deltas(value: Option<&str>, extra: &[&str]) -> (usize, usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let result = run_wordcount(dir.path(), value, extra);
    assert!(
        result.status.success(),
        "wordcount with {VARIABLE}={value:?} {extra:?} failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let manifests = manifests(dir.path());
    assert!(
        manifests.len() >= 2,
        "the run must leave at least two checkpoints to compare: {}",
        manifests.len()
    );
    let entries: Vec<_> = manifests.iter().flat_map(|m| &m.snapshots).collect();
    let deltas = entries.iter().filter(|e| !e.base.is_empty()).count();
    (entries.len() - deltas, deltas)
}

#[test]
fn off_writes_only_full_snapshots_and_on_or_unset_writes_deltas() {
    for off in ["off", "0", "FALSE"] {
        let (full, deltas) = full_and_deltas(Some(off), &[]);
        assert!(full > 0, "{off}: no snapshot at all");
        assert_eq!(deltas, 0, "{VARIABLE}={off}: every snapshot must be full");
    }
    for on in [Some("on"), None] {
        let (_, deltas) = full_and_deltas(on, &[]);
        assert!(
            deltas > 0,
            "{VARIABLE}={on:?}: later checkpoints must build on earlier ones"
        );
    }
}

#[test]
fn the_examples_flag_wins_over_the_variable() {
    let (full, deltas) = full_and_deltas(Some("on"), &["--no-incremental-checkpoints"]);
    assert!(full > 0);
    assert_eq!(
        deltas, 0,
        "--no-incremental-checkpoints must win over {VARIABLE}=on"
    );
}

#[test]
fn a_bad_value_refuses_the_job_naming_the_variable_and_the_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let result = run_wordcount(dir.path(), Some("maybe"), &[]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "a bad value must refuse the job");
    assert!(
        stderr.contains(VARIABLE) && stderr.contains("maybe"),
        "the error must name the variable and the value: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
