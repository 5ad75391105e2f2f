//! A chained task: the handler an unchained task would run, called by the operator before it
//! in the chain through a [`ChainLink`] instead of a channel, and which member of the chain is
//! running, for failure attribution.

use crate::error::TaskError;
use crate::inject::TaskFaults;
use crate::message::Message;
use crate::metrics::{thread_cpu_time, TaskCounters};
use crate::router::ChainLink;
use crate::runtime::task::InputHandler;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

    pub(crate) fn enter(&self, member: usize) -> usize {
        self.0.swap(member, Ordering::Relaxed)
    }

    pub(crate) fn leave(&self, parent: usize) {
        self.0.store(parent, Ordering::Relaxed);
    }
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
