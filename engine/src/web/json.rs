//! The JSON documents of the web API, from plain values: no I/O, tested without a server.

use crate::contract::stats::{AbortedCheckpoint, CheckpointStats};
use crate::metrics::{OperatorMetrics, TaskMetrics};
use crate::web::view::{partitioning_name, JobState, JobView};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The history answers with at most this many checkpoints, the newest.
pub(crate) const HISTORY_LIMIT: usize = 500;

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A duration in milliseconds, with microsecond precision.
fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1e3
}

/// `GET /api/job`: the graph, its operators and tasks, and the job's state.
pub(crate) fn job(view: &JobView, state: JobState, now: SystemTime) -> Value {
    let operators: Vec<Value> = view
        .operators
        .iter()
        .map(|o| {
            json!({
                "id": o.id,
                "name": o.name,
                "uid": o.uid,
                "parallelism": o.parallelism,
                "kind": o.kind,
            })
        })
        .collect();
    let edges: Vec<Value> = view
        .edges
        .iter()
        .map(|e| {
            json!({
                "from": e.from,
                "to": e.to,
                "port": e.port,
                "partitioning": partitioning_name(e.partitioning),
            })
        })
        .collect();
    let tasks: Vec<Value> = view
        .operators
        .iter()
        .flat_map(|o| {
            (0..o.parallelism).map(move |i| {
                json!({ "operator": o.id, "index": i, "thread": format!("{}#{i}", o.name) })
            })
        })
        .collect();
    json!({
        "name": view.name,
        "state": state.name(),
        "started_at_ms": unix_ms(view.started_at),
        "uptime_ms": unix_ms(now).saturating_sub(unix_ms(view.started_at)),
        "checkpoint_interval_ms": view.checkpoint_interval.map(|d| d.as_millis() as u64),
        "operators": operators,
        "edges": edges,
        "tasks": tasks,
    })
}

fn task(t: &TaskMetrics) -> Value {
    json!({
        "index": t.index,
        "records_in": t.records_in,
        "records_out": t.records_out,
        "batches_in": t.batches_in,
        "backpressure_ms": ms(t.backpressure),
        "idle_ms": ms(t.idle),
        "cpu_ms": ms(t.cpu_time),
        "watermark": t.watermark.map(|w| w.0),
    })
}

/// `GET /api/metrics`: every operator's counters, summed and per task. Counters only grow;
/// rates are differences between two reads divided by `uptime_ms`'s difference.
pub(crate) fn metrics(operators: &[OperatorMetrics], uptime: Duration) -> Value {
    let operators: Vec<Value> = operators
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "uid": m.uid,
                "parallelism": m.parallelism,
                "records_in": m.records_in,
                "records_out": m.records_out,
                "batches_in": m.batches_in,
                "backpressure_ms": ms(m.backpressure),
                "idle_ms": ms(m.idle),
                "cpu_ms": ms(m.cpu_time),
                "watermark": m.watermark.map(|w| w.0),
                "tasks": m.tasks.iter().map(task).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "uptime_ms": ms(uptime), "operators": operators })
}

