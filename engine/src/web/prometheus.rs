//! `GET /metrics`: the job's metrics in Prometheus' text exposition format (version 0.0.4),
//! from plain values. Every name starts with `snapflow_`; the README lists them all.

use crate::contract::stats::CheckpointStats;
use crate::metrics::{OperatorMetrics, TaskMetrics};
use crate::web::view::JobState;
use std::fmt::Write;
use std::time::Duration;

/// The content type Prometheus expects for this format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A per-task series: name, help, type, and how to read the value.
struct TaskSeries {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    value: fn(&TaskMetrics) -> Option<f64>,
}

const TASK_SERIES: &[TaskSeries] = &[
    TaskSeries {
        name: "snapflow_records_in_total",
        help: "Records a task received (a source: records it read).",
        kind: "counter",
        value: |t| Some(t.records_in as f64),
    },
    TaskSeries {
        name: "snapflow_records_out_total",
        help: "Records a task sent downstream, once per consuming edge (broadcast: per receiving task).",
        kind: "counter",
        value: |t| Some(t.records_out as f64),
    },
    TaskSeries {
        name: "snapflow_batches_in_total",
        help: "Input batches a task handled (a source: batches it read).",
        kind: "counter",
        value: |t| Some(t.batches_in as f64),
    },
    TaskSeries {
        name: "snapflow_backpressure_seconds_total",
        help: "Time a task was blocked sending into a full output channel.",
        kind: "counter",
        value: |t| Some(t.backpressure.as_secs_f64()),
    },
    TaskSeries {
        name: "snapflow_idle_seconds_total",
        help: "Time a task waited for input (a rate-limited source: for its next turn).",
        kind: "counter",
        value: |t| Some(t.idle.as_secs_f64()),
    },
    TaskSeries {
        name: "snapflow_cpu_seconds_total",
        help: "CPU time of a task's thread, sampled every few batches.",
        kind: "counter",
        value: |t| Some(t.cpu_time.as_secs_f64()),
    },
    TaskSeries {
        name: "snapflow_watermark_milliseconds",
        help: "A task's current combined input watermark (event time, ms); absent before the first.",
        kind: "gauge",
        value: |t| t.watermark.map(|w| w.0 as f64),
    },
];

/// Escapes a label value: backslash, double quote and line feed.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: f64) {
    let _ = writeln!(out, "{name}{{{labels}}} {value}");
}

/// The whole exposition.
pub(crate) fn render(
    job: &str,
    state: JobState,
    uptime: Duration,
    operators: &[OperatorMetrics],
    last_checkpoint: Option<&CheckpointStats>,
    completed: u64,
    aborted: u64,
) -> String {
    let mut out = String::new();
    let job_label = format!("job=\"{}\"", escape(job));
    for series in TASK_SERIES {
        header(&mut out, series.name, series.help, series.kind);
        for op in operators {
            for t in &op.tasks {
                if let Some(value) = (series.value)(t) {
                    let labels = format!(
                        "{job_label},operator=\"{}\",uid=\"{}\",task=\"{}\"",
                        escape(&op.name),
                        escape(&op.uid),
                        t.index
                    );
                    sample(&mut out, series.name, &labels, value);
                }
            }
        }
    }
    let job_series: [(&str, &str, &str, Option<f64>); 10] = [
        (
            "snapflow_up",
            "1 while the job runs (state RUNNING), 0 while it stops or after it finished.",
            "gauge",
            Some(if state == JobState::Running { 1.0 } else { 0.0 }),
        ),
        (
            "snapflow_uptime_seconds",
            "Time since the job (this attempt) started.",
            "gauge",
            Some(uptime.as_secs_f64()),
        ),
        (
            "snapflow_checkpoints_completed_total",
            "Checkpoints completed (manifest durable, output published).",
            "counter",
            Some(completed as f64),
        ),
        (
            "snapflow_checkpoints_aborted_total",
            "Checkpoints aborted (timed out, or a snapshot failed).",
            "counter",
            Some(aborted as f64),
        ),
        (
            "snapflow_last_checkpoint_id",
            "Id of the newest completed checkpoint.",
            "gauge",
            last_checkpoint.map(|c| c.id.0 as f64),
        ),
        (
            "snapflow_last_checkpoint_duration_seconds",
            "Newest completed checkpoint: from trigger to published output.",
            "gauge",
            last_checkpoint.map(|c| c.duration.as_secs_f64()),
        ),
        (
            "snapflow_last_checkpoint_alignment_seconds",
            "Newest completed checkpoint: the longest barrier alignment of a task.",
            "gauge",
            last_checkpoint.map(|c| c.longest_alignment.as_secs_f64()),
        ),
        (
            "snapflow_last_checkpoint_sync_snapshot_seconds",
            "Newest completed checkpoint: the longest snapshot on a task's own thread.",
            "gauge",
            last_checkpoint.map(|c| c.longest_sync_snapshot.as_secs_f64()),
        ),
        (
            "snapflow_last_checkpoint_async_snapshot_seconds",
            "Newest completed checkpoint: the longest snapshot file write, off the task's thread.",
            "gauge",
            last_checkpoint.map(|c| c.longest_async_snapshot.as_secs_f64()),
        ),
        (
            "snapflow_last_checkpoint_size_bytes",
            "Newest completed checkpoint: bytes of snapshot files.",
            "gauge",
            last_checkpoint.map(|c| c.bytes as f64),
        ),
    ];
    for (name, help, kind, value) in job_series {
        if let Some(value) = value {
            header(&mut out, name, help, kind);
            sample(&mut out, name, &job_label, value);
        }
    }
    out
}

