//! Type-erased recipes that the physical plan uses to create channels and tasks.
//!
//! The job graph stores nodes and edges of many record types side by side, so it holds them
//! as trait objects; each recipe knows its concrete types and downcasts the channel ends
//! handed to it. A failed downcast would be an engine bug: the builder only ever connects an
//! edge of type `T` to a node whose input or output is `T`.

use crate::config::JobConfig;
use crate::contract::restored::RestoredState;
use crate::error::TaskError;
use crate::message::Message;
use crate::operator::{
    BinaryOperator, Committer, OperatorLifecycle, Sink, Source, SourcePosition, TaskInfo,
    UnaryOperator,
};
use crate::partition::Partitioning;
use crate::router::{EdgeWriter, KeyHasher, Output};
use crate::runtime::chained::{ChainCursor, ChainedInput};
use crate::runtime::gate::InputGate;
use crate::runtime::restore::RestorePoint;
use crate::runtime::task::{
    failed, InputHandler, InputTask, OneInput, OperatorHandler, SinkHandler, SourceTask, Task,
    TaskEnv, TwoInputs,
};
use crate::Data;
use crossbeam_channel::{bounded, Receiver};
use std::any::Any;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A channel end of some record type, typed again by the recipe that receives it.
pub(crate) type AnyEnd = Box<dyn Any + Send>;

/// The channel ends of one task: for each input port, one entry per incoming edge (a
/// `Vec<Receiver<Message<T>>>`); one entry per outgoing edge (an `EdgeWriter<T>`).
pub(crate) struct TaskWiring {
    pub inputs: Vec<Vec<AnyEnd>>,
    pub outputs: Vec<AnyEnd>,
}

/// The channels of one edge: a writer per upstream task, receivers per downstream task.
pub(crate) struct EdgeChannels {
    pub writers: Vec<AnyEnd>,
    pub readers: Vec<AnyEnd>,
}

/// Creates the channels of an edge.
pub(crate) trait EdgeFactory: Send + Sync {
    /// `targets[u]`: the downstream tasks that upstream task `u` has a channel to, in the
    /// order its writer addresses them (as the physical plan decided).
    fn connect(
        &self,
        partitioning: Partitioning,
        targets: &[Vec<usize>],
        downstream: usize,
        config: &JobConfig,
        stop: &Arc<AtomicBool>,
    ) -> EdgeChannels;
}

/// Creates one task of a node.
pub(crate) trait NodeFactory: Send + Sync {
    fn create_task(
        &self,
        info: TaskInfo,
        wiring: TaskWiring,
        env: TaskEnv,
    ) -> Result<Box<dyn Task>, TaskError>;

    /// Creates one task of a node chained after another (at `place` in its chain), as the upstream end of the chained
    /// edge into it (an `EdgeWriter` of the node's input type). Only nodes with one input
    /// port are chained (the plan decides so); others never get here.
    ///
    /// # Errors
    /// The operator failed to restore or open, or the sink writer to open.
    fn create_link(
        &self,
        _info: TaskInfo,
        _wiring: TaskWiring,
        _env: TaskEnv,
        _place: usize,
        _cursor: ChainCursor,
    ) -> Result<AnyEnd, TaskError> {
        unreachable!("only one-input nodes are chained (engine bug otherwise)")
    }

    /// The global committer of a two-phase sink node.
    fn committer(&self) -> Option<Arc<dyn Committer>> {
        None
    }

    /// For a source node: checks its input against the positions a checkpoint recorded.
    fn verify_restore(&self, _positions: &[SourcePosition]) -> Result<(), crate::BoxError> {
        Ok(())
    }

    /// For a source node: reassigns the recorded positions to `parallelism` tasks.
    fn rescale(
        &self,
        _positions: &[SourcePosition],
        _parallelism: usize,
    ) -> Result<Vec<SourcePosition>, crate::BoxError> {
        Err("not a source".into())
    }
}

/// The edge recipe for records of type `T`.
pub(crate) struct TypedEdge<T> {
    pub hasher: Option<KeyHasher<T>>,
}

