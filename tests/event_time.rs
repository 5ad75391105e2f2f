//! Event time end to end: windows of every kind against the sequential computation (also
//! after a kill, and resumed at another parallelism), timers of a process function firing
//! exactly once across a kill, processing-time windows, and side-output mistakes refused.

#[path = "../examples/support/clicks_job.rs"]
mod clicks_job;
mod common;
#[path = "../examples/support/output.rs"]
mod output;
#[path = "../examples/support/rng.rs"]
mod rng;

use clicks_job::WindowKind;
use common::bounded;
use snapflow::engine::{FailureInjector, RestartStrategy};
use snapflow::operators::time::{Context, KeyedProcessFunction, WatermarkStrategy};
use snapflow::operators::window::{TumblingProcessingTimeWindows, Window};
use snapflow::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Dirs {
    _root: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
    late: PathBuf,
    checkpoints: PathBuf,
}

fn dirs(text: &str) -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("clicks.txt");
    std::fs::write(&input, text).unwrap();
    Dirs {
        input,
        out: root.path().join("out"),
        late: root.path().join("late"),
        checkpoints: root.path().join("checkpoints"),
        _root: root,
    }
}

fn run_clicks(d: &Dirs, window: WindowKind, config: JobConfig) -> Result<JobReport, JobError> {
    let (input, out, late) = (d.input.clone(), d.out.clone(), d.late.clone());
    bounded("clicks", move || {
        clicks_job::build(&input, &out, &late, window, 5000).run(&config)
    })
}

fn check(d: &Dirs, text: &str, window: WindowKind) {
    let out = output::committed_lines(&d.out).unwrap();
    let late = output::committed_lines(&d.late).unwrap();
    assert!(!out.is_empty());
    if let Err(e) = clicks_job::check_final(text, window, 5000, out, late) {
        panic!("{window}: {e}");
    }
}

#[test]
fn windows_of_every_kind_match_the_sequential_computation() {
    let text = clicks_job::generate(20_000, 3);
    let expected = clicks_job::expected(&text, WindowKind::Tumbling(60_000), 5000);
    assert!(
        expected.late.iter().any(|l| l.starts_with("late\t")),
        "the input has late events"
    );
    for window in [
        WindowKind::Tumbling(60_000),
        WindowKind::Sliding(60_000, 15_000),
        WindowKind::Session(2_000),
    ] {
        let d = dirs(&text);
        let config = JobConfig::default()
            .with_parallelism(3)
            .with_checkpointing(&d.checkpoints, Duration::from_millis(10));
        run_clicks(&d, window, config).unwrap();
        check(&d, &text, window);
    }
}

/// Parallelism 2, a checkpoint every few milliseconds, about a second of input.
fn slow_config(d: &Dirs) -> JobConfig {
    JobConfig::default()
        .with_parallelism(2)
        .with_batch_size(64)
        .with_max_rate(Some(20_000))
        .with_checkpointing(&d.checkpoints, Duration::from_millis(5))
}

#[test]
fn a_killed_window_job_restarts_without_firing_a_window_twice() {
    let text = clicks_job::generate(20_000, 4);
    for (window, operator) in [
        (WindowKind::Tumbling(10_000), "count"),
        (WindowKind::Session(1_000), "watermarks"),
    ] {
        let d = dirs(&text);
        let injector = FailureInjector::new().fail_task_after_checkpoint(operator, 0, 3);
        let config = slow_config(&d)
            .with_failure_injector(injector.clone())
            .with_restart_strategy(RestartStrategy::FixedDelay {
                attempts: 1,
                delay: Duration::ZERO,
            });
        let report = run_clicks(&d, window, config).unwrap();
        assert_eq!(injector.fired(), 1, "the kill happened mid-run");
        assert_eq!(report.restarts, 1);
        check(&d, &text, window);
    }
}