/// Every metric name [`render`] can produce, for the README's list and its test.
#[cfg(test)]
pub(crate) fn names(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Timestamp;
    use crate::web::json::tests::completed;

    fn task(index: usize, records_out: u64, watermark: Option<u64>) -> TaskMetrics {
        TaskMetrics {
            index,
            records_in: 1,
            records_out,
            batches_in: 1,
            backpressure: Duration::from_millis(250),
            idle: Duration::ZERO,
            cpu_time: Duration::from_secs(2),
            watermark: watermark.map(Timestamp),
        }
    }

    fn operator(name: &str, tasks: Vec<TaskMetrics>) -> OperatorMetrics {
        OperatorMetrics {
            name: name.into(),
            uid: format!("0-{name}"),
            parallelism: tasks.len(),
            records_in: 0,
            records_out: 0,
            batches_in: 0,
            backpressure: Duration::ZERO,
            idle: Duration::ZERO,
            cpu_time: Duration::ZERO,
            watermark: None,
            tasks,
        }
    }

    #[test]
    fn records_are_counters_labelled_by_operator_and_task() {
        let ops = [operator(
            "count",
            vec![task(0, 5, None), task(1, 7, Some(99))],
        )];
        let text = render(
            "wc",
            JobState::Running,
            Duration::from_secs(3),
            &ops,
            None,
            0,
            0,
        );
        assert!(text.contains("# TYPE snapflow_records_out_total counter\n"));
        assert!(text.contains(
            "snapflow_records_out_total{job=\"wc\",operator=\"count\",uid=\"0-count\",task=\"0\"} 5\n"
        ));
        assert!(text.contains(
            "snapflow_records_out_total{job=\"wc\",operator=\"count\",uid=\"0-count\",task=\"1\"} 7\n"
        ));
        assert!(text.contains("snapflow_backpressure_seconds_total{job=\"wc\",operator=\"count\",uid=\"0-count\",task=\"1\"} 0.25\n"));
        // Only the task that has a watermark reports one.
        let watermarks: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("snapflow_watermark_milliseconds{"))
            .collect();
        assert_eq!(watermarks.len(), 1);
        assert!(watermarks[0].ends_with("task=\"1\"} 99"));
        assert!(text.contains("snapflow_up{job=\"wc\"} 1\n"));
        assert!(
            !text.contains("snapflow_last_checkpoint_id"),
            "no checkpoint yet"
        );
    }

    #[test]
    fn every_sample_line_is_well_formed_and_names_start_with_snapflow() {
        let ops = [operator("a \"quoted\"\\name\n", vec![task(0, 1, Some(1))])];
        let text = render(
            "j",
            JobState::Stopping,
            Duration::ZERO,
            &ops,
            Some(&completed(4, 8)),
            4,
            1,
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').expect(line);
            assert!(series.starts_with("snapflow_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(series.ends_with('}'), "{line}");
        }
        assert!(text.contains("operator=\"a \\\"quoted\\\"\\\\name\\n\""));
        assert!(text.contains("snapflow_last_checkpoint_size_bytes{job=\"j\"} 8\n"));
        assert!(text.contains("snapflow_up{job=\"j\"} 0\n"));
        assert!(text.contains("snapflow_checkpoints_aborted_total{job=\"j\"} 1\n"));
    }

    /// The README documents every metric name: this list must match it (see its table).
    #[test]
    fn the_readme_lists_every_metric_name() {
        let ops = [operator("x", vec![task(0, 1, Some(1))])];
        let text = render(
            "j",
            JobState::Running,
            Duration::ZERO,
            &ops,
            Some(&completed(1, 1)),
            1,
            0,
        );
        let readme = include_str!("../../../README.md");
        for name in names(&text) {
            assert!(
                readme.contains(&format!("`{name}`")),
                "README does not document {name}"
            );
        }
        assert_eq!(names(&text).len(), TASK_SERIES.len() + 10);
    }
}
