//! The loops that tasks run: one for sources, one shared by every task that has inputs.

use crate::coordinator::protocol::Trigger;
use crate::error::{BoxError, TaskError};
use crate::inject::TaskFaults;
use crate::message::{Message, Timestamp};
use crate::metrics::{TaskCounters, WaitClock};
use crate::operator::{
    BinaryOperator, OperatorLifecycle, ReadStatus, SinkWriter, SourceReader, UnaryOperator,
};
use crate::router::Output;
use crate::runtime::gate::{GateEvent, InputGate};
use crate::runtime::restore::RestorePoint;
use crate::runtime::snapshot::SnapshotContext;
use crate::{Data, FrozenSnapshot};
use crossbeam_channel::{Receiver, TryRecvError};
use snapflow_checkpoint::CheckpointId;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use std::time::{Duration, Instant};

/// One parallel instance of an operator, ready to run on its own thread.
pub(crate) trait Task: Send {
    /// Runs until end-of-stream or failure.
    fn run(self: Box<Self>) -> Result<(), TaskError>;
}

/// What every task gets from the runtime besides its channels.
#[derive(Clone)]
pub(crate) struct TaskEnv {
    pub counters: Arc<TaskCounters>,
    /// Set when the job is cancelled or another task failed; sources stop at the next batch.
    pub stop: Arc<AtomicBool>,
    pub batch_size: usize,
    /// Records per second for this task when the job is rate-limited.
    pub source_rate: Option<f64>,
    pub snapshots: SnapshotContext,
    /// Checkpoint triggers from the coordinator; source tasks only.
    pub triggers: Option<Receiver<Trigger>>,
    /// The checkpoint the job resumes from, if any.
    pub restore: Option<Arc<RestorePoint>>,
    /// Failures to inject into this task.
    pub faults: TaskFaults,
}

/// Reads a source and sends what it reads downstream.
pub(crate) struct SourceTask<T> {
    pub reader: Box<dyn SourceReader<T>>,
    pub out: Output<T>,
    pub env: TaskEnv,
}

impl<T: Data> Task for SourceTask<T> {
    fn run(self: Box<Self>) -> Result<(), TaskError> {
        let SourceTask {
            mut reader,
            mut out,
            mut env,
        } = *self;
        let triggers = env
            .triggers
            .clone()
            .expect("source tasks get a trigger channel (engine bug otherwise)");
        // Under a rate limit, read small batches (about 10 ms worth) so that the output is
        // paced smoothly rather than in bursts of a whole batch.
        let max = match env.source_rate {
            Some(rate) => ((rate / 100.0) as usize).clamp(1, env.batch_size),
            None => env.batch_size,
        };
        let mut pacer = env.source_rate.map(Pacer::new);
        let mut watermark: Option<Timestamp> = None;
        let mut idle = false;
        loop {
            if env.stop.load(Ordering::Relaxed) {
                return Err(TaskError::Cancelled);
            }
            if let Some(id) = env.snapshots.newly_completed() {
                reader.notify_checkpoint_complete(id)?;
            }
            out.notify_chained()?;
            // Operators chained to the source may have processing-time timers.
            if let Some(due) = out.chained_processing_time() {
                let now = now_millis();
                if due <= now {
                    out.fire_chained_processing_time(now)?;
                }
            }
            // Triggers are taken between batches: the position recorded is exactly after the
            // last record sent before the barrier.
            match triggers.try_recv() {
                Ok(trigger) => {
                    if emit_barrier(trigger, reader.as_ref(), &mut out, &env)? {
                        return Ok(());
                    }
                    continue;
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return Err(TaskError::Cancelled),
            }
            let mut batch = Vec::with_capacity(max);
            let status = reader.read_batch(&mut batch, max)?;
            let read = batch.len();
            if read > 0 {
                env.counters.batch_in(read as u64);
            }
            env.faults
                .check(env.counters.records_in(), env.snapshots.completed_id());
            out.push_batch(batch);
            // A reader that generates watermarks (per split) has them follow its records.
            if let Some(wm) = reader.watermark() {
                if watermark.is_none_or(|w| w < wm) {
                    watermark = Some(wm);
                    out.emit_watermark(wm);
                }
            }
            if read > 0 {
                idle = false; // downstream counts this split again from its records on
            } else if !idle && reader.is_idle() {
                idle = true;
                out.mark_idle();
            }
            out.check()?;
            if status == ReadStatus::Exhausted {
                break;
            }
            if read == 0 {
                // The source has nothing right now: send what is buffered rather than hold
                // it back until the next record, barrier or end.
                out.flush()?;
            }
            if let Some(wait) = pacer.as_mut().and_then(|p| p.wait_after(read)) {
                out.flush()?;
                std::thread::sleep(wait);
                env.counters.add_idle(wait);
            }
        }
        // Exhausted: no earlier event follows, so the watermark is the end of time and every
        // event-time window and timer downstream of this source alone may fire now. Still
        // part of the job: keep answering triggers (with the final position) until the final
        // checkpoint, so that every checkpoint holds every task.
        out.emit_watermark(Timestamp::MAX);
        out.flush()?;
        env.snapshots.exhausted();
        loop {
            // Operators chained to the source still fire their processing-time timers while
            // it waits for the next trigger.
            let trigger = match out.chained_processing_time() {
                None => triggers.recv().map_err(|_| TaskError::Cancelled)?,
                Some(due) => {
                    let wait = Duration::from_millis(due.saturating_sub(now_millis()).max(1));
                    match triggers.recv_timeout(wait) {
                        Ok(trigger) => trigger,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                            out.fire_chained_processing_time(now_millis())?;
                            out.flush()?;
                            continue;
                        }
                        Err(_) => return Err(TaskError::Cancelled),
                    }
                }
            };
            out.notify_chained()?;
            if emit_barrier(trigger, reader.as_ref(), &mut out, &env)? {
                return Ok(());
            }
        }
    }
}