/// `GET /api/checkpoints`: counts, and the history of completed and aborted checkpoints by
/// id (the newest [`HISTORY_LIMIT`]).
pub(crate) fn checkpoints(completed: &[CheckpointStats], aborted: &[AbortedCheckpoint]) -> Value {
    let mut history: Vec<(u64, Value)> = completed
        .iter()
        .map(|c| {
            let value = json!({
                "id": c.id.0,
                "state": "COMPLETED",
                "is_final": c.is_final,
                "triggered_at_ms": unix_ms(c.triggered_at),
                "duration_ms": ms(c.duration),
                "alignment_ms": ms(c.longest_alignment),
                "sync_snapshot_ms": ms(c.longest_sync_snapshot),
                "async_snapshot_ms": ms(c.longest_async_snapshot),
                "bytes": c.bytes,
                "records_per_second": c.records_per_second,
            });
            (c.id.0, value)
        })
        .chain(aborted.iter().map(|a| {
            let value = json!({
                "id": a.id.0,
                "state": "ABORTED",
                "is_final": false,
                "triggered_at_ms": a.triggered_at.map(unix_ms),
                "aborted_at_ms": unix_ms(a.aborted_at),
                "reason": a.reason,
            });
            (a.id.0, value)
        }))
        .collect();
    history.sort_by_key(|(id, _)| *id);
    let skip = history.len().saturating_sub(HISTORY_LIMIT);
    json!({
        "completed": completed.len(),
        "aborted": aborted.len(),
        "history": history.into_iter().skip(skip).map(|(_, v)| v).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::partition::Partitioning;
    use crate::web::view::{EdgeView, OperatorView};
    use snapflow_checkpoint::CheckpointId;

    fn view() -> JobView {
        let op = |id, name: &str, parallelism, kind| OperatorView {
            id,
            name: name.into(),
            uid: format!("{id}-{name}"),
            parallelism,
            kind,
        };
        JobView {
            name: "wc".into(),
            operators: vec![op(0, "read", 1, "source"), op(1, "count", 2, "sink")],
            edges: vec![EdgeView {
                from: 0,
                to: 1,
                port: 0,
                partitioning: Partitioning::Hash,
            }],
            checkpoint_interval: Some(Duration::from_secs(1)),
            started_at: UNIX_EPOCH + Duration::from_secs(10),
        }
    }

    pub(crate) fn completed(id: u64, bytes: u64) -> CheckpointStats {
        CheckpointStats {
            id: CheckpointId(id),
            is_final: false,
            triggered_at: UNIX_EPOCH + Duration::from_millis(20_000 + id),
            duration: Duration::from_micros(1500),
            longest_alignment: Duration::from_millis(2),
            longest_sync_snapshot: Duration::from_millis(3),
            longest_async_snapshot: Duration::from_millis(4),
            bytes,
            records_per_second: 10.0,
        }
    }

    #[test]
    fn job_lists_operators_edges_and_one_task_per_parallel_instance() {
        let now = UNIX_EPOCH + Duration::from_secs(12);
        let j = job(&view(), JobState::Running, now);
        assert_eq!(j["state"], "RUNNING");
        assert_eq!(j["uptime_ms"], 2000);
        assert_eq!(j["operators"][1]["name"], "count");
        assert_eq!(j["operators"][1]["parallelism"], 2);
        assert_eq!(j["edges"][0]["partitioning"], "HASH");
        let threads: Vec<&str> = j["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["thread"].as_str().unwrap())
            .collect();
        assert_eq!(threads, ["read#0", "count#0", "count#1"]);
    }

    #[test]
    fn checkpoint_history_merges_completed_and_aborted_by_id() {
        let aborted = AbortedCheckpoint {
            id: CheckpointId(2),
            triggered_at: None,
            aborted_at: UNIX_EPOCH,
            reason: "timed out".into(),
        };
        let c = checkpoints(&[completed(1, 10), completed(3, 30)], &[aborted]);
        assert_eq!(
            (c["completed"].as_u64(), c["aborted"].as_u64()),
            (Some(2), Some(1))
        );
        let states: Vec<(u64, &str)> = c["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["id"].as_u64().unwrap(), h["state"].as_str().unwrap()))
            .collect();
        assert_eq!(states, [(1, "COMPLETED"), (2, "ABORTED"), (3, "COMPLETED")]);
        assert_eq!(c["history"][1]["reason"], "timed out");
        assert_eq!(c["history"][0]["duration_ms"], 1.5);
        assert_eq!(c["history"][2]["bytes"], 30);
        assert_eq!(c["history"][2]["async_snapshot_ms"], 4.0);
    }

    #[test]
    fn checkpoint_history_keeps_the_newest() {
        let all: Vec<CheckpointStats> = (1..=HISTORY_LIMIT as u64 + 5)
            .map(|id| completed(id, id))
            .collect();
        let c = checkpoints(&all, &[]);
        let history = c["history"].as_array().unwrap();
        assert_eq!(history.len(), HISTORY_LIMIT);
        assert_eq!(history[0]["id"], 6);
        assert_eq!(c["completed"], HISTORY_LIMIT + 5);
    }
}
