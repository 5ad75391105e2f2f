//! The sending side of a task: buffers records per destination and sends them in batches.

use crate::error::TaskError;
use crate::message::{Message, Timestamp};
use crate::metrics::TaskCounters;
use crate::partition::Partitioning;
use crate::Data;
use crossbeam_channel::{Sender, TrySendError};
use snapflow_checkpoint::KeyGroupRouter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Computes the [`key_hash`](snapflow_checkpoint::key_hash) of a record's key.
pub(crate) type KeyHasher<T> = Arc<dyn Fn(&T) -> u64 + Send + Sync>;

/// How one edge picks the destination of a record.
pub(crate) enum Route<T> {
    /// The one channel to the same-index task.
    Forward,
    /// Whole batches, round-robin over the downstream tasks.
    Rebalance { next: usize },
    /// Every batch to every downstream task.
    Broadcast,
    /// Each record to the task that owns its key's key group.
    Hash {
        hasher: KeyHasher<T>,
        groups: KeyGroupRouter,
    },
    /// A chained edge: batches and control messages go straight into the next operator of
    /// the chain, on this thread.
    Chained(Box<dyn ChainLink<T>>),
}

/// The next operator of a chain, as the operator before it sees it: what a channel would
/// have carried is handed over by a call on the same thread (see [`crate::runtime::chain`]).
pub(crate) trait ChainLink<T>: Send {
    /// A batch of records: the upstream operator's output batch, moved, not copied.
    fn batch(&mut self, batch: Vec<T>) -> Result<(), TaskError>;
    /// A watermark, idleness, barrier or end-of-stream, after every batch sent before it.
    fn control(&mut self, message: Message<T>) -> Result<(), TaskError>;
    /// Send partly filled output batches: the chain is about to wait for input.
    fn flush(&mut self) -> Result<(), TaskError>;
    /// The earliest processing time wanted by this operator or one chained after it.
    fn next_processing_time(&self) -> Option<u64>;
    /// Fires the processing-time timers due at `now` here and further down the chain.
    fn processing_time(&mut self, now: u64) -> Result<(), TaskError>;
    /// Tells this operator and those after it about newly completed checkpoints.
    fn notify_completed(&mut self) -> Result<(), TaskError>;
}

/// One task's end of one outgoing edge.
pub(crate) struct EdgeWriter<T> {
    senders: Vec<Sender<Message<T>>>,
    /// The job's stop flag, checked once per batch sent: a task that keeps producing for a
    /// healthy consumer would otherwise never notice a cancel or another task's failure.
    stop: Arc<AtomicBool>,
    route: Route<T>,
    /// One buffer per sender for hash routing, a single one otherwise.
    buffers: Vec<Vec<T>>,
    batch_size: usize,
    /// The sending task's counters, where time blocked on a full channel is added (set by
    /// [`Output::new`]).
    counters: Arc<TaskCounters>,
}

impl<T: Data> EdgeWriter<T> {
    pub(crate) fn new(
        senders: Vec<Sender<Message<T>>>,
        partitioning: Partitioning,
        hasher: Option<KeyHasher<T>>,
        batch_size: usize,
        max_parallelism: u32,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let route = match (partitioning, hasher) {
            (Partitioning::Forward, _) => Route::Forward,
            (Partitioning::Rebalance, _) => Route::Rebalance { next: 0 },
            (Partitioning::Broadcast, _) => Route::Broadcast,
            (Partitioning::Hash, Some(hasher)) => Route::Hash {
                hasher,
                groups: KeyGroupRouter::new(senders.len() as u32, max_parallelism),
            },
            (Partitioning::Hash, None) => unreachable!("hash edges are created with a key hasher"),
        };
        Self::with_route(senders, route, batch_size, stop)
    }

    /// The upstream end of a chained edge into `link`.
    pub(crate) fn chained(
        link: Box<dyn ChainLink<T>>,
        batch_size: usize,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self::with_route(Vec::new(), Route::Chained(link), batch_size, stop)
    }

    fn with_route(
        senders: Vec<Sender<Message<T>>>,
        route: Route<T>,
        batch_size: usize,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let buffer_count = if let Route::Hash { .. } = &route {
            senders.len()
        } else {
            1
        };
        EdgeWriter {
            senders,
            stop,
            route,
            buffers: (0..buffer_count)
                .map(|_| Vec::with_capacity(batch_size))
                .collect(),
            batch_size,
            counters: Arc::default(),
        }
    }

    /// The chain link this edge feeds, if it is chained.
    fn link(&mut self) -> Option<&mut dyn ChainLink<T>> {
        match &mut self.route {
            Route::Chained(link) => Some(link.as_mut()),
            _ => None,
        }
    }