/// Emits the barrier of `trigger` (for the final checkpoint: end-of-stream, which is its
/// barrier) and acknowledges it. Returns whether the source is done.
fn emit_barrier<T: Data>(
    trigger: Trigger,
    reader: &dyn SourceReader<T>,
    out: &mut Output<T>,
    env: &TaskEnv,
) -> Result<bool, TaskError> {
    let id = trigger.id;
    if trigger.is_final {
        out.send_control(|| Message::End(id))?;
    } else {
        out.send_control(|| Message::Barrier(id))?;
    }
    env.snapshots.checkpoint_source(id, reader.position())?;
    Ok(trigger.is_final)
}

/// Spaces a source's output to a rate.
struct Pacer {
    per_second: f64,
    started: Instant,
    emitted: u64,
}

impl Pacer {
    fn new(per_second: f64) -> Self {
        Pacer {
            per_second,
            started: Instant::now(),
            emitted: 0,
        }
    }

    /// How long to wait after emitting `n` more records to stay at the rate.
    fn wait_after(&mut self, n: usize) -> Option<Duration> {
        self.emitted += n as u64;
        let due = Duration::from_secs_f64(self.emitted as f64 / self.per_second);
        due.checked_sub(self.started.elapsed())
    }
}

/// What a task with inputs does with each event of its input gate.
pub(crate) trait InputHandler<A, B> {
    fn first(&mut self, batch: Vec<A>) -> Result<(), TaskError>;
    fn second(&mut self, batch: Vec<B>) -> Result<(), TaskError>;
    fn watermark(&mut self, watermark: Timestamp) -> Result<(), TaskError>;
    /// Every live input is idle.
    fn idle(&mut self) -> Result<(), TaskError>;
    /// When the operator next wants `processing_time` (ms since the Unix epoch), if ever.
    fn next_processing_time(&self) -> Option<u64>;
    /// The time `next_processing_time` asked for has come: fire what is due at `now`.
    fn processing_time(&mut self, now: u64) -> Result<(), TaskError>;
    fn barrier(&mut self, id: CheckpointId, alignment: Duration) -> Result<(), TaskError>;
    /// Every input ended: the barrier of the final checkpoint `checkpoint`.
    fn end(&mut self, checkpoint: CheckpointId) -> Result<(), TaskError>;
    /// Send partly filled output batches: the task is about to wait for input.
    fn flush(&mut self) -> Result<(), TaskError>;
    /// Tell the operator about checkpoints completed since the last call.
    fn notify_completed(&mut self) -> Result<(), TaskError>;
    /// The newest completed checkpoint of this attempt (0 for none).
    fn completed_id(&self) -> u64;
}

/// A task with inputs: its gate and what handles the gate's events.
pub(crate) struct InputTask<A, B, H> {
    pub gate: InputGate<A, B>,
    pub handler: H,
    pub counters: Arc<TaskCounters>,
    pub faults: TaskFaults,
}

