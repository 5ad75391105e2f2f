//! Operator chaining: the tasks of a chain (see [`PhysicalPlan::chains`]) run on one thread,
//! each operator handing its output batches to the next by a call instead of a channel.
//!
//! A chained operator is still a task of its own: it keeps its uid, its counters, its
//! snapshot context (so it acknowledges checkpoints and writes snapshots under its own uid and
//! index, exactly as it would unchained) and its injected faults. Only the thread and the
//! channel are gone, which is why a checkpoint taken with chaining restores without it and
//! the reverse.
//!
//! [`PhysicalPlan::chains`]: crate::runtime::physical::PhysicalPlan::chains

use crate::error::TaskError;
use crate::message::Message;
use crate::operator::TaskInfo;
use crate::runtime::factory::{AnyEnd, NodeFactory, TaskWiring};
use crate::runtime::inject::TaskFaults;
use crate::runtime::metrics::{thread_cpu_time, TaskCounters};
use crate::runtime::router::ChainLink;
use crate::runtime::task::{InputHandler, Task, TaskEnv};
use std::collections::HashMap;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The placeholder `connect` puts among a task's output ends for a chained edge: the task at
/// this plan position, built on the chain's thread as the edge's far end.
pub(crate) struct ChainedTo(pub usize);

/// Which member of a chain is running (its place in the chain, 0 for the head), so that a
/// failure is reported against the operator that failed rather than the chain's head. Set
/// on entry to a member and restored when it returns normally; an error or panic leaves it
/// pointing at the failing member.
#[derive(Clone, Default)]
pub(crate) struct ChainCursor(Arc<AtomicUsize>);

impl ChainCursor {
    /// The member that ran last without returning normally (0: the head).
    pub(crate) fn failing(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn enter(&self, member: usize) -> usize {
        self.0.swap(member, Ordering::Relaxed)
    }

    fn leave(&self, parent: usize) {
        self.0.store(parent, Ordering::Relaxed);
    }
}

/// One task of a chain before its thread builds it.
pub(crate) struct ChainMember {
    pub factory: Arc<dyn NodeFactory>,
    pub info: TaskInfo,
    pub wiring: TaskWiring,
    pub env: TaskEnv,
    /// Its place in the chain: 0 for the head.
    pub member: usize,
}

/// Builds the chain headed by `head` (a plan position) from its members, keyed by plan
/// position: the members after the head first, as the far ends of the head's chained edges.
///
/// # Errors
/// A member's operator failed to restore or open.
pub(crate) fn build(
    head: usize,
    mut members: HashMap<usize, ChainMember>,
    cursor: &ChainCursor,
) -> Result<Box<dyn Task>, TaskError> {
    let mut member = members
        .remove(&head)
        .expect("a chain has its head (engine bug otherwise)");
    member.wiring.outputs = resolve(member.wiring.outputs, &mut members, cursor)?;
    member
        .factory
        .create_task(member.info, member.wiring, member.env)
}

/// Replaces each [`ChainedTo`] placeholder among `outputs` with the built chain link.
fn resolve(
    outputs: Vec<AnyEnd>,
    members: &mut HashMap<usize, ChainMember>,
    cursor: &ChainCursor,
) -> Result<Vec<AnyEnd>, TaskError> {
    outputs
        .into_iter()
        .map(|end| match end.downcast::<ChainedTo>() {
            Err(channel) => Ok(channel),
            Ok(to) => {
                let mut member = members
                    .remove(&to.0)
                    .expect("a chained edge leads to a member (engine bug otherwise)");
                let place = member.member;
                let parent = cursor.enter(place);
                member.wiring.outputs = resolve(member.wiring.outputs, members, cursor)?;
                let link = member.factory.create_link(
                    member.info,
                    member.wiring,
                    member.env,
                    place,
                    cursor.clone(),
                )?;
                cursor.leave(parent);
                Ok(link)
            }
        })
        .collect()
}

/// A chained one-input task: its handler (the same one an unchained task runs) behind a
/// [`ChainLink`], counting its input and checking its faults as the task loop would.
pub(crate) struct ChainedInput<T, H> {
    pub handler: H,
    pub counters: Arc<TaskCounters>,
    pub faults: TaskFaults,
    /// Its place in the chain.
    pub member: usize,
    pub cursor: ChainCursor,
    pub _input: PhantomData<fn(T)>,
}

impl<T, H: InputHandler<T, Infallible>> ChainedInput<T, H> {
    /// Runs `f` as this member, for failure attribution.
    #[inline]
    fn within<R>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<R, TaskError>,
    ) -> Result<R, TaskError> {
        let parent = self.cursor.enter(self.member);
        let result = f(self)?;
        self.cursor.leave(parent);
        Ok(result)
    }
}

impl<T: Send, H: InputHandler<T, Infallible> + Send> ChainLink<T> for ChainedInput<T, H> {
    fn batch(&mut self, batch: Vec<T>) -> Result<(), TaskError> {
        self.within(|this| {
            let sample = this.counters.chained_batch_in(batch.len() as u64);
            this.faults
                .check(this.counters.records_in(), this.handler.completed_id());
            // One call in 8 is timed (two clock reads), including the
            // operators chained after this one that it calls.
            let before = sample.then(thread_cpu_time).flatten();
            this.handler.first(batch)?;
            if let Some(after) = before.and_then(|b| Some(thread_cpu_time()?.saturating_sub(b))) {
                this.counters.add_sampled_cpu_time(after);
            }
            Ok(())
        })
    }

    fn control(&mut self, message: Message<T>) -> Result<(), TaskError> {
        self.within(|this| match message {
            Message::Batch(batch) => this.handler.first(batch),
            Message::Watermark(wm) => {
                this.counters.set_watermark(wm);
                this.handler.watermark(wm)
            }
            Message::Idle => this.handler.idle(),
            // The chain head aligned: nothing to wait for here.
            Message::Barrier(id) => this.handler.barrier(id, Duration::ZERO),
            Message::End(id) => this.handler.end(id),
        })
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        self.within(|this| this.handler.flush())
    }

    fn next_processing_time(&self) -> Option<u64> {
        self.handler.next_processing_time()
    }

    fn processing_time(&mut self, now: u64) -> Result<(), TaskError> {
        self.within(|this| this.handler.processing_time(now))
    }

    fn notify_completed(&mut self) -> Result<(), TaskError> {
        self.within(|this| this.handler.notify_completed())
    }
}
