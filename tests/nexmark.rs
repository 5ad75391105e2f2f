//! Nexmark: every query's pipeline, on generated events and on the event file, at parallelism
//! 1 and 2, equals the sequential computation of the same query (as multisets of rows); and a
//! windowed query killed mid-run resumes from its checkpoint to the same result, exactly once.

#[path = "support/example_bin.rs"]
mod example_bin;
#[path = "../examples/support/output.rs"]
mod output;

use example_bin::example_bin;
use snapflow::engine::{FailureInjector, RestartStrategy};
use snapflow::prelude::*;
use snapflow_nexmark::event::{event_time, generate};
use snapflow_nexmark::sequential;
use snapflow_nexmark::source::{NexmarkFileSource, NexmarkSource};
use snapflow_nexmark::{Event, Query, Row};
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// 20 s of event time: several 10 s windows, ten 2 s slides, sessions that close and reopen.
const EVENTS: u64 = 200_000;

fn events() -> &'static [Event] {
    static EVENTS_CACHE: OnceLock<Vec<Event>> = OnceLock::new();
    EVENTS_CACHE.get_or_init(|| generate(EVENTS))
}

fn sorted_csv(rows: &[Row]) -> Vec<String> {
    let mut lines: Vec<String> = rows.iter().map(Row::to_csv).collect();
    lines.sort();
    lines
}

fn expected(query: Query) -> Vec<String> {
    sorted_csv(&sequential::run(query, events()))
}

/// Runs `query` over the stream `events` makes in `job`, collecting its rows.
fn run_collect(
    query: Query,
    parallelism: usize,
    source: impl FnOnce(&Job) -> Stream<Event>,
) -> Vec<String> {
    let job = Job::new(format!("nexmark-{query}"));
    let sink = CollectSink::new();
    let results = sink.results();
    query.build(source(&job)).sink(sink);
    job.run(
        &JobConfig::default()
            .with_parallelism(parallelism)
            .with_batch_size(512),
    )
    .unwrap();
    sorted_csv(&results.take())
}

fn generated(job: &Job) -> Stream<Event> {
    job.source(NexmarkSource::new(EVENTS))
        .with_timestamp_assigner(event_time)
}

fn check(query: Query, parallelism: usize, got: &[String]) {
    let want = expected(query);
    assert!(!want.is_empty(), "{query}: the test input gives no rows");
    if got != want {
        // Multiset difference: +1 per expected row, -1 per row got.
        let mut count: std::collections::HashMap<&String, i64> = Default::default();
        for r in &want {
            *count.entry(r).or_default() += 1;
        }
        for r in got {
            *count.entry(r).or_default() -= 1;
        }
        let missing: Vec<_> = count.iter().filter(|(_, &n)| n > 0).take(5).collect();
        let extra: Vec<_> = count.iter().filter(|(_, &n)| n < 0).take(5).collect();
        panic!(
            "{query} at p={parallelism}: {} rows, expected {}; missing e.g. {missing:?}, unexpected (count) e.g. {extra:?}",
            got.len(),
            want.len()
        );
    }
}

fn check_generated(query: Query) {
    for parallelism in [1, 2] {
        let got = run_collect(query, parallelism, generated);
        check(query, parallelism, &got);
    }
}

#[test]
fn q0_pass_through() {
    check_generated(Query::Q0);
}

#[test]
fn q1_currency_conversion() {
    check_generated(Query::Q1);
}

#[test]
fn q2_selection() {
    check_generated(Query::Q2);
}

#[test]
fn q3_local_item_suggestion() {
    check_generated(Query::Q3);
}

#[test]
fn q4_average_closing_price_per_category() {
    check_generated(Query::Q4);
}

#[test]
fn q5_hot_items() {
    check_generated(Query::Q5);
}

#[test]
fn q7_highest_bid() {
    check_generated(Query::Q7);
}

#[test]
fn q8_new_users() {
    check_generated(Query::Q8);
}

#[test]
fn q11_user_sessions() {
    check_generated(Query::Q11);
}

#[test]
fn q18_last_bid() {
    check_generated(Query::Q18);
}

/// Writes [`events`] to `path` as the JSON lines the Flink peer reads.
fn write_event_file(path: &Path) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for e in events() {
        serde_json::to_writer(&mut file, e).unwrap();
        file.write_all(b"\n").unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
}

/// The event file (the JSON lines the Flink peer reads), split by byte range over the tasks,
/// gives the same results as the generator.
#[test]
fn the_event_file_gives_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.json");
    write_event_file(&path);
    for query in [Query::Q5, Query::Q8, Query::Q11] {
        for parallelism in [1, 2] {
            let got = run_collect(query, parallelism, |job| {
                job.source(NexmarkFileSource::new(&path))
                    .with_timestamp_assigner(event_time)
            });
            check(query, parallelism, &got);
        }
    }
}

