//! Launches a job: plans it (see [`physical`](crate::runtime::physical)), creates the planned
//! channels and starts one thread per planned chain of tasks plus the checkpoint coordinator.

use crate::config::JobConfig;
use crate::contract::stats::StatsLog;
use crate::coordinator::pending::TaskKey;
use crate::coordinator::protocol::{TaskReport, Trigger};
use crate::coordinator::Coordinator;
use crate::error::{panic_message, JobError, TaskError};
use crate::graph::{resolve, JobGraph};
use crate::id::OperatorId;
use crate::metrics::{JobMetrics, OperatorInfo, TaskCounters};
use crate::operator::TaskInfo;
use crate::runtime::chain::{self, ChainMember, ChainedTo};
use crate::runtime::chained::ChainCursor;
use crate::runtime::factory::TaskWiring;
use crate::runtime::handle::{JobHandle, TaskName, TaskThread};
use crate::runtime::physical::{plan, GraphShape, PhysicalPlan, PlannedRestore, PlannedTask};
use crate::runtime::prepare::{prepare, Prepared};
use crate::runtime::restore::RestorePoint;
use crate::runtime::snapshot::{SnapshotContext, SnapshotHistory};
use crate::runtime::task::TaskEnv;
use crate::shared::Shared;
use crate::web::view::{EdgeView, JobView, OperatorView};
use crate::web::{BoundServer, WebState};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use petgraph::graph::NodeIndex;
use snapflow_checkpoint::CheckpointLayout;
use std::collections::HashMap;
use std::convert::Infallible;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Validates and plans the graph, creates every channel and starts every task and the
/// coordinator.
pub(crate) fn launch(
    job: &str,
    graph: &JobGraph,
    config: &JobConfig,
) -> Result<JobHandle, JobError> {
    // The environment's defaults are read once, here: a bad value refuses the job at start.
    let config = &config.with_environment_defaults()?;
    let resolved = resolve(graph, config)?;
    // Bound first: a bad address fails the launch before anything is claimed or started.
    let web = config.web.as_deref().map(BoundServer::bind).transpose()?;
    let shared = Arc::new(Shared::default());
    let prepared = prepare(job, graph, &resolved, config)?;
    let manifest = prepared.restore.as_ref().map(|r| &r.manifest);
    let restored_from = manifest.map(|m| m.checkpoint);
    let shape = GraphShape::of(graph);
    let plan = plan(
        &shape,
        &resolved,
        config,
        manifest,
        prepared.first_checkpoint,
    );
    let (runtime, reports_rx, alive_rx) = TaskRuntime::new(&prepared)?;
    let wiring = connect(graph, &shape, &plan, config, &shared.stop);
    if plan.finished {
        // The job had finished: its last output is published now (by `prepare`), and there is
        // nothing left to run.
        for committer in &prepared.committers {
            committer.close(false);
        }
        return Ok(JobHandle::already_finished(restored_from).holding(prepared.claims));
    }

    let counters: Vec<Arc<TaskCounters>> = plan.tasks.iter().map(|_| Arc::default()).collect();
    chain_counters(&shape, &plan, &counters);
    let stats = StatsLog::default();
    let metrics = metrics(&plan, &counters, &stats);
    let web = match web {
        Some(bound) => Some(bound.serve(WebState {
            view: job_view(job, &shape, &plan, config),
            metrics: metrics.clone(),
            stats: stats.clone(),
            shared: shared.clone(),
            started: std::time::Instant::now(),
        })?),
        None => None,
    };
    let (threads, sources) =
        match spawn_tasks(graph, &plan, wiring, &counters, &runtime, config, &shared) {
            Ok(started) => started,
            Err((threads, e)) => {
                // Dropping the handle stops and joins what was started; the channel ends of
                // tasks never started are dropped by now, which unblocks their neighbours.
                drop(JobHandle::new(threads, None, None, shared, metrics, stats));
                return Err(JobError::Spawn(e));
            }
        };
    let (settled, completed) = (runtime.settled.clone(), runtime.completed.clone());
    // Only tasks and snapshot writers hold report senders now: when they are all gone, the
    // coordinator knows the job is over.
    drop(runtime);

    let coordinator = Coordinator {
        job: job.to_owned(),
        graph_fingerprint: prepared.graph_fingerprint,
        operators: prepared.operator_uids,
        checkpoints: prepared.checkpoints,
        first_id: plan.first_checkpoint,
        tasks: plan.tasks.iter().map(|t| t.key).collect(),
        source_counters: sources.iter().map(|(_, _, c)| c.clone()).collect(),
        sources: sources.into_iter().map(|(key, tx, _)| (key, tx)).collect(),
        reports: reports_rx,
        committers: prepared.committers,
        stop: shared.stop.clone(),
        stop_requested: shared.stop_requested.clone(),
        savepoints: shared.savepoints.clone(),
        stats: stats.clone(),
        listener: config.listener.clone(),
        settled,
        completed,
        crashes: config.injector.clone(),
    };
    let spawned = std::thread::Builder::new()
        .name("snapflow-coordinator".into())
        .spawn(move || coordinator.run());
    let (join, result) = match spawned {
        Ok(join) => (Some(join), Ok(())),
        Err(e) => (None, Err(JobError::Spawn(e))),
    };
    let handle = JobHandle::new(threads, join, Some(alive_rx), shared, metrics, stats);
    // On failure, dropping the handle stops and joins the tasks.
    result.map(|()| {
        handle
            .resumed_from(restored_from)
            .serving(web)
            .holding(prepared.claims)
    })
}

