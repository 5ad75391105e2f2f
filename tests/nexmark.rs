//! Nexmark queries against their sequential implementations, also after a kill.

mod common;
#[path = "../examples/support/nexmark_job.rs"]
mod nexmark_job;

use common::bounded;
use snapflow::engine::{FailureInjector, RestartStrategy};
use snapflow::prelude::*;
use std::path::PathBuf;
use std::time::Duration;

const EVENTS: u64 = 100_000;

fn run(query: &'static str, config: JobConfig, out: Option<PathBuf>) -> Vec<String> {
    bounded(query, move || {
        let rows = match out {
            Some(dir) => {
                nexmark_job::build(query, EVENTS, FileSink::new(&dir))
                    .run(&config)
                    .unwrap();
                let mut rows = Vec::new();
                for file in common::published_files(&dir) {
                    rows.extend(
                        std::fs::read_to_string(file)
                            .unwrap()
                            .lines()
                            .map(str::to_owned),
                    );
                }
                rows
            }
            None => {
                let sink = CollectSink::new();
                let results = sink.results();
                nexmark_job::build(query, EVENTS, sink)
                    .run(&config)
                    .unwrap();
                results.take()
            }
        };
        let mut rows = rows;
        rows.sort();
        rows
    })
}

#[test]
fn every_query_matches_its_sequential_computation() {
    for query in nexmark_job::QUERIES {
        let dir = tempfile::tempdir().unwrap();
        let config = JobConfig::default()
            .with_parallelism(3)
            .with_checkpointing(dir.path(), Duration::from_millis(20));
        let got = run(query, config, None);
        let want = nexmark_job::expected(query, EVENTS);
        assert!(!want.is_empty(), "{query} has rows");
        assert!(
            got == want,
            "{query}: {} rows, {} expected",
            got.len(),
            want.len()
        );
    }
}

#[test]
fn the_stateful_queries_survive_a_kill() {
    // Any task's failure restarts the whole job from the checkpoint: the one that fails here
    // is a source task, so that the kill surely comes mid-run.
    for query in ["q3", "q4", "q5", "q7", "q8", "q11", "q18"] {
        let dir = tempfile::tempdir().unwrap();
        let injector = FailureInjector::new().fail_task_after_checkpoint("nexmark", 0, 3);
        let config = JobConfig::default()
            .with_parallelism(2)
            .with_batch_size(64)
            .with_max_rate(Some(50_000))
            .with_checkpointing(dir.path().join("chk"), Duration::from_millis(5))
            .with_failure_injector(injector.clone())
            .with_restart_strategy(RestartStrategy::FixedDelay {
                attempts: 1,
                delay: Duration::ZERO,
            });
        let got = run(query, config, Some(dir.path().join("out")));
        assert_eq!(injector.fired(), 1, "{query}: the kill happened mid-run");
        let want = nexmark_job::expected(query, EVENTS);
        assert!(
            got == want,
            "{query}: {} rows, {} expected",
            got.len(),
            want.len()
        );
    }
}

#[test]
fn the_source_resumes_at_its_event_number() {
    use snapflow::engine::Source;
    let source = nexmark_job::NexmarkSource { events: 1_000 };
    let task = |index| TaskInfo {
        operator: snapflow::engine::OperatorId(0),
        name: "n".into(),
        uid: "n".into(),
        index,
        parallelism: 2,
        max_parallelism: 128,
        first_checkpoint: snapflow::engine::CheckpointId(1),
    };
    let mut whole = source.create_reader(&task(1)).unwrap();
    let mut first = Vec::new();
    whole.read_batch(&mut first, 100).unwrap();
    let position = whole.position().unwrap();
    let mut rest = Vec::new();
    whole.read_batch(&mut rest, 100).unwrap();
    let mut resumed = source.create_reader(&task(1)).unwrap();
    resumed.seek(&position).unwrap();
    let mut again = Vec::new();
    resumed.read_batch(&mut again, 100).unwrap();
    assert_eq!(again, rest);
    let all = nexmark_job::all_events(1_000);
    assert_eq!(first[0], all[1], "task 1 of 2 reads events 1, 3, 5, ...");
    assert_eq!(rest[0], all[201]);
}

/// The Flink peer's input: a JSON-lines file as the `nexmark` binary writes it. Written here
/// from the same generator, read back by the job, and checked against the sequential
/// computation over the generator's events.
#[test]
fn queries_read_the_event_file_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.json");
    let events = nexmark_job::all_events(20_000);
    let mut text = String::new();
    for e in &events {
        text.push_str(&serde_json::to_string(e).unwrap());
        text.push('\n');
    }
    assert!(
        text.starts_with("{\"Person\":{\"id\":1000,"),
        "{}",
        &text[..60]
    );
    std::fs::write(&path, &text).unwrap();
    for query in ["q0", "q5", "q8"] {
        let input = nexmark_job::Input::File(path.clone());
        let got = bounded(query, move || {
            let sink = CollectSink::new();
            let results = sink.results();
            nexmark_job::build_from(query, &input, sink)
                .run(&JobConfig::default().with_parallelism(2))
                .unwrap();
            let mut rows = results.take();
            rows.sort();
            rows
        });
        assert_eq!(got, nexmark_job::expected_of(query, &events), "{query}");
        assert_eq!(
            nexmark_job::read_events(&path).unwrap(),
            events,
            "the file reads back as the generator's events"
        );
    }
    // A line that is not an event fails the job, quoting it.
    std::fs::write(&path, format!("{text}{{\"Bid\":7}}\n")).unwrap();
    let input = nexmark_job::Input::File(path.clone());
    let error = bounded("bad line", move || {
        nexmark_job::build_from("q0", &input, DiscardSink::new())
            .run(&JobConfig::default())
            .unwrap_err()
    });
    let message = snapflow::engine::ErrorChain(&error).to_string();
    assert!(
        message.contains("not a Nexmark event") && message.contains("{\"Bid\":7}"),
        "{message}"
    );
}