impl<T: Data> EdgeFactory for TypedEdge<T> {
    fn connect(
        &self,
        partitioning: Partitioning,
        targets: &[Vec<usize>],
        downstream: usize,
        config: &JobConfig,
        stop: &Arc<AtomicBool>,
    ) -> EdgeChannels {
        // One channel per (sender task, receiver task) pair, so that a receiver can stop
        // reading exactly the senders whose barrier it already has.
        let mut readers: Vec<Vec<Receiver<Message<T>>>> =
            (0..downstream).map(|_| Vec::new()).collect();
        let mut writers: Vec<AnyEnd> = Vec::with_capacity(targets.len());
        for targets in targets {
            let mut senders = Vec::with_capacity(targets.len());
            for &d in targets {
                let (tx, rx) = bounded(config.channel_capacity);
                senders.push(tx);
                readers[d].push(rx);
            }
            writers.push(Box::new(EdgeWriter::new(
                senders,
                partitioning,
                self.hasher.clone(),
                config.batch_size,
                config.max_parallelism,
                stop.clone(),
            )));
        }
        EdgeChannels {
            writers,
            readers: readers.into_iter().map(|r| Box::new(r) as AnyEnd).collect(),
        }
    }
}

fn receivers<T: Data>(port: Vec<AnyEnd>) -> Vec<Receiver<Message<T>>> {
    port.into_iter()
        .flat_map(|end| {
            *end.downcast::<Vec<Receiver<Message<T>>>>()
                .expect("input edge type matches its node (engine bug otherwise)")
        })
        .collect()
}

fn output<T: Data>(outputs: Vec<AnyEnd>, env: &TaskEnv) -> Output<T> {
    let edges = outputs
        .into_iter()
        .map(|end| {
            *end.downcast::<EdgeWriter<T>>()
                .expect("output edge type matches its node (engine bug otherwise)")
        })
        .collect();
    Output::new(edges, env.counters.clone())
}

fn ports<const N: usize>(wiring: TaskWiring) -> ([Vec<AnyEnd>; N], Vec<AnyEnd>) {
    let inputs: [Vec<AnyEnd>; N] = wiring
        .inputs
        .try_into()
        .unwrap_or_else(|_| panic!("node has {N} input ports (engine bug otherwise)"));
    (inputs, wiring.outputs)
}

/// Gives an operator its state from the checkpoint the job resumes from, if it resumes.
fn restore_operator<O>(
    op: &mut impl OperatorLifecycle<O>,
    info: &TaskInfo,
    env: &TaskEnv,
) -> Result<(), TaskError> {
    if let Some(point) = &env.restore {
        let state = RestoredState::load(point, &info.uid, info.key_groups()).map_err(failed)?;
        op.restore(&state).map_err(failed)?;
    }
    Ok(())
}

/// Where a source task resumes: the position planned for it before the job started (the
/// one its counterpart recorded, or its share of them when the parallelism changed).
fn source_position(point: &RestorePoint, info: &TaskInfo) -> Result<SourcePosition, TaskError> {
    point
        .source_positions
        .get(&*info.uid)
        .and_then(|positions| positions.get(info.index))
        .cloned()
        .ok_or_else(|| {
            failed(
                format!(
                    "checkpoint {} has no position for source '{}' task {}",
                    point.manifest.checkpoint, info.uid, info.index
                )
                .into(),
            )
        })
}

/// Recipe of a source node.
pub(crate) struct SourceFactory<S>(pub S);

impl<S: Source> NodeFactory for SourceFactory<S> {
    fn verify_restore(&self, positions: &[SourcePosition]) -> Result<(), crate::BoxError> {
        self.0.verify_restore(positions)
    }

    fn rescale(
        &self,
        positions: &[SourcePosition],
        parallelism: usize,
    ) -> Result<Vec<SourcePosition>, crate::BoxError> {
        self.0.rescale(positions, parallelism)
    }

    fn create_task(
        &self,
        info: TaskInfo,
        wiring: TaskWiring,
        env: TaskEnv,
    ) -> Result<Box<dyn Task>, TaskError> {
        let mut reader = self.0.create_reader(&info).map_err(failed)?;
        if let Some(point) = &env.restore {
            reader
                .seek(&source_position(point, &info)?)
                .map_err(failed)?;
        }
        Ok(Box::new(SourceTask {
            reader,
            out: output(wiring.outputs, &env),
            env,
        }))
    }
}

/// Recipe of a one-input operator node.
pub(crate) struct UnaryFactory<I, O, F> {
    pub make: F,
    pub _types: PhantomData<fn(I) -> O>,
}