/// What every task of a job shares besides the stop flags: the checkpoint store's layout, the
/// snapshot pool, the coordinator's report channel and the checkpoint progress counters.
struct TaskRuntime {
    reports: Sender<TaskReport>,
    layout: Option<Arc<CheckpointLayout>>,
    pool: Arc<rayon::ThreadPool>,
    settled: Arc<AtomicU64>,
    completed: Arc<AtomicU64>,
    alive: Sender<Infallible>,
    restore: Option<Arc<RestorePoint>>,
}

impl TaskRuntime {
    /// The runtime and the receiving ends of its report and liveness channels.
    #[allow(clippy::type_complexity)]
    fn new(
        prepared: &Prepared,
    ) -> Result<(TaskRuntime, Receiver<TaskReport>, Receiver<Infallible>), JobError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .thread_name(|i| format!("snapflow-snapshot-{i}"))
            .build()
            .map_err(|e| JobError::Spawn(std::io::Error::other(e)))?;
        let (reports, reports_rx) = unbounded();
        let (alive, alive_rx) = bounded::<Infallible>(0);
        let runtime = TaskRuntime {
            reports,
            layout: prepared
                .checkpoints
                .as_ref()
                .map(|(c, _)| Arc::new(CheckpointLayout::new(c.dir.clone()))),
            pool: Arc::new(pool),
            settled: Arc::default(),
            completed: Arc::default(),
            alive,
            restore: prepared.restore.clone(),
        };
        Ok((runtime, reports_rx, alive_rx))
    }

    /// What a restored task's snapshots may build on: the snapshot its own index wrote in the
    /// restored checkpoint, when the operator runs at the parallelism that wrote it (then it
    /// owns the same key groups). At another parallelism, and after a start from a savepoint
    /// (whose files are not the job's to build on), its first snapshot is full.
    fn restored_history(&self, task: &PlannedTask) -> SnapshotHistory {
        let (Some(point), PlannedRestore::State { snapshots, .. }) = (&self.restore, &task.restore)
        else {
            return SnapshotHistory::default();
        };
        if point.from_savepoint {
            return SnapshotHistory::default();
        }
        let same_tasks = snapshots.len() == task.parallelism
            && snapshots.iter().enumerate().all(|(i, &t)| t as usize == i);
        let entry = point.manifest.snapshot(&task.uid, task.index as u32);
        match entry {
            Some(entry) if same_tasks => {
                SnapshotHistory::restored(point.manifest.checkpoint, entry.clone())
            }
            _ => SnapshotHistory::default(),
        }
    }

    /// The environment of a planned task.
    fn env(
        &self,
        task: &PlannedTask,
        counters: Arc<TaskCounters>,
        triggers: Option<Receiver<Trigger>>,
        config: &JobConfig,
        shared: &Shared,
    ) -> TaskEnv {
        TaskEnv {
            counters,
            stop: shared.stop.clone(),
            batch_size: config.batch_size,
            source_rate: task.source_rate,
            snapshots: SnapshotContext {
                task: task.key,
                uid: task.uid.clone(),
                index: task.index as u32,
                reports: self.reports.clone(),
                layout: self.layout.clone(),
                pool: self.pool.clone(),
                settled: self.settled.clone(),
                completed: self.completed.clone(),
                notified: 0,
                alive: self.alive.clone(),
                incremental: config.incremental(),
                crashes: config.injector.clone(),
                history: Arc::new(Mutex::new(self.restored_history(task))),
            },
            triggers,
            // The plan decided whether the task restores; the restore point holds the files.
            restore: match task.restore {
                PlannedRestore::Fresh => None,
                _ => self.restore.clone(),
            },
            faults: config.injector.for_task(&task.name, task.index),
        }
    }
}