#[test]
fn a_killed_window_job_resumes_at_another_parallelism() {
    let text = clicks_job::generate(20_000, 5);
    let window = WindowKind::Tumbling(5_000);
    let d = dirs(&text);
    let injector = FailureInjector::new().fail_task_after_checkpoint("count", 1, 3);
    let killed = run_clicks(
        &d,
        window,
        slow_config(&d).with_failure_injector(injector.clone()),
    );
    assert!(
        matches!(killed, Err(JobError::TaskFailed { .. })),
        "{killed:?}"
    );
    assert_eq!(injector.fired(), 1);
    // The windows' state and watermarks are split over three tasks now; the source resumes
    // where the checkpoint left it.
    let config = JobConfig::default()
        .with_parallelism(3)
        .with_checkpointing(&d.checkpoints, Duration::from_millis(5));
    let report = run_clicks(&d, window, config).unwrap();
    assert!(report.restored_from.is_some());
    check(&d, &text, window);
}

/// Counts each key's events per 100 ms bucket with an event-time timer at the bucket's end;
/// the state is a map of open buckets, so a bucket closes when its timer fires.
struct BucketCount;

impl KeyedProcessFunction<String, (String, u64), (String, u64, u64)> for BucketCount {
    type State = MapState<u64, u64>;

    fn process_element(
        &self,
        _record: (String, u64),
        ctx: &mut Context<'_, String, (String, u64, u64)>,
        buckets: &mut MapState<u64, u64>,
    ) -> Result<(), BoxError> {
        let bucket = ctx.timestamp().ok_or("no timestamp")? / 100;
        *buckets.entry_or_default(bucket) += 1;
        ctx.timer_service()
            .register_event_time_timer(bucket * 100 + 99);
        Ok(())
    }

    fn on_timer(
        &self,
        timestamp: u64,
        ctx: &mut Context<'_, String, (String, u64, u64)>,
        buckets: &mut MapState<u64, u64>,
    ) -> Result<(), BoxError> {
        let bucket = timestamp / 100;
        let n = buckets.remove(&bucket).ok_or("a timer fired twice")?;
        let key = ctx.key().clone();
        ctx.collect((key, bucket, n));
        Ok(())
    }
}

fn bucket_job(out: &Path, n: u64) -> Job {
    let job = Job::new("buckets");
    job.source(GeneratorSource::new(n, |i| (format!("k{}", i % 7), i)))
        .uid("generate")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps()
                .with_timestamp_assigner(|r: &(String, u64)| r.1)
                .with_emit_interval(16),
        )
        .uid("watermarks")
        .key_by(|r: &(String, u64)| r.0.clone())
        .process_function(BucketCount)
        .name("buckets")
        .uid("buckets")
        .sink(FileSink::with_format(
            out,
            |(k, b, n): &(String, u64, u64), buf: &mut Vec<u8>| {
                buf.extend_from_slice(format!("{k}\t{b}\t{n}").as_bytes())
            },
        ))
        .uid("write");
    job
}

#[test]
fn timers_fire_exactly_once_across_a_kill() {
    let n = 20_000;
    let root = tempfile::tempdir().unwrap();
    let (out, checkpoints) = (root.path().join("out"), root.path().join("chk"));
    let injector = FailureInjector::new().fail_task_after_checkpoint("buckets", 1, 3);
    let config = JobConfig::default()
        .with_parallelism(2)
        .with_batch_size(64)
        .with_max_rate(Some(20_000))
        .with_checkpointing(&checkpoints, Duration::from_millis(5))
        .with_failure_injector(injector.clone())
        .with_restart_strategy(RestartStrategy::FixedDelay {
            attempts: 1,
            delay: Duration::ZERO,
        });
    let job_out = out.clone();
    let report = bounded("buckets", move || bucket_job(&job_out, n).run(&config)).unwrap();
    assert_eq!(injector.fired(), 1);
    assert_eq!(report.restarts, 1);
    let mut expected: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for i in 0..n {
        *expected
            .entry((format!("k{}", i % 7), i / 100))
            .or_default() += 1;
    }
    let mut got: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for line in output::committed_lines(&out).unwrap() {
        let f: Vec<&str> = line.split('\t').collect();
        let key = (f[0].to_owned(), f[1].parse().unwrap());
        assert!(
            got.insert(key, f[2].parse().unwrap()).is_none(),
            "a timer fired twice: {line}"
        );
    }
    assert_eq!(got, expected);
}

