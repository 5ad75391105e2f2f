//! The `snapflow` tool on a real checkpoint directory: `checkpoints` lists it, `verify` passes
//! on intact checkpoints and fails, naming the file, once a byte of a snapshot is flipped.

use snapflow::prelude::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn snapflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_snapflow"))
        .args(args)
        .output()
        .expect("start snapflow")
}

/// Runs a small keyed job that leaves its final checkpoint in `dir`.
fn run_job(dir: &Path) {
    let job = Job::new("cli-test");
    job.source(GeneratorSource::new(10_000, |i| i))
        .key_by(|i: &u64| i % 97)
        .process(
            |_: &u64, _: u64, n: &mut ValueState<u64>, out: &mut Output<u64>| {
                let next = n.get().copied().unwrap_or(0) + 1;
                n.set(next);
                out.push(next);
                Ok(())
            },
        )
        .uid("count")
        .sink(DiscardSink::new());
    let config = JobConfig::default()
        .with_parallelism(2)
        .with_checkpointing(dir, Duration::from_secs(3600));
    job.run(&config).expect("job runs");
}

#[test]
fn checkpoints_lists_and_verify_detects_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    run_job(dir.path());
    let path = dir.path().to_str().unwrap();

    let listed = snapflow(&["checkpoints", path]);
    assert!(listed.status.success());
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(listing.contains("complete"), "{listing}");
    assert!(
        listing.contains("record 5000"),
        "source offsets are listed: {listing}"
    );

    let verified = snapflow(&["verify", path]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );

    let snapshot = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .and_then(|chk| {
            std::fs::read_dir(chk)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == "snap"))
        })
        .expect("a snapshot file of the keyed operator");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&snapshot, bytes).unwrap();

    let verified = snapflow(&["verify", path]);
    assert!(
        !verified.status.success(),
        "a flipped byte must fail verification"
    );
    let report = String::from_utf8_lossy(&verified.stdout);
    let name = snapshot.file_name().unwrap().to_string_lossy();
    assert!(
        report.contains("CORRUPT") && report.contains(&*name),
        "{report}"
    );
    let listed = snapflow(&["checkpoints", path]);
    assert!(
        !listed.status.success(),
        "listing a corrupt checkpoint exits non-zero"
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("CORRUPT"));
}

#[test]
fn a_missing_directory_is_an_error() {
    let result = snapflow(&["verify", "/no/such/checkpoint/dir"]);
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("/no/such/checkpoint/dir"));
}

/// An error printed by the tool gives each cause once: the chain `context: file: OS error`,
/// not `... (os error 21): ... (os error 21)` (each error's message holds only its own level).
#[test]
fn an_unreadable_manifest_prints_the_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    // A manifest that is a directory: reading it fails with EISDIR, which is not evidence of
    // corruption, so `verify` refuses to guess and reports the error.
    let manifest = snapflow::checkpoint::CheckpointLayout::new(dir.path())
        .manifest_file(snapflow::checkpoint::CheckpointId(1));
    std::fs::create_dir_all(&manifest).unwrap();
    let os_error = std::io::Error::from_raw_os_error(21).to_string();
    for command in ["verify", "checkpoints"] {
        let result = snapflow(&[command, dir.path().to_str().unwrap()]);
        assert!(!result.status.success(), "{command} must fail");
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(
            stderr.matches(&os_error).count(),
            1,
            "{command}: the OS error {os_error:?} must be printed exactly once: {stderr}"
        );
        assert!(
            stderr.contains(&*manifest.to_string_lossy()),
            "{command}: names the file: {stderr}"
        );
    }
}
