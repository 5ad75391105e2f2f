//! Kill-and-recover with real process kills (SIGKILL) and with thread kills, for the example
//! jobs, through the chaos driver: zero invariant violations while running, and the final
//! output equals the sequential computation.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The chaos example that `cargo test` built next to this test (with the job examples).
fn chaos_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir
        .join("examples")
        .join(format!("chaos{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run through `cargo test`",
        bin.display()
    );
    bin
}

/// Runs the chaos driver with `args`, checks it reports no violation and 3 kills, and returns
/// its report.
fn chaos(args: &[&str]) -> String {
    chaos_with_env(args, &[])
}

/// [`chaos`] with the environment variables `env` set for the driver and the jobs it starts.
fn chaos_with_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let result = Command::new(chaos_bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("start chaos");
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "chaos {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(stdout.contains("violations 0"), "{stdout}");
    let kills = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("attempts "))
        .and_then(|l| l.split("kills ").nth(1))
        .and_then(|k| k.split(',').next())
        .and_then(|k| k.trim().parse::<u32>().ok())
        .expect("a kill count");
    assert_eq!(kills, 3, "every planned kill happened: {stdout}");
    stdout.into_owned()
}

#[test]
fn wordcount_survives_process_kills() {
    chaos(&[
        "--job",
        "wordcount",
        "--kills",
        "3",
        "--seed",
        "7",
        "--size",
        "20000",
        "--checkpoint-interval-ms",
        "20",
    ]);
}

#[test]
fn wordcount_survives_crashes_in_a_snapshot_write_and_in_retention_with_or_without_incremental_checkpoints(
) {
    for incremental in [true, false] {
        let mut args = vec![
            "--job",
            "wordcount",
            "--kills",
            "3",
            "--seed",
            "11",
            "--size",
            "20000",
            "--checkpoint-interval-ms",
            "20",
            "--crash-points",
        ];
        // Bound both ways, so that a suite run with SNAPFLOW_INCREMENTAL_CHECKPOINTS=off
        // still covers incremental checkpoints here.
        let env: &[(&str, &str)] = if incremental {
            &[("SNAPFLOW_INCREMENTAL_CHECKPOINTS", "on")]
        } else {
            args.push("--no-incremental-checkpoints");
            &[]
        };
        let report = chaos_with_env(&args, env);
        assert!(
            report.contains("crashes in a snapshot write 1, in retention's delete 1"),
            "{report}"
        );
    }
}

#[test]
fn ledger_survives_process_and_planted_kills_without_incremental_checkpoints() {
    chaos(&[
        "--job",
        "ledger",
        "--kills",
        "3",
        "--seed",
        "5",
        "--size",
        "20000",
        "--checkpoint-interval-ms",
        "20",
        "--crash-points",
        "--no-incremental-checkpoints",
    ]);
}

#[test]
fn both_jobs_survive_thread_kills_without_incremental_checkpoints() {
    for job in ["wordcount", "ledger"] {
        chaos(&[
            "--job",
            job,
            "--kills",
            "3",
            "--seed",
            "3",
            "--size",
            "20000",
            "--mode",
            "threads",
            "--checkpoint-interval-ms",
            "20",
            "--no-incremental-checkpoints",
        ]);
    }
}

#[test]
fn ledger_survives_process_kills() {
    chaos(&[
        "--job",
        "ledger",
        "--kills",
        "3",
        "--seed",
        "7",
        "--size",
        "20000",
        "--checkpoint-interval-ms",
        "20",
    ]);
}

#[test]
fn both_jobs_survive_thread_kills() {
    for job in ["wordcount", "ledger"] {
        chaos(&[
            "--job",
            job,
            "--kills",
            "3",
            "--seed",
            "5",
            "--size",
            "20000",
            "--mode",
            "threads",
            "--checkpoint-interval-ms",
            "20",
        ]);
    }
}

#[test]
fn the_ledger_on_postgres_survives_process_kills_in_both_modes() {
    for mode in ["transactional", "two-phase"] {
        chaos(&[
            "--job",
            "ledger",
            "--sink",
            "postgres",
            "--postgres-mode",
            mode,
            "--kills",
            "3",
            "--seed",
            "9",
            "--size",
            "20000",
            "--checkpoint-interval-ms",
            "20",
        ]);
    }
}

#[test]
fn clicks_survives_process_kills_at_parallelism_1_2_and_4() {
    // A different window kind at each parallelism, so that every kind is killed too.
    for (parallelism, window) in [
        ("1", "tumbling:60000"),
        ("2", "session:3000"),
        ("4", "sliding:60000:20000"),
    ] {
        chaos(&[
            "--job",
            "clicks",
            "--window",
            window,
            "--parallelism",
            parallelism,
            "--kills",
            "3",
            "--seed",
            "11",
            "--size",
            "20000",
            "--checkpoint-interval-ms",
            "20",
        ]);
    }
}

#[test]
fn clicks_survives_thread_kills() {
    chaos(&[
        "--job",
        "clicks",
        "--kills",
        "3",
        "--seed",
        "5",
        "--size",
        "20000",
        "--mode",
        "threads",
        "--checkpoint-interval-ms",
        "20",
    ]);
}

#[test]
fn nexmark_queries_survive_process_and_thread_kills() {
    // Windows (q5 sliding, q11 sessions), per-key state emitted at the end (q18, q4) and a
    // two-stage window join (q7), over the event file, at several parallelisms.
    for (query, parallelism, mode) in [
        ("q5", "2", "process"),
        ("q11", "1", "process"),
        ("q18", "4", "process"),
        ("q4", "2", "threads"),
        ("q7", "2", "threads"),
    ] {
        chaos(&[
            "--job",
            "nexmark",
            "--query",
            query,
            "--parallelism",
            parallelism,
            "--mode",
            mode,
            "--kills",
            "3",
            "--seed",
            "13",
            "--size",
            "50000",
            "--checkpoint-interval-ms",
            "20",
        ]);
    }
}

#[test]
fn word_count_through_kafka_survives_process_kills_and_crashes_in_the_kafka_commit() {
    // A private Apache Kafka broker for the run; seed 4 plants two of the three kills inside
    // the sink's Kafka commit (`wordcount --kafka-crash-at`), the third is a SIGKILL.
    let stdout = chaos(&[
        "--job",
        "wordcount",
        "--sink",
        "kafka",
        "--kills",
        "3",
        "--seed",
        "4",
        "--size",
        "20000",
        "--checkpoint-interval-ms",
        "20",
    ]);
    let crashes = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("of the kills, crashes inside the Kafka commit: ")
        })
        .and_then(|n| n.trim().parse::<u32>().ok())
        .expect("a count of crashes in the Kafka commit");
    assert!(crashes >= 1, "no kill landed in the Kafka commit: {stdout}");
}
