//! The ledger example's command line: output directories that would overwrite each other are
//! refused before anything runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The example binary that `cargo test` built next to this test.
fn ledger_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .join("examples")
        .join(format!("ledger{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run through `cargo test`",
        bin.display()
    );
    bin
}

#[test]
fn nested_or_equal_output_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("transfers.csv");
    std::fs::write(&input, "1,a,b,5\n2,b,a,3\n").unwrap();
    let out = dir.path().join("out");
    let nested = out.join("dead");
    for (output, dead_letter) in [(&out, &out), (&out, &nested), (&nested, &out)] {
        let result = Command::new(ledger_bin())
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