impl<I, O, Op, F> NodeFactory for UnaryFactory<I, O, F>
where
    I: Data,
    O: Data,
    Op: UnaryOperator<I, O>,
    F: Fn(&TaskInfo) -> Op + Send + Sync,
{
    fn create_task(
        &self,
        info: TaskInfo,
        wiring: TaskWiring,
        env: TaskEnv,
    ) -> Result<Box<dyn Task>, TaskError> {
        let ([input], outputs) = ports::<1>(wiring);
        Ok(Box::new(InputTask {
            gate: InputGate::<I, Infallible>::new(receivers(input), Vec::new()),
            handler: self.handler(&info, outputs, &env)?,
            counters: env.counters,
            faults: env.faults,
        }))
    }

    fn create_link(
        &self,
        info: TaskInfo,
        wiring: TaskWiring,
        env: TaskEnv,
        place: usize,
        cursor: ChainCursor,
    ) -> Result<AnyEnd, TaskError> {
        let handler = self.handler(&info, wiring.outputs, &env)?;
        Ok(link::<I, _>(handler, env, place, cursor))
    }
}

impl<I, O, Op, F> UnaryFactory<I, O, F>
where
    I: Data,
    O: Data,
    Op: UnaryOperator<I, O>,
    F: Fn(&TaskInfo) -> Op + Send + Sync,
{
    /// The operator of one task, restored and opened, with its output.
    #[allow(clippy::type_complexity)]
    fn handler(
        &self,
        info: &TaskInfo,
        outputs: Vec<AnyEnd>,
        env: &TaskEnv,
    ) -> Result<OperatorHandler<Op, O, OneInput<I>>, TaskError> {
        let mut op = (self.make)(info);
        restore_operator(&mut op, info, env)?;
        op.open().map_err(failed)?;
        Ok(OperatorHandler::new(
            op,
            output(outputs, env),
            env.snapshots.clone(),
        ))
    }
}

/// The upstream end of a chained edge into the task that `handler` runs.
fn link<T: Data, H: InputHandler<T, Infallible> + Send + 'static>(
    handler: H,
    env: TaskEnv,
    member: usize,
    cursor: ChainCursor,
) -> AnyEnd {
    let chained = ChainedInput {
        handler,
        counters: env.counters,
        faults: env.faults,
        member,
        cursor,
        _input: PhantomData,
    };
    Box::new(EdgeWriter::<T>::chained(
        Box::new(chained),
        env.batch_size,
        env.stop,
    ))
}

/// Recipe of a two-input operator node.
pub(crate) struct BinaryFactory<A, B, O, F> {
    pub make: F,
    pub _types: PhantomData<fn(A, B) -> O>,
}

impl<A, B, O, Op, F> NodeFactory for BinaryFactory<A, B, O, F>
where
    A: Data,
    B: Data,
    O: Data,
    Op: BinaryOperator<A, B, O>,
    F: Fn(&TaskInfo) -> Op + Send + Sync,
{
    fn create_task(
        &self,
        info: TaskInfo,
        wiring: TaskWiring,
        env: TaskEnv,
    ) -> Result<Box<dyn Task>, TaskError> {
        let mut op = (self.make)(&info);
        restore_operator(&mut op, &info, &env)?;
        op.open().map_err(failed)?;
        let ([first, second], outputs) = ports::<2>(wiring);
        Ok(Box::new(InputTask {
            gate: InputGate::new(receivers::<A>(first), receivers::<B>(second)),
            handler: OperatorHandler::<_, _, TwoInputs<A, B>>::new(
                op,
                output(outputs, &env),
                env.snapshots.clone(),
            ),
            counters: env.counters,
            faults: env.faults,
        }))
    }
}

/// Recipe of a sink node.
pub(crate) struct SinkFactory<T, S> {
    pub sink: S,
    pub _type: PhantomData<fn(T)>,
}

impl<T: Data, S: Sink<T>> NodeFactory for SinkFactory<T, S> {
    fn committer(&self) -> Option<Arc<dyn Committer>> {
        self.sink.committer()
    }

    fn create_task(
        &self,
        info: TaskInfo,
        wiring: TaskWiring,
        env: TaskEnv,
    ) -> Result<Box<dyn Task>, TaskError> {
        let writer = self.sink.create_writer(&info).map_err(failed)?;
        let ([input], _) = ports::<1>(wiring);
        Ok(Box::new(InputTask {
            gate: InputGate::<T, Infallible>::new(receivers(input), Vec::new()),
            handler: SinkHandler {
                writer,
                snapshots: env.snapshots.clone(),
            },
            counters: env.counters,
            faults: env.faults,
        }))
    }

    fn create_link(
        &self,
        info: TaskInfo,
        _wiring: TaskWiring,
        env: TaskEnv,
        place: usize,
        cursor: ChainCursor,
    ) -> Result<AnyEnd, TaskError> {
        let handler = SinkHandler {
            writer: self.sink.create_writer(&info).map_err(failed)?,
            snapshots: env.snapshots.clone(),
        };
        Ok(link::<T, _>(handler, env, place, cursor))
    }
}
