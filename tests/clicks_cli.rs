//! The clicks example's command line: the interface, its outputs against the
//! sequential computation, and clear refusals of bad options.

#[path = "../examples/support/clicks_job.rs"]
mod clicks_job;
#[path = "support/example_bin.rs"]
mod example_bin;
#[path = "../examples/support/output.rs"]
mod output;
#[path = "../examples/support/rng.rs"]
mod rng;

use clicks_job::WindowKind;
use example_bin::example_bin;
use std::path::Path;
use std::process::{Command, Output};

fn clicks(args: &[&str]) -> Output {
    Command::new(example_bin("clicks"))
        .args(args)
        .output()
        .expect("start clicks")
}

/// Runs the example with `args`, which must succeed; returns its stdout.
fn clicks_succeeds(args: &[&str]) -> String {
    let result = clicks(args);
    let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
    assert!(
        result.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&result.stderr)
    );
    stdout
}

/// Runs the example on the clicks file `input` with `options`, writing into `dir` (output,
/// late and checkpoint directories named with `run`); it must succeed. Returns the committed
/// output lines and late lines, each sorted.
fn clicks_on_file(
    dir: &Path,
    input: &Path,
    run: &str,
    options: &[&str],
) -> (Vec<String>, Vec<String>) {
    let (out, late, chk) = (
        dir.join(format!("out{run}")),
        dir.join(format!("late{run}")),
        dir.join(format!("chk{run}")),
    );
    let mut args = vec![
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--late",
        late.to_str().unwrap(),
        "--checkpoint-dir",
        chk.to_str().unwrap(),
    ];
    args.extend_from_slice(options);
    clicks_succeeds(&args);
    (sorted_lines(&out), sorted_lines(&late))
}

/// The lines committed under `dir`, sorted.
fn sorted_lines(dir: &Path) -> Vec<String> {
    let mut lines = output::committed_lines(dir).unwrap();
    lines.sort();
    lines
}

#[test]
fn every_window_kind_writes_what_the_sequential_computation_says() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clicks.txt");
    let text = clicks_job::generate(5_000, 9);
    std::fs::write(&input, &text).unwrap();
    for (i, window) in ["tumbling:10000", "sliding:10000:2500", "session:500"]
        .iter()
        .enumerate()
    {
        let (got, got_late) = clicks_on_file(
            dir.path(),
            &input,
            &i.to_string(),
            &[
                "--window",
                window,
                "--out-of-orderness-ms",
                "2000",
                "--parallelism",
                "2",
                "--checkpoint-interval-ms",
                "10",
            ],
        );
        let kind: WindowKind = window.parse().unwrap();
        let want = clicks_job::expected(&text, kind, 2000);
        assert_eq!(got, want.output_lines(), "{window}");
        assert_eq!(got_late, want.late, "{window}");
        assert!(got_late.iter().any(|l| l.starts_with("malformed\t")));
        assert!(got_late.iter().any(|l| l.starts_with("late\t")));
    }
}

/// A small input checked by hand: with out-of-orderness 0 and no watermark before the
/// 64th click, nothing is late; the malformed lines are reported, the blank one ignored.
#[test]
fn a_hand_checked_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clicks.txt");
    std::fs::write(
        &input,
        "1000,ann,home\n1500,bob,cart\n\n2500,ann,item\n999,ann,home\nx,ann,home\n7,ann\n",
    )
    .unwrap();
    let (got, got_late) = clicks_on_file(
        dir.path(),
        &input,
        "",
        &["--window", "tumbling:1000", "--out-of-orderness-ms", "0"],
    );
    assert_eq!(
        got,
        vec![
            "ann\t0\t1000\t1",
            "ann\t1000\t2000\t1",
            "ann\t2000\t3000\t1",
            "bob\t1000\t2000\t1",
        ]
    );
    assert_eq!(got_late, vec!["malformed\t7,ann", "malformed\tx,ann,home"]);
}

#[test]
fn without_arguments_it_checks_itself() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = clicks_succeeds(&[
        "--clicks",
        "20000",
        "--parallelism",
        "2",
        "--checkpoint-dir",
        dir.path().join("chk").to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("matches the sequential computation"),
        "{stdout}"
    );
}

#[test]
fn bad_options_are_refused_naming_them() {
    for (args, says) in [
        (vec!["--window", "hopping:5"], "--window"),
        (vec!["--window", "sliding:10:20"], "slide must not exceed"),
        (vec!["--window", "tumbling:0"], "--window"),
        (
            vec!["--input", "/nonexistent/clicks.txt"],
            "--input, --output and --late go together",
        ),
        (
            vec![
                "--input",
                "/nonexistent/clicks.txt",
                "--output",
                "/tmp/o",
                "--late",
                "/tmp/l",
            ],
            "/nonexistent/clicks.txt",
        ),
    ] {
        let result = clicks(&args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{args:?} must fail");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