    /// Buffers `record` for its destination; returns the slot whose buffer it filled, which the
    /// caller must then send. Kept small so that it inlines into the per-record loop; sending is
    /// the per-batch, out-of-line part.
    #[inline(always)]
    fn buffer(&mut self, record: T) -> Option<usize> {
        let slot = match &self.route {
            Route::Hash { hasher, groups } => groups.task_of_hash(hasher(&record)),
            _ => 0,
        };
        let buffer = &mut self.buffers[slot];
        buffer.push(record);
        (buffer.len() >= self.batch_size).then_some(slot)
    }

    fn push(&mut self, record: T) -> Result<usize, TaskError> {
        match self.buffer(record) {
            None => Ok(0),
            Some(slot) => self.send_buffer(slot),
        }
    }

    /// Sends a whole batch, keeping it intact where the route allows.
    fn push_batch(&mut self, batch: Vec<T>) -> Result<usize, TaskError> {
        match self.route {
            Route::Hash { .. } => {
                let mut sent = 0;
                for record in batch {
                    sent += self.push(record)?;
                }
                Ok(sent)
            }
            _ => {
                // Keep order: what is buffered goes first.
                let mut sent = self.flush()?;
                if !batch.is_empty() {
                    sent += self.send_batch(0, batch)?;
                }
                Ok(sent)
            }
        }
    }

    /// Sends the buffer of `slot`, returning how many records left.
    #[inline(never)]
    fn send_buffer(&mut self, slot: usize) -> Result<usize, TaskError> {
        let batch = std::mem::replace(&mut self.buffers[slot], Vec::with_capacity(self.batch_size));
        self.send_batch(slot, batch)
    }

    fn send_batch(&mut self, slot: usize, batch: Vec<T>) -> Result<usize, TaskError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(TaskError::Cancelled);
        }
        let len = batch.len();
        let counters = &self.counters;
        let send_one = |tx: &Sender<Message<T>>, b: Vec<T>| send(tx, Message::Batch(b), counters);
        match &mut self.route {
            Route::Forward | Route::Hash { .. } => send_one(&self.senders[slot], batch)?,
            Route::Rebalance { next } => {
                let target = *next;
                *next = (target + 1) % self.senders.len();
                send_one(&self.senders[target], batch)?;
            }
            Route::Chained(link) => link.batch(batch)?,
            Route::Broadcast => {
                let (last, rest) = self.senders.split_last().expect("an edge has a receiver");
                for tx in rest {
                    send_one(tx, batch.clone())?;
                }
                send_one(last, batch)?;
            }
        }
        Ok(len)
    }

    fn flush(&mut self) -> Result<usize, TaskError> {
        let mut sent = 0;
        for slot in 0..self.buffers.len() {
            if !self.buffers[slot].is_empty() {
                sent += self.send_buffer(slot)?;
            }
        }
        Ok(sent)
    }

    fn send_control(&mut self, message: impl Fn() -> Message<T>) -> Result<(), TaskError> {
        self.flush()?;
        for tx in &self.senders {
            send(tx, message(), &self.counters)?;
        }
        if let Some(link) = self.link() {
            link.control(message())?;
        }
        Ok(())
    }
}

/// Sends one message (once per batch), counting the time blocked on a full channel as
/// backpressure: a first non-blocking attempt keeps the clock off the uncontended path.
fn send<T>(
    tx: &Sender<Message<T>>,
    message: Message<T>,
    counters: &TaskCounters,
) -> Result<(), TaskError> {
    match tx.try_send(message) {
        Ok(()) => Ok(()),
        Err(TrySendError::Disconnected(_)) => Err(TaskError::DownstreamGone),
        Err(TrySendError::Full(message)) => {
            let blocked = counters.begin_backpressure();
            let sent = tx.send(message).map_err(|_| TaskError::DownstreamGone);
            counters.end_backpressure(blocked);
            sent
        }
    }
}

/// Where an operator puts its output records.
///
/// `push` never fails from the caller's point of view: if a downstream task has stopped, the
/// record is dropped and the error is kept; the runtime checks it after the operator returns
/// and stops the task. This keeps user functions free of error plumbing for something that
/// only happens while the job is being torn down anyway.
pub struct Output<T> {
    edges: Vec<EdgeWriter<T>>,
    error: Option<TaskError>,
    counters: Arc<TaskCounters>,
}

impl<T: Data> Output<T> {
    pub(crate) fn new(mut edges: Vec<EdgeWriter<T>>, counters: Arc<TaskCounters>) -> Self {
        for edge in &mut edges {
            edge.counters = counters.clone();
        }
        Output {
            edges,
            error: None,
            counters,
        }
    }

    /// An output with one forward edge into an unbounded channel, for driving an operator
    /// outside a job ([`crate::testing`]): the caller flushes it and drains the receiver. It
    /// is an ordinary output, so the per-record path is the one jobs run.
    pub(crate) fn collecting(batch_size: usize) -> (Self, crossbeam_channel::Receiver<Message<T>>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let edge = EdgeWriter::new(
            vec![tx],
            Partitioning::Forward,
            None,
            batch_size,
            1,
            Arc::new(AtomicBool::new(false)),
        );
        (Output::new(vec![edge], Arc::default()), rx)
    }