#[test]
fn processing_time_windows_count_every_event_once() {
    let sink = CollectSink::new();
    let results = sink.results();
    bounded("processing-time", move || {
        let job = Job::new("processing-time");
        job.source(GeneratorSource::new(10_000, |i| (i % 5, i)))
            .key_by(|r: &(u64, u64)| r.0)
            .window(TumblingProcessingTimeWindows::of(Duration::from_secs(3600)))
            .aggregate_with(Count, |k: &u64, _: Window, n: u64| (*k, n))
            .sink(sink);
        job.run(&JobConfig::default().with_parallelism(2)).unwrap()
    });
    let mut per_key: BTreeMap<u64, u64> = BTreeMap::new();
    for (k, n) in results.take() {
        *per_key.entry(k).or_default() += n;
    }
    assert_eq!(per_key, (0..5).map(|k| (k, 2_000)).collect());
}

#[test]
fn side_output_of_an_operator_without_side_outputs_is_refused() {
    let job = Job::new("no-sides");
    let tag: OutputTag<u64> = OutputTag::new("nothing");
    let doubled = job.source(GeneratorSource::new(10, |i| i)).map(|i| i * 2);
    doubled.side_output(&tag).sink(DiscardSink::new());
    doubled.sink(DiscardSink::new());
    let error = job.run(&JobConfig::default()).unwrap_err();
    let message = snapflow::engine::ErrorChain(&error).to_string();
    assert!(message.contains("has no side outputs"), "{message}");
}

/// A source whose reader generates watermarks itself: records `(key, ts)` with ascending
/// timestamps in batches of 10, its watermark the largest timestamp read minus one; then one
/// record 500 ms behind.
struct Ascending;

struct AscendingReader {
    next: u64,
    late_sent: bool,
}

impl snapflow::engine::Source for Ascending {
    type Out = (u64, u64);

    fn create_reader(
        &self,
        _: &TaskInfo,
    ) -> Result<Box<dyn snapflow::engine::SourceReader<(u64, u64)>>, BoxError> {
        Ok(Box::new(AscendingReader {
            next: 0,
            late_sent: false,
        }))
    }
}

impl snapflow::engine::SourceReader<(u64, u64)> for AscendingReader {
    fn read_batch(
        &mut self,
        batch: &mut Vec<(u64, u64)>,
        _max: usize,
    ) -> Result<snapflow::engine::ReadStatus, BoxError> {
        if self.next < 1_000 {
            for _ in 0..10 {
                batch.push((self.next % 3, self.next * 10));
                self.next += 1;
            }
            return Ok(snapflow::engine::ReadStatus::More);
        }
        self.late_sent = true;
        batch.push((0, 9_990 - 500));
        Ok(snapflow::engine::ReadStatus::Exhausted)
    }

    fn watermark(&mut self) -> Option<Timestamp> {
        (self.next > 0 && !self.late_sent).then(|| Timestamp((self.next - 1) * 10 - 1))
    }
}

#[test]
fn a_source_reader_can_generate_the_watermarks() {
    let counts = CollectSink::new();
    let results = counts.results();
    let late = CollectSink::new();
    let late_results = late.results();
    bounded("source watermarks", move || {
        let job = Job::new("source-watermarks");
        let tag: OutputTag<(u64, u64)> = OutputTag::new("late");
        let windows = job
            .source(Ascending)
            .parallelism(1)
            .with_timestamp_assigner(|r: &(u64, u64)| r.1)
            .key_by(|r: &(u64, u64)| r.0)
            .window(snapflow::operators::window::TumblingEventTimeWindows::of(
                Duration::from_millis(100),
            ))
            .side_output_late_data(&tag)
            .aggregate_with(Count, |k: &u64, w: Window, n: u64| (*k, w.start, n));
        windows.side_output(&tag).sink(late);
        windows.sink(counts);
        job.run(&JobConfig::default().with_parallelism(2)).unwrap()
    });
    // The last record's window [9400, 9500) fired long before it came: it is late, which it
    // can only be if the reader's watermarks reached the windows.
    assert_eq!(late_results.take(), vec![(0, 9_490)]);
    let mut expected: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for i in 0..1_000u64 {
        *expected
            .entry((i % 3, (i * 10 / 100 * 100) as i64))
            .or_default() += 1;
    }
    let got: BTreeMap<(u64, i64), u64> = results
        .take()
        .into_iter()
        .map(|(k, s, n)| ((k, s), n))
        .collect();
    assert_eq!(got, expected);
}
