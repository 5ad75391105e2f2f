//! Expands a validated job graph into tasks and channels, and starts one thread per task plus
//! the checkpoint coordinator.

use crate::config::JobConfig;
use crate::coordinator::pending::TaskKey;
use crate::coordinator::protocol::Trigger;
use crate::coordinator::{Coordinator, StatsLog};
use crate::error::{JobError, TaskError};
use crate::graph::{resolve, JobGraph};
use crate::id::OperatorId;
use crate::operator::TaskInfo;
use crate::runtime::factory::TaskWiring;
use crate::runtime::handle::{JobHandle, Shared, TaskThread};
use crate::runtime::metrics::{JobMetrics, OperatorMetrics, TaskCounters};
use crate::runtime::prepare::{prepare, Prepared};
use crate::runtime::snapshot::SnapshotContext;
use crate::runtime::task::TaskEnv;
use crossbeam_channel::{bounded, unbounded};
use petgraph::visit::EdgeRef;
use snapflow_checkpoint::CheckpointLayout;
use std::convert::Infallible;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Validates the graph, creates every channel and starts every task and the coordinator.
pub(crate) fn launch(
    job: &str,
    graph: &JobGraph,
    config: &JobConfig,
) -> Result<JobHandle, JobError> {
    let resolved = resolve(graph, config)?;
    let g = &graph.graph;
    let shared = Arc::new(Shared::default());

    let Prepared {
        claims,
        checkpoints,
        restore,
        first_checkpoint,
        graph_fingerprint,
        operator_uids,
        committers,
    } = prepare(job, graph, &resolved, config)?;
    let restored_from = restore.as_ref().map(|r| r.manifest.checkpoint);
    let layout = checkpoints
        .as_ref()
        .map(|(c, _)| Arc::new(CheckpointLayout::new(c.dir.clone())));
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .thread_name(|i| format!("snapflow-snapshot-{i}"))
            .build()
            .map_err(|e| JobError::Spawn(std::io::Error::other(e)))?,
    );
    let (reports_tx, reports_rx) = unbounded();
    let settled = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let (alive_tx, alive_rx) = bounded::<Infallible>(0);

    // wiring[node][task]: the channel ends each task will own.
    let mut wiring: Vec<Vec<TaskWiring>> = g
        .node_indices()
        .map(|n| {
            (0..resolved.nodes[n.index()].parallelism)
                .map(|_| TaskWiring {
                    inputs: (0..g[n].ports).map(|_| Vec::new()).collect(),
                    outputs: Vec::new(),
                })
                .collect()
        })
        .collect();
    for edge in g.edge_references() {
        let (from, to) = (edge.source().index(), edge.target().index());
        let channels = edge.weight().factory.connect(
            resolved.edges[edge.id().index()],
            resolved.nodes[from].parallelism,
            resolved.nodes[to].parallelism,
            config,
            &shared.stop,
        );
        for (task, writer) in channels.writers.into_iter().enumerate() {
            wiring[from][task].outputs.push(writer);
        }
        let port = edge.weight().port;
        for (task, reader) in channels.readers.into_iter().enumerate() {
            wiring[to][task].inputs[port].push(reader);
        }
    }

    if restore.as_ref().is_some_and(|r| r.manifest.is_final) {
        // The job had finished: its last output is published now (above), and there is
        // nothing left to run.
        for committer in &committers {
            committer.close(false);
        }
        return Ok(JobHandle::already_finished(restored_from).holding(claims));
    }

    let source_tasks: usize = g
        .node_indices()
        .filter(|&n| g[n].ports == 0)
        .map(|n| resolved.nodes[n.index()].parallelism)
        .sum();
    let source_rate = config.max_rate.map(|r| r as f64 / source_tasks as f64);

    let mut threads = Vec::new();
    let mut operators = Vec::new();
    let mut all_tasks: Vec<TaskKey> = Vec::new();
    let mut sources = Vec::new();
    let mut source_counters = Vec::new();
    for (n, node_wiring) in g.node_indices().zip(wiring) {
        let node = &resolved.nodes[n.index()];
        let is_source = g[n].ports == 0;
        let counters: Vec<Arc<TaskCounters>> =
            (0..node.parallelism).map(|_| Arc::default()).collect();
        for (index, task_wiring) in node_wiring.into_iter().enumerate() {
            let key = (n.index(), index);
            all_tasks.push(key);
            let triggers = is_source.then(|| {
                let (tx, rx) = unbounded::<Trigger>();
                sources.push((key, tx));
                source_counters.push(counters[index].clone());
                rx
            });
            let info = TaskInfo {
                operator: OperatorId(n.index() as u32),
                name: node.name.clone(),
                uid: node.uid.clone(),
                index,
                parallelism: node.parallelism,
                max_parallelism: config.max_parallelism,
                first_checkpoint,
            };
            let env = TaskEnv {
                counters: counters[index].clone(),
                stop: shared.stop.clone(),
                batch_size: config.batch_size,
                source_rate: source_rate.filter(|_| is_source),
                snapshots: SnapshotContext {
                    task: key,
                    uid: node.uid.clone(),
                    index: index as u32,
                    reports: reports_tx.clone(),
                    layout: layout.clone(),
                    pool: pool.clone(),
                    settled: settled.clone(),
                    completed: completed.clone(),
                    notified: 0,
                    alive: alive_tx.clone(),
                },
                triggers,
                restore: restore.clone(),
                faults: config.injector.for_task(&node.name, index),
            };
            let factory = g[n].factory.clone();
            let thread_shared = shared.clone();
            let task_counters = env.counters.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}#{}", node.name, index))
                .spawn(move || {
                    let result = run_task(&thread_shared, move || {
                        factory.create_task(info, task_wiring, env)?.run()
                    });
                    task_counters.record_thread_cpu_time();
                    result
                });
            match spawned {
                Ok(join) => threads.push(TaskThread {
                    name: node.name.clone(),
                    uid: node.uid.clone(),
                    index,
                    parallelism: node.parallelism,
                    join: Some(join),
                }),
                Err(e) => {
                    // Dropping the handle stops and joins what was started; the channel ends of
                    // tasks never started are dropped here, which unblocks their neighbours.
                    drop(JobHandle::new(
                        threads,
                        None,
                        None,
                        shared,
                        metrics(operators),
                        StatsLog::default(),
                    ));
                    return Err(JobError::Spawn(e));
                }
            }
        }
        operators.push((
            OperatorMetrics {
                name: node.name.to_string(),
                uid: node.uid.to_string(),
                parallelism: node.parallelism,
                records_in: 0,
                records_out: 0,
                cpu_time: std::time::Duration::ZERO,
            },
            counters,
        ));
    }
    // Only tasks and snapshot writers hold report senders now: when they are all gone, the
    // coordinator knows the job is over.
    drop(reports_tx);
    drop(alive_tx);

    let stats = StatsLog::default();
    let coordinator = Coordinator {
        job: job.to_owned(),
        graph_fingerprint,
        operators: operator_uids,
        checkpoints,
        first_id: first_checkpoint,
        tasks: all_tasks,
        sources,
        source_counters,
        reports: reports_rx,
        committers,
        stop: shared.stop.clone(),
        stop_requested: shared.stop_requested.clone(),
        stats: stats.clone(),
        listener: config.listener.clone(),
        settled,
        completed,
    };
    let coordinator = std::thread::Builder::new()
        .name("snapflow-coordinator".into())
        .spawn(move || coordinator.run());
    match coordinator {
        Ok(join) => Ok(JobHandle::new(
            threads,
            Some(join),
            Some(alive_rx),
            shared,
            metrics(operators),
            stats,
        )
        .resumed_from(restored_from)
        .holding(claims)),
        Err(e) => {
            drop(JobHandle::new(
                threads,
                None,
                Some(alive_rx),
                shared,
                metrics(operators),
                stats,
            ));
            Err(JobError::Spawn(e))
        }
    }
}

fn metrics(operators: Vec<(OperatorMetrics, Vec<Arc<TaskCounters>>)>) -> JobMetrics {
    JobMetrics {
        operators: Arc::new(operators),
    }
}

/// Runs a task body on its thread: turns a panic into an error, and on failure tells the other
/// tasks to stop and takes a sequence number so that the job can report the first failure.
fn run_task(
    shared: &crate::runtime::handle::Shared,
    body: impl FnOnce() -> Result<(), TaskError>,
) -> Result<(), (u64, TaskError)> {
    // The task's channel ends are dropped while unwinding, inside `catch_unwind`: neighbours
    // see the disconnect and stop too, so a panic cannot leave a thread blocked.
    let result = catch_unwind(AssertUnwindSafe(body))
        .unwrap_or_else(|payload| Err(TaskError::Panicked(panic_message(payload.as_ref()))));
    result.map_err(|error| {
        shared.stop.store(true, Ordering::Relaxed);
        (shared.failures.fetch_add(1, Ordering::Relaxed), error)
    })
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