/// Creates the planned channels, edge by edge: the channel ends each task will own, in plan
/// order.
fn connect(
    graph: &JobGraph,
    shape: &GraphShape,
    plan: &PhysicalPlan,
    config: &JobConfig,
    stop: &Arc<AtomicBool>,
) -> Vec<TaskWiring> {
    let mut wiring: Vec<TaskWiring> = plan
        .tasks
        .iter()
        .map(|t| TaskWiring {
            inputs: (0..t.ports).map(|_| Vec::new()).collect(),
            outputs: Vec::new(),
        })
        .collect();
    for (e, (edge, spec)) in shape
        .edges
        .iter()
        .zip(graph.graph.edge_weights())
        .enumerate()
    {
        let upstream = plan.tasks[plan.position((edge.from, 0))].parallelism;
        let downstream = plan.tasks[plan.position((edge.to, 0))].parallelism;
        if plan.chained[e] {
            // Task `i` calls task `i` of the next node on its own thread: no channel.
            for task in 0..upstream {
                let to = plan.position((edge.to, task));
                wiring[plan.position((edge.from, task))]
                    .outputs
                    .push(Box::new(ChainedTo(to)));
            }
            continue;
        }
        let partitioning = plan.partitioning(e);
        let channels = spec.factory.connect(
            partitioning,
            &plan.targets(e, upstream),
            downstream,
            config,
            stop,
        );
        for (task, writer) in channels.writers.into_iter().enumerate() {
            wiring[plan.position((edge.from, task))]
                .outputs
                .push(writer);
        }
        for (task, reader) in channels.readers.into_iter().enumerate() {
            wiring[plan.position((edge.to, task))].inputs[edge.port].push(reader);
        }
    }
    wiring
}

/// Tells each task's counters which tasks are chained directly after it, so that its CPU time
/// (measured with theirs) is reported without theirs.
fn chain_counters(shape: &GraphShape, plan: &PhysicalPlan, counters: &[Arc<TaskCounters>]) {
    let mut chained: Vec<Vec<Arc<TaskCounters>>> = vec![Vec::new(); counters.len()];
    for (edge, _) in shape.edges.iter().zip(&plan.chained).filter(|(_, &c)| c) {
        let parallelism = plan.tasks[plan.position((edge.from, 0))].parallelism;
        for task in 0..parallelism {
            let to = plan.position((edge.to, task));
            chained[plan.position((edge.from, task))].push(counters[to].clone());
        }
    }
    for (counters, chained) in counters.iter().zip(chained) {
        counters.set_chained(chained);
    }
}

/// A source task's key, trigger sender and counters, for the coordinator.
type SourceEnds = (TaskKey, Sender<Trigger>, Arc<TaskCounters>);

/// Starts a thread for every planned chain, in plan order; on failure, returns the threads
/// started so far and the error.
#[allow(clippy::type_complexity)]
fn spawn_tasks(
    graph: &JobGraph,
    plan: &PhysicalPlan,
    wiring: Vec<TaskWiring>,
    counters: &[Arc<TaskCounters>],
    runtime: &TaskRuntime,
    config: &JobConfig,
    shared: &Arc<Shared>,
) -> Result<(Vec<TaskThread>, Vec<SourceEnds>), (Vec<TaskThread>, std::io::Error)> {
    let mut threads = Vec::new();
    let mut sources = Vec::new();
    let mut wiring: Vec<Option<TaskWiring>> = wiring.into_iter().map(Some).collect();
    for chain in &plan.chains {
        let mut members = HashMap::with_capacity(chain.len());
        for (place, &at) in chain.iter().enumerate() {
            let task = &plan.tasks[at];
            let triggers = task.is_source().then(|| {
                let (tx, rx) = unbounded::<Trigger>();
                sources.push((task.key, tx, counters[at].clone()));
                rx
            });
            let env = runtime.env(task, counters[at].clone(), triggers, config, shared);
            let member = ChainMember {
                factory: graph.graph[NodeIndex::new(task.key.0)].factory.clone(),
                info: task_info(plan, task, config),
                wiring: wiring[at].take().expect("a task is in one chain"),
                env,
                member: place,
            };
            members.insert(at, member);
        }
        match spawn_chain(plan, chain, members, &counters[chain[0]], shared) {
            Ok(thread) => threads.push(thread),
            Err(e) => return Err((threads, e)),
        }
    }
    Ok((threads, sources))
}