    /// Emits one record to every consumer of the stream.
    #[inline(always)]
    pub fn push(&mut self, record: T) {
        // The common case, one consumer, skips the fan-out loop: this runs once per record.
        if let [edge] = self.edges.as_mut_slice() {
            if self.error.is_none() {
                if let Some(full) = edge.buffer(record) {
                    let result = edge.send_buffer(full);
                    self.account(result);
                }
            }
            return;
        }
        self.fan_out(record, EdgeWriter::push);
    }

    /// Emits every record of `records`, stopping early once the output has failed (the job
    /// is stopping, so the rest would be dropped anyway).
    pub fn extend<I: IntoIterator<Item = T>>(&mut self, records: I) {
        for record in records {
            self.push(record);
            if self.error.is_some() {
                return;
            }
        }
    }

    /// Whether the output can no longer deliver records because the job is stopping. An
    /// operator that emits many records per input may check it to stop early.
    pub fn is_closed(&self) -> bool {
        self.error.is_some()
    }

    /// Emits a whole batch, passing the vector on unchanged where the partitioning allows
    /// (forward, rebalance and broadcast edges), so that pass-through operators copy nothing.
    pub fn push_batch(&mut self, batch: Vec<T>) {
        self.fan_out(batch, EdgeWriter::push_batch);
    }

    /// Hands `item` to every edge: a clone to all but the last, which gets the original.
    #[inline]
    fn fan_out<I: Clone>(
        &mut self,
        item: I,
        send: impl Fn(&mut EdgeWriter<T>, I) -> Result<usize, TaskError>,
    ) {
        if self.error.is_some() {
            return;
        }
        let result = match self.edges.split_last_mut() {
            None => Ok(0),
            Some((last, rest)) => {
                let mut sent = 0;
                let mut result = Ok(());
                for edge in rest {
                    match send(edge, item.clone()) {
                        Ok(n) => sent += n,
                        Err(e) => result = Err(e),
                    }
                }
                result.and_then(|()| send(last, item).map(|n| n + sent))
            }
        };
        self.account(result);
    }

    #[inline]
    fn account(&mut self, result: Result<usize, TaskError>) {
        match result {
            Ok(0) => {}
            Ok(sent) => self.counters.add_out(sent as u64),
            Err(e) => self.error = Some(e),
        }
    }

    /// Emits watermark `watermark` downstream after the records pushed so far: what a
    /// watermark generator (a timestamp assigner) calls. Operators that only react to their
    /// input's watermark need not: the runtime forwards it.
    pub fn emit_watermark(&mut self, watermark: Timestamp) {
        if self.error.is_none() {
            let result = self.send_control(|| Message::Watermark(watermark));
            if let Err(e) = result {
                self.error = Some(e);
            }
        }
    }

    /// Tells downstream that this task is idle (Flink's `WatermarkStatus.IDLE`): until its
    /// next record or watermark, it does not hold back their watermarks.
    pub fn mark_idle(&mut self) {
        if self.error.is_none() {
            let result = self.send_control(|| Message::Idle);
            if let Err(e) = result {
                self.error = Some(e);
            }
        }
    }

    /// Sends every partly filled batch now, also those of the operators chained after this
    /// one.
    pub(crate) fn flush(&mut self) -> Result<(), TaskError> {
        self.check()?;
        for edge in &mut self.edges {
            let sent = edge.flush()?;
            self.counters.add_out(sent as u64);
            if let Some(link) = edge.link() {
                link.flush()?;
            }
        }
        Ok(())
    }

    /// The earliest processing time an operator chained after this one wants, if any.
    pub(crate) fn chained_processing_time(&self) -> Option<u64> {
        self.edges
            .iter()
            .filter_map(|edge| match &edge.route {
                Route::Chained(link) => link.next_processing_time(),
                _ => None,
            })
            .min()
    }

    /// Fires the processing-time timers due at `now` of the operators chained after this one.
    pub(crate) fn fire_chained_processing_time(&mut self, now: u64) -> Result<(), TaskError> {
        for edge in &mut self.edges {
            if let Some(link) = edge.link() {
                link.processing_time(now)?;
            }
        }
        Ok(())
    }

    /// Tells the operators chained after this one about newly completed checkpoints.
    pub(crate) fn notify_chained(&mut self) -> Result<(), TaskError> {
        for edge in &mut self.edges {
            if let Some(link) = edge.link() {
                link.notify_completed()?;
            }
        }
        Ok(())
    }

    /// Flushes, then sends a control message on every channel of every edge.
    pub(crate) fn send_control(
        &mut self,
        message: impl Fn() -> Message<T>,
    ) -> Result<(), TaskError> {
        self.flush()?;
        for edge in &mut self.edges {
            edge.send_control(&message)?;
        }
        Ok(())
    }

    /// The error a `push` ran into, if any.
    pub(crate) fn check(&mut self) -> Result<(), TaskError> {
        match self.error.take() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}