fn killed_run(query: Query, out: &Path, checkpoints: &Path, operator: &str) {
    let injector = FailureInjector::new().fail_task_after_checkpoint(operator, 0, 3);
    let job = Job::new(format!("nexmark-{query}"));
    query.build(generated(&job)).sink(FileSink::with_format(
        out,
        |row: &Row, line: &mut Vec<u8>| row.write_csv(line),
    ));
    let config = JobConfig::default()
        .with_parallelism(2)
        .with_batch_size(256)
        .with_max_rate(Some(200_000))
        .with_checkpointing(checkpoints, Duration::from_millis(5))
        .with_failure_injector(injector.clone())
        .with_restart_strategy(RestartStrategy::FixedDelay {
            attempts: 1,
            delay: Duration::ZERO,
        });
    let report = job.run(&config).unwrap();
    assert_eq!(injector.fired(), 1, "the kill happened mid-run");
    assert_eq!(report.restarts, 1);
    assert!(report.restored_from.is_some(), "resumed from a checkpoint");
}

/// Every query with state killed after its third checkpoint, in its stateful operator (q5 and
/// q7: the first of their two window stages; q7 also in the source): the restarted job
/// resumes from a checkpoint (sources at their event numbers, windows, timers, state and
/// watermarks as they were) and its committed output equals the sequential result, with no
/// row twice.
#[test]
fn a_killed_query_recovers_to_the_sequential_result() {
    let mut kills: Vec<(Query, &str)> = Query::ALL
        .into_iter()
        .filter_map(|q| Some((q, q.stateful_operator()?)))
        .collect();
    kills.push((Query::Q7, "nexmark"));
    assert_eq!(kills.len(), 8);
    for (query, operator) in kills {
        let dir = tempfile::tempdir().unwrap();
        let (out, checkpoints) = (dir.path().join("out"), dir.path().join("checkpoints"));
        killed_run(query, &out, &checkpoints, operator);
        let mut got = output::committed_lines(&out).unwrap();
        got.sort();
        check(query, 2, &got);
    }
}

/// Runs the example with `args`; with `kill_after`, SIGKILLs it once it reported that many
/// completed checkpoints (its `--log-checkpoints` lines: no timing). Returns its stdout.
fn run_example(args: &[&str], kill_after: Option<u64>) -> String {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(example_bin("nexmark"))
        .args(args)
        .arg("--log-checkpoints")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start the nexmark example");
    let mut stdout = String::new();
    let mut completed = 0;
    let mut killed = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("checkpoint ") && line.ends_with(" complete") {
            completed += 1;
            if Some(completed) == kill_after {
                child.kill().unwrap();
                killed = true;
            }
        }
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let status = child.wait().unwrap();
    if kill_after.is_some() {
        assert!(
            killed,
            "the run ended before its checkpoint {kill_after:?}: {stdout}"
        );
    } else {
        assert!(status.success(), "nexmark failed: {stdout}");
    }
    stdout
}

/// `kill -9` of the example process after its third checkpoint, then the same command again:
/// it resumes (the file source at its byte positions with its watermarks, the generator at its
/// event numbers, windows and timers as checkpointed) and the committed rows equal the
/// sequential result, each once. q7 on the event file (windows), q18 on generated events
/// (per-key state emitted when the input ends).
#[test]
fn a_killed_nexmark_process_resumes_to_the_sequential_result() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.json");
    write_event_file(&file);
    let events_arg = EVENTS.to_string();
    for (query, input) in [(Query::Q7, Some(&file)), (Query::Q18, None)] {
        let out = dir.path().join(format!("out-{query}"));
        let checkpoints = dir.path().join(format!("checkpoints-{query}"));
        let query_arg = query.to_string();
        let mut args = vec![
            "--query",
            &query_arg,
            "--output",
            out.to_str().unwrap(),
            "--checkpoint-dir",
            checkpoints.to_str().unwrap(),
            "--checkpoint-interval-ms",
            "20",
            "--parallelism",
            "2",
        ];
        match input {
            Some(path) => args.extend(["--input", path.to_str().unwrap()]),
            None => args.extend(["--events", &events_arg]),
        }
        let mut slow = args.clone();
        slow.extend(["--max-rate", "100000"]);
        run_example(&slow, Some(3));
        let resumed = run_example(&args, None);
        assert!(resumed.contains("resumed from checkpoint"), "{resumed}");
        let mut got = output::committed_lines(&out).unwrap();
        got.sort();
        check(query, 2, &got);
    }
}
