//! The ledger example's command line: output directories that would overwrite each other are
//! refused before anything runs.

#[path = "support/example_bin.rs"]
mod example_bin;

use example_bin::example_bin;

use std::process::Command;

#[test]
fn nested_or_equal_output_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("transfers.csv");
    std::fs::write(&input, "1,a,b,5\n2,b,a,3\n").unwrap();
    let out = dir.path().join("out");
    let nested = out.join("dead");
    for (output, dead_letter) in [(&out, &out), (&out, &nested), (&nested, &out)] {
        let result = Command::new(example_bin("ledger"))
            .args(["--input", input.to_str().unwrap()])
            .args(["--output", output.to_str().unwrap()])
            .args(["--dead-letter", dead_letter.to_str().unwrap()])
            .args([
                "--checkpoint-dir",
                dir.path().join("ckpt").to_str().unwrap(),
            ])
            .output()
            .expect("start ledger");
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "must fail: {stderr}");
        assert!(stderr.contains("must be separate directories"), "{stderr}");
        assert!(!out.exists(), "nothing may be written");
    }
}

/// The workload options are bounded like the engine options: refused while parsing, with the
/// option and its bounds, before a workload is built in memory.
#[test]
fn workload_options_out_of_range_are_refused() {
    for (option, value, bounds) in [
        ("--transfers", "1000000000000", "1..=100000000"),
        ("--accounts", "0", "1..=10000000"),
        ("--batch-size", "1000000000000", "1..=1048576"),
    ] {
        let result = Command::new(example_bin("ledger"))
            .args([option, value])
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("start ledger");
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{option} {value} must fail");
        assert!(
            stderr.contains(option) && stderr.contains(bounds),
            "{option}: {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        assert!(!stderr.contains("generating"), "nothing may run: {stderr}");
    }
}

#[test]
fn the_ledger_through_kafka_checks_itself_against_the_sequential_ledger() {
    // A private Apache Kafka broker for the run; the example fills the input topic with a
    // generated workload, runs the ledger exactly once into two topics, reads them back as a
    // read_committed consumer and fails unless they equal the sequential computation.
    let dir = tempfile::tempdir().unwrap();
    let result = Command::new(example_bin("ledger"))
        .args([
            "--kafka",
            "local",
            "--transfers",
            "20000",
            "--accounts",
            "500",
        ])
        .args(["--parallelism", "2", "--checkpoint-interval-ms", "50"])
        .args(["--max-rate", "20000"])
        .args([
            "--checkpoint-dir",
            dir.path().join("ckpt").to_str().unwrap(),
        ])
        .output()
        .expect("start the ledger");
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        stdout.contains("checked against a sequential computation"),
        "{stdout}"
    );
}