impl<A: Send, B: Send, H: InputHandler<A, B> + Send> Task for InputTask<A, B, H> {
    fn run(self: Box<Self>) -> Result<(), TaskError> {
        let InputTask {
            mut gate,
            mut handler,
            counters,
            faults,
        } = *self;
        let mut waiting = WaitClock::new();
        loop {
            // Only an operator with a processing-time timer makes the loop read the clock.
            let deadline = match handler.next_processing_time() {
                None => None,
                Some(due) => {
                    let mut now = now_millis();
                    if due <= now {
                        handler.processing_time(now)?;
                        now = now_millis();
                    }
                    // Input is read between firings even when the operator still wants one
                    // (its clock may run behind the system's): then wait at least 1 ms.
                    handler.next_processing_time().map(|due| {
                        Instant::now() + Duration::from_millis(due.saturating_sub(now).max(1))
                    })
                }
            };
            let event = gate.next_until(deadline, || {
                handler.flush()?;
                counters.record_thread_cpu_time();
                waiting.start(&counters);
                Ok(())
            })?;
            waiting.stop_idle(&counters);
            let Some(event) = event else {
                continue; // the deadline passed: the next round fires the timer
            };
            match event {
                GateEvent::First(batch) => {
                    counters.batch_in(batch.len() as u64);
                    faults.check(counters.records_in(), handler.completed_id());
                    handler.first(batch)?;
                }
                GateEvent::Second(batch) => {
                    counters.batch_in(batch.len() as u64);
                    faults.check(counters.records_in(), handler.completed_id());
                    handler.second(batch)?;
                }
                GateEvent::Watermark(wm) => {
                    counters.set_watermark(wm);
                    handler.watermark(wm)?
                }
                GateEvent::Idle => handler.idle()?,
                GateEvent::Barrier { id, alignment } => handler.barrier(id, alignment)?,
                GateEvent::End { checkpoint } => return handler.end(checkpoint),
            }
            handler.notify_completed()?;
        }
    }
}

/// Processing time: milliseconds since the Unix epoch (0 for a clock before it).
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Which process hooks an [`OperatorHandler`] calls: the input side of an operator, the only
/// part in which one- and two-input operators differ. Every other hook comes from
/// [`OperatorLifecycle`].
pub(crate) trait OperatorInputs<Op, O> {
    /// The first input's records.
    type First;
    /// The second input's records ([`Infallible`] for a one-input operator).
    type Second;

    /// Hands a batch of the first input to `op`.
    fn first(op: &mut Op, batch: Vec<Self::First>, out: &mut Output<O>) -> Result<(), BoxError>;

    /// Hands a batch of the second input to `op`.
    fn second(op: &mut Op, batch: Vec<Self::Second>, out: &mut Output<O>) -> Result<(), BoxError>;
}

/// The inputs of a [`UnaryOperator`] with records `I`.
pub(crate) struct OneInput<I>(PhantomData<fn(I)>);

impl<I, O, Op: UnaryOperator<I, O>> OperatorInputs<Op, O> for OneInput<I> {
    type First = I;
    type Second = Infallible;

    fn first(op: &mut Op, batch: Vec<I>, out: &mut Output<O>) -> Result<(), BoxError> {
        op.process_batch(batch, out)
    }

    fn second(_: &mut Op, batch: Vec<Infallible>, _: &mut Output<O>) -> Result<(), BoxError> {
        match batch.into_iter().next() {
            None => Ok(()),
            Some(never) => match never {},
        }
    }
}

/// The inputs of a [`BinaryOperator`] with records `A` and `B`.
pub(crate) struct TwoInputs<A, B>(PhantomData<fn(A, B)>);

impl<A, B, O, Op: BinaryOperator<A, B, O>> OperatorInputs<Op, O> for TwoInputs<A, B> {
    type First = A;
    type Second = B;

    fn first(op: &mut Op, batch: Vec<A>, out: &mut Output<O>) -> Result<(), BoxError> {
        op.process_first(batch, out)
    }

    fn second(op: &mut Op, batch: Vec<B>, out: &mut Output<O>) -> Result<(), BoxError> {
        op.process_second(batch, out)
    }
}

/// Runs an operator, one- or two-input as `In` says.
pub(crate) struct OperatorHandler<Op, O, In> {
    pub op: Op,
    pub out: Output<O>,
    pub snapshots: SnapshotContext,
    pub _inputs: PhantomData<fn(In)>,
}

impl<Op, O, In> OperatorHandler<Op, O, In> {
    /// The handler of `op`, writing to `out`.
    pub(crate) fn new(op: Op, out: Output<O>, snapshots: SnapshotContext) -> Self {
        OperatorHandler {
            op,
            out,
            snapshots,
            _inputs: PhantomData,
        }
    }
}

