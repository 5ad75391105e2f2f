//! Expands a validated job graph into tasks and channels, and starts one thread per task.

use crate::config::JobConfig;
use crate::error::{JobError, TaskError};
use crate::graph::{resolve, JobGraph};
use crate::id::OperatorId;
use crate::operator::TaskInfo;
use crate::runtime::factory::TaskWiring;
use crate::runtime::handle::{JobHandle, Shared, TaskThread};
use crate::runtime::metrics::{JobMetrics, OperatorMetrics, TaskCounters};
use crate::runtime::task::TaskEnv;
use petgraph::visit::EdgeRef;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Validates the graph, creates every channel and starts every task.
pub(crate) fn launch(graph: &JobGraph, config: &JobConfig) -> Result<JobHandle, JobError> {
    let resolved = resolve(graph, config)?;
    let g = &graph.graph;
    let shared = Arc::new(Shared::default());

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

    let sources: usize = g
        .node_indices()
        .filter(|&n| g[n].ports == 0)
        .map(|n| resolved.nodes[n.index()].parallelism)
        .sum();
    let source_rate = config.max_rate.map(|r| r as f64 / sources as f64);

    let mut threads = Vec::new();
    let mut operators = Vec::new();
    for (n, node_wiring) in g.node_indices().zip(wiring) {
        let node = &resolved.nodes[n.index()];
        let is_source = g[n].ports == 0;
        let counters: Vec<Arc<TaskCounters>> =
            (0..node.parallelism).map(|_| Arc::default()).collect();
        for (index, task_wiring) in node_wiring.into_iter().enumerate() {
            let info = TaskInfo {
                operator: OperatorId(n.index() as u32),
                name: node.name.clone(),
                uid: node.uid.clone(),
                index,
                parallelism: node.parallelism,
                max_parallelism: config.max_parallelism,
            };
            let env = TaskEnv {
                counters: counters[index].clone(),
                stop: shared.stop.clone(),
                batch_size: config.batch_size,
                source_rate: source_rate.filter(|_| is_source),
            };
            let factory = g[n].factory.clone();
            let thread_shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}#{}", node.name, index))
                .spawn(move || {
                    run_task(&thread_shared, move || {
                        factory.create_task(info, task_wiring, env)?.run()
                    })
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
                    drop(JobHandle::new(threads, shared, metrics(operators)));
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
            },
            counters,
        ));
    }
    Ok(JobHandle::new(threads, shared, metrics(operators)))
}

fn metrics(operators: Vec<(OperatorMetrics, Vec<Arc<TaskCounters>>)>) -> JobMetrics {
    JobMetrics {
        operators: Arc::new(operators),
    }
}

/// Runs a task body on its thread: turns a panic into an error, and on failure tells the other
/// tasks to stop and takes a sequence number so that the job can report the first failure.
fn run_task(
    shared: &Shared,
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

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
