//! The web endpoint of a running job, read with a real HTTP client (a plain `TcpStream`
//! speaking HTTP/1.1): the job's graph, its counters, its checkpoints and the Prometheus text
//! agree with what the job did. The source is held at a known index until the test has read
//! everything, so the counts are exact whatever the machine's speed.

mod common;

use common::{bounded, gated, next_event, share};
use snapflow::engine::{CheckpointEvent, FailureInjector, JobError, RestartStrategy};
use snapflow::prelude::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

const RECORDS: u64 = 100_000;
const PARALLELISM: usize = 2;

/// A response: status code and body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the web view");
    stream
        .set_read_timeout(Some(common::TIMEOUT))
        .expect("read timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header and a body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, content_type, body) = http(addr, "GET", path);
    assert_eq!(status, 200, "GET {path}: {body}");
    assert_eq!(content_type, "application/json", "GET {path}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Where each source task waits: the middle of its share.
fn gate_at(task: &TaskInfo) -> u64 {
    let range = share(RECORDS, task.index, task.parallelism);
    range.start + (range.end - range.start) / 2
}

/// The value of the Prometheus sample whose series is `series`, exactly.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
        .parse()
        .expect("a number")
}

#[test]
fn the_api_and_prometheus_show_the_running_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (events_tx, events) = crossbeam_channel::unbounded();
    let (source, mut gate) = gated(GeneratorSource::new(RECORDS, |i| i), gate_at);
    let job = Job::new("web-test");
    let results = CollectSink::new();
    let collected = results.results();
    job.source(source)
        .name("numbers")
        .map(|i: u64| i % 100)
        .name("modulo")
        .key_by(|k: &u64| *k)
        .reduce(|a: u64, b: u64| a + b)
        .name("sum")
        .sink(results);
    let config = JobConfig::default()
        .with_parallelism(PARALLELISM)
        .with_checkpointing(dir.path(), Duration::from_millis(10))
        .with_checkpoint_listener(events_tx)
        .with_web("127.0.0.1:0");
    let handle = job.launch(&config).expect("launch the job");
    let addr = handle.web_addr().expect("the web view is on");
    assert!(addr.ip().is_loopback(), "{addr}");

    // Every record before the gates has passed every operator once a checkpoint triggered
    // after both sources reached their gates has completed (its barrier follows them).
    gate.wait_reached(PARALLELISM);
    let mut seen = 0;
    while seen < 2 {
        if let CheckpointEvent::Completed(_) = next_event(&events) {
            seen += 1;
        }
    }
    let before_gates: u64 = (0..PARALLELISM)
        .map(|i| {
            let r = share(RECORDS, i, PARALLELISM);
            (r.end - r.start) / 2
        })
        .sum();

    let job_doc = get_json(addr, "/api/job");
    assert_eq!(job_doc["name"], "web-test");
    assert_eq!(job_doc["state"], "RUNNING");
    let names: Vec<&str> = job_doc["operators"]
        .as_array()
        .expect("operators")
        .iter()
        .map(|o| o["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(&names[..3], ["numbers", "modulo", "sum"]);
    assert_eq!(job_doc["operators"][0]["kind"], "source");
    assert_eq!(job_doc["operators"][3]["kind"], "sink");
    assert_eq!(job_doc["operators"][2]["parallelism"], PARALLELISM);
    let partitionings: Vec<&str> = job_doc["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["partitioning"].as_str().expect("a partitioning"))
        .collect();
    assert_eq!(partitionings, ["FORWARD", "HASH", "FORWARD"]);
    assert_eq!(
        job_doc["tasks"].as_array().expect("tasks").len(),
        4 * PARALLELISM
    );

    let metrics = get_json(addr, "/api/metrics");
    let op = |name: &str| {
        metrics["operators"]
            .as_array()
            .expect("operators")
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("no operator {name}"))
            .clone()
    };
    assert_eq!(op("numbers")["records_out"], before_gates);
    assert_eq!(op("modulo")["records_in"], before_gates);
    assert_eq!(op("sum")["records_in"], before_gates);
    let per_task: u64 = op("modulo")["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["records_in"].as_u64().expect("a count"))
        .sum();
    assert_eq!(per_task, before_gates);
    assert!(op("modulo")["batches_in"].as_u64().expect("batches") > 0);

    let checkpoints = get_json(addr, "/api/checkpoints");
    let history = checkpoints["history"].as_array().expect("history");
    assert!(checkpoints["completed"].as_u64().expect("count") >= 2);
    let completed: Vec<&serde_json::Value> = history
        .iter()
        .filter(|c| c["state"] == "COMPLETED")
        .collect();
    assert!(completed.len() >= 2, "{checkpoints}");
    for c in &completed {
        assert!(c["duration_ms"].as_f64().expect("duration") >= 0.0);
        assert!(c["triggered_at_ms"].as_u64().expect("trigger time") > 0);
    }
    // `reduce` keeps state, so every checkpoint wrote some bytes.
    assert!(
        completed.iter().all(|c| c["bytes"].as_u64() > Some(0)),
        "{checkpoints}"
    );

    let (status, content_type, text) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(text.contains("# TYPE snapflow_records_out_total counter"));
    let out: f64 = (0..PARALLELISM)
        .map(|t| {
            sample(
                &text,
                &format!(
                    "snapflow_records_out_total{{job=\"web-test\",operator=\"numbers\",uid=\"0-numbers\",task=\"{t}\"}}"
                ),
            )
        })
        .sum();
    assert_eq!(out, before_gates as f64);
    assert!(
        sample(
            &text,
            "snapflow_checkpoints_completed_total{job=\"web-test\"}"
        ) >= 2.0
    );
    assert_eq!(sample(&text, "snapflow_up{job=\"web-test\"}"), 1.0);

    let (status, _, page) = http(addr, "GET", "/");
    assert_eq!(status, 200);
    assert!(
        page.contains("<html") || page.contains("<!doctype html"),
        "the page"
    );
    // Self-contained: no script, style sheet, image or font is loaded from anywhere.
    for external in ["<script src", "<link", "<img", "@import", "url(http"] {
        assert!(
            !page.contains(external),
            "the page loads something: {external}"
        );
    }
    assert_eq!(http(addr, "GET", "/nothing-here").0, 404);
    assert_eq!(http(addr, "POST", "/api/job").0, 405);

    gate.open();
    let report = bounded("join the job", move || handle.join()).expect("the job finishes");
    assert_eq!(
        report.operator("modulo").expect("modulo").records_in,
        RECORDS
    );
    assert_eq!(collected.len() as u64, RECORDS);
    // The server went with the handle, and its address is free again.
    assert!(TcpStream::connect(addr).is_err(), "{addr} still answers");
    drop(TcpListener::bind(addr).expect("the address is free"));
}

#[test]
fn an_address_in_use_fails_the_launch_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let job = Job::new("web-taken");
    job.source(GeneratorSource::new(10, |i| i))
        .sink(CollectSink::new());
    let error = job
        .run(&JobConfig::default().with_web(addr.clone()))
        .expect_err("the port is taken");
    assert!(
        matches!(&error, JobError::Web { addr: a, .. } if *a == addr),
        "{error:?}"
    );
    assert!(error.to_string().contains(&addr), "{error}");
}

#[test]
fn without_with_web_nothing_listens() {
    let job = Job::new("no-web");
    job.source(GeneratorSource::new(10, |i| i))
        .sink(CollectSink::new());
    let handle = job.launch(&JobConfig::default()).expect("launch");
    assert_eq!(handle.web_addr(), None);
    handle.join().expect("the job finishes");
}

#[test]
fn a_restarted_attempt_serves_on_the_same_address_again() {
    // A free port, given by number: every attempt must bind exactly it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let injector = FailureInjector::new().fail_task("double", 0, 100);
    let job = Job::new("web-restart");
    job.source(GeneratorSource::new(1_000, |i| i))
        .map(|i: u64| i * 2)
        .name("double")
        .sink(CollectSink::new());
    let config = JobConfig::default()
        .with_web(addr.clone())
        .with_failure_injector(injector.clone())
        .with_restart_strategy(RestartStrategy::FixedDelay {
            attempts: 1,
            delay: Duration::ZERO,
        });
    let report = job
        .run(&config)
        .expect("the second attempt binds the address again");
    assert_eq!(injector.fired(), 1);
    assert_eq!(report.restarts, 1);
}