impl<O: Data, Op: OperatorLifecycle<O>, In: OperatorInputs<Op, O>>
    InputHandler<In::First, In::Second> for OperatorHandler<Op, O, In>
{
    fn first(&mut self, batch: Vec<In::First>) -> Result<(), TaskError> {
        In::first(&mut self.op, batch, &mut self.out)?;
        self.out.check()
    }

    fn second(&mut self, batch: Vec<In::Second>) -> Result<(), TaskError> {
        In::second(&mut self.op, batch, &mut self.out)?;
        self.out.check()
    }

    fn watermark(&mut self, watermark: Timestamp) -> Result<(), TaskError> {
        self.op.on_watermark(watermark, &mut self.out)?;
        self.out.check()?;
        if self.op.forwards_watermarks() {
            self.out.send_control(|| Message::Watermark(watermark))?;
        }
        Ok(())
    }

    fn idle(&mut self) -> Result<(), TaskError> {
        if self.op.forwards_watermarks() {
            self.out.send_control(|| Message::Idle)?;
        }
        Ok(())
    }

    fn next_processing_time(&self) -> Option<u64> {
        let own = self.op.next_processing_time();
        match self.out.chained_processing_time() {
            None => own,
            Some(chained) => Some(own.map_or(chained, |own| own.min(chained))),
        }
    }

    fn processing_time(&mut self, now: u64) -> Result<(), TaskError> {
        if self.op.next_processing_time().is_some_and(|due| due <= now) {
            self.op.on_processing_time(&mut self.out)?;
            self.out.check()?;
        }
        self.out.fire_chained_processing_time(now)
    }

    fn barrier(&mut self, id: CheckpointId, alignment: Duration) -> Result<(), TaskError> {
        // Forward first: downstream tasks start aligning while this one snapshots.
        self.out.send_control(|| Message::Barrier(id))?;
        let op = &mut self.op;
        self.snapshots
            .checkpoint(id, alignment, |request| op.snapshot_frozen(request))
    }

    fn end(&mut self, checkpoint: CheckpointId) -> Result<(), TaskError> {
        // Close first: whatever the operator emits now precedes the final barrier.
        self.op.close(&mut self.out)?;
        self.out.check()?;
        let op = &mut self.op;
        self.snapshots
            .checkpoint(checkpoint, Duration::ZERO, |request| {
                op.snapshot_frozen(request)
            })?;
        self.out.send_control(|| Message::End(checkpoint))
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        self.out.flush()
    }

    fn notify_completed(&mut self) -> Result<(), TaskError> {
        if let Some(id) = self.snapshots.newly_completed() {
            self.op
                .notify_checkpoint_complete(id)
                .map_err(TaskError::Failed)?;
        }
        self.out.notify_chained()
    }

    fn completed_id(&self) -> u64 {
        self.snapshots.completed_id()
    }
}

/// Runs a sink.
pub(crate) struct SinkHandler<T> {
    pub writer: Box<dyn SinkWriter<T>>,
    pub snapshots: SnapshotContext,
}

impl<T: Data> InputHandler<T, Infallible> for SinkHandler<T> {
    fn first(&mut self, batch: Vec<T>) -> Result<(), TaskError> {
        self.writer.write_batch(batch).map_err(TaskError::Failed)
    }

    fn second(&mut self, batch: Vec<Infallible>) -> Result<(), TaskError> {
        match batch.into_iter().next() {
            None => Ok(()),
            Some(never) => match never {},
        }
    }

    fn watermark(&mut self, _watermark: Timestamp) -> Result<(), TaskError> {
        Ok(())
    }

    fn idle(&mut self) -> Result<(), TaskError> {
        Ok(())
    }

    fn next_processing_time(&self) -> Option<u64> {
        None
    }

    fn processing_time(&mut self, _now: u64) -> Result<(), TaskError> {
        Ok(())
    }

    fn barrier(&mut self, id: CheckpointId, alignment: Duration) -> Result<(), TaskError> {
        self.writer.pre_commit(id).map_err(TaskError::Failed)?;
        let writer = &mut self.writer;
        self.snapshots.checkpoint(id, alignment, |_| {
            writer.snapshot(id).map(FrozenSnapshot::Ready)
        })
    }

    fn end(&mut self, checkpoint: CheckpointId) -> Result<(), TaskError> {
        self.writer
            .pre_commit(checkpoint)
            .map_err(TaskError::Failed)?;
        let writer = &mut self.writer;
        self.snapshots.checkpoint(checkpoint, Duration::ZERO, |_| {
            writer.snapshot(checkpoint).map(FrozenSnapshot::Ready)
        })?;
        self.writer.finish().map_err(TaskError::Failed)
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        Ok(())
    }

    fn notify_completed(&mut self) -> Result<(), TaskError> {
        match self.snapshots.newly_completed() {
            Some(id) => self
                .writer
                .notify_checkpoint_complete(id)
                .map_err(TaskError::Failed),
            None => Ok(()),
        }
    }

    fn completed_id(&self) -> u64 {
        self.snapshots.completed_id()
    }
}

/// Turns a user error into a task failure (used where `?` cannot infer the conversion).
pub(crate) fn failed(e: BoxError) -> TaskError {
    TaskError::Failed(e)
}