/// What a planned task tells its operator about itself.
fn task_info(plan: &PhysicalPlan, task: &PlannedTask, config: &JobConfig) -> TaskInfo {
    TaskInfo {
        operator: OperatorId(task.key.0 as u32),
        name: task.name.clone(),
        uid: task.uid.clone(),
        index: task.index,
        parallelism: task.parallelism,
        max_parallelism: config.max_parallelism,
        first_checkpoint: plan.first_checkpoint,
    }
}

/// Starts the thread of a planned chain, which builds the chain's tasks and runs its head.
fn spawn_chain(
    plan: &PhysicalPlan,
    chain: &[usize],
    members: HashMap<usize, ChainMember>,
    head_counters: &Arc<TaskCounters>,
    shared: &Arc<Shared>,
) -> std::io::Result<TaskThread> {
    let head = &plan.tasks[chain[0]];
    let names = chain
        .iter()
        .map(|&at| {
            let t = &plan.tasks[at];
            TaskName {
                name: t.name.clone(),
                uid: t.uid.clone(),
                index: t.index,
                parallelism: t.parallelism,
            }
        })
        .collect();
    let cursor = ChainCursor::default();
    let thread_cursor = cursor.clone();
    let thread_shared = shared.clone();
    let task_counters = head_counters.clone();
    let head_at = chain[0];
    let join = std::thread::Builder::new()
        .name(format!("{}#{}", head.name, head.index))
        .spawn(move || {
            let result = run_task(&thread_shared, move || {
                chain::build(head_at, members, &thread_cursor)?.run()
            });
            task_counters.record_thread_cpu_time();
            result
        })?;
    Ok(TaskThread {
        members: names,
        cursor,
        join: Some(join),
    })
}

/// The job's graph as the web view shows it: operators in plan order, edges by index.
fn job_view(job: &str, shape: &GraphShape, plan: &PhysicalPlan, config: &JobConfig) -> JobView {
    let operators = plan
        .tasks
        .iter()
        .filter(|t| t.index == 0)
        .map(|t| {
            let node = t.key.0;
            let kind = if t.is_source() {
                "source"
            } else if shape.edges.iter().all(|e| e.from != node) {
                "sink"
            } else {
                "operator"
            };
            OperatorView {
                id: node,
                name: t.name.to_string(),
                uid: t.uid.to_string(),
                parallelism: t.parallelism,
                kind,
            }
        })
        .collect();
    let edges = shape
        .edges
        .iter()
        .enumerate()
        .map(|(e, edge)| EdgeView {
            from: edge.from,
            to: edge.to,
            port: edge.port,
            partitioning: plan.partitioning(e),
        })
        .collect();
    JobView {
        name: job.to_owned(),
        operators,
        edges,
        checkpoint_interval: config.checkpoint.as_ref().map(|c| c.interval),
        started_at: std::time::SystemTime::now(),
    }
}

/// The job's metrics: each operator's tasks' counters, in plan order.
fn metrics(plan: &PhysicalPlan, counters: &[Arc<TaskCounters>], stats: &StatsLog) -> JobMetrics {
    let operators = plan
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.index == 0)
        .map(|(at, t)| {
            (
                OperatorInfo {
                    name: t.name.to_string(),
                    uid: t.uid.to_string(),
                    parallelism: t.parallelism,
                },
                counters[at..at + t.parallelism].to_vec(),
            )
        })
        .collect();
    JobMetrics {
        operators: Arc::new(operators),
        checkpoints: stats.clone(),
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
