//! SIGTERM stops the wordcount example gracefully: a last checkpoint, its output published,
//! exit status 0 and a message saying how to resume. Rerunning the same command resumes from
//! that checkpoint, and the output ends up exactly the sequential count.

#[path = "../examples/support/output.rs"]
mod output;
#[path = "../examples/support/wordcount_job.rs"]
mod wordcount_job;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn sigterm_checkpoints_publishes_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    let out = dir.path().join("out");
    let checkpoints = dir.path().join("checkpoints");
    let text: String = (0..40_000)
        .map(|i| format!("w{} w{} common\n", i % 97, i % 13))
        .collect();
    std::fs::write(&input, &text).unwrap();
    let command = |rate: &str| {
        let mut c = Command::new(example("wordcount"));
        c.arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&out)
            .arg("--checkpoint-dir")
            .arg(&checkpoints)
            .args([
                "--checkpoint-interval-ms",
                "20",
                "--max-rate",
                rate,
                "--log-checkpoints",
            ]);
        c
    };

    // Slow enough (about 4 s of input) that the job is mid-way when it is told to stop.
    let mut child = command("10000")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start wordcount");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap() == "checkpoint 2 complete" {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "a graceful stop exits 0: {rest:?}");
    let stopped = rest
        .iter()
        .find_map(|l| l.trim().strip_prefix("stopped at checkpoint "))
        .expect("the stop names its checkpoint");
    let stopped_at: u64 = stopped.split(':').next().unwrap().parse().unwrap();
    assert!(stopped.contains("rerun the same command"), "{stopped}");
    let published_at_stop = output::committed_lines(&out).unwrap();
    let total_words = text.split_whitespace().count();
    assert!(
        !published_at_stop.is_empty() && published_at_stop.len() < total_words,
        "the stop published part of the output"
    );

    // Rerun at full speed: it resumes from the stop's checkpoint.
    let rerun = command("100000000").output().expect("rerun wordcount");
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    let report = String::from_utf8_lossy(&rerun.stdout);
    assert!(
        report.contains(&format!("resumed from checkpoint {stopped_at}")),
        "{report}"
    );

    let expected = wordcount_job::expected_output(&text);
    let mut got = output::committed_lines(&out).unwrap();
    got.sort();
    assert!(
        got == expected,
        "after stop and resume the output is the sequential count"
    );
}
