//! The receiving side of a task: reads its input channels and turns control messages into
//! task-level events through the [`InputTracker`].

use crate::error::TaskError;
use crate::message::{Message, Timestamp};
use crate::runtime::align::{InputTracker, Progress};
use crossbeam_channel::{Receiver, Select, TryRecvError};
use snapflow_checkpoint::CheckpointId;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the task loop acts on next.
pub(crate) enum GateEvent<A, B> {
    /// A batch from the first input.
    First(Vec<A>),
    /// A batch from the second input.
    Second(Vec<B>),
    /// The combined watermark advanced.
    Watermark(Timestamp),
    /// Every input that has not ended is idle.
    Idle,
    /// A barrier has been aligned on all inputs, after `alignment` from its first arrival.
    Barrier {
        id: CheckpointId,
        alignment: Duration,
    },
    /// Every input has ended; `checkpoint` is the final checkpoint whose barrier the end is.
    End { checkpoint: CheckpointId },
}

enum Received<A, B> {
    First(Message<A>),
    Second(Message<B>),
}

/// A message and the index of the channel it came from.
type Arrival<A, B> = (usize, Received<A, B>);

/// All input channels of one task: those of its first input, then those of its second.
/// One-input tasks use `B = Infallible` with no second channels.
pub(crate) struct InputGate<A, B> {
    first: Vec<Receiver<Message<A>>>,
    second: Vec<Receiver<Message<B>>>,
    tracker: InputTracker,
    /// Where the next non-blocking sweep starts, so that a busy channel cannot starve others.
    cursor: usize,
    /// Events decided but not yet handed out (one control message can yield several).
    pending: VecDeque<GateEvent<A, B>>,
    /// When the barrier being aligned first arrived.
    aligning_since: Option<Instant>,
    /// The final checkpoint named by the end-of-stream messages received so far.
    final_checkpoint: Option<CheckpointId>,
    #[cfg(debug_assertions)]
    ended: Vec<bool>,
}

impl<A, B> InputGate<A, B> {
    pub(crate) fn new(first: Vec<Receiver<Message<A>>>, second: Vec<Receiver<Message<B>>>) -> Self {
        let n = first.len() + second.len();
        InputGate {
            first,
            second,
            tracker: InputTracker::new(n),
            cursor: 0,
            pending: VecDeque::new(),
            aligning_since: None,
            final_checkpoint: None,
            #[cfg(debug_assertions)]
            ended: vec![false; n],
        }
    }

    fn channel_count(&self) -> usize {
        self.first.len() + self.second.len()
    }

    /// The next event, or `None` once `deadline` (the operator's next processing-time timer, if
    /// it has one) passes first. Calls `before_block` each time it is about to wait for input,
    /// which is when the task flushes its partly filled output batches: latency stays low when
    /// input is scarce, and batches stay full when it is not.
    pub(crate) fn next_until(
        &mut self,
        deadline: Option<Instant>,
        mut before_block: impl FnMut() -> Result<(), TaskError>,
    ) -> Result<Option<GateEvent<A, B>>, TaskError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let (ch, message) = match self.try_receive()? {
                Some(received) => received,
                None => {
                    before_block()?;
                    match self.receive_blocking(deadline)? {
                        Some(received) => received,
                        None => return Ok(None),
                    }
                }
            };
            self.cursor = ch + 1;
            if let Some(event) = self.handle(ch, message) {
                return Ok(Some(event));
            }
        }
    }

    fn try_receive(&mut self) -> Result<Option<Arrival<A, B>>, TaskError> {
        let n = self.channel_count();
        for k in 0..n {
            let ch = (self.cursor + k) % n;
            if !self.tracker.is_open(ch) {
                continue;
            }
            let result = if ch < self.first.len() {
                self.first[ch].try_recv().map(Received::First)
            } else {
                self.second[ch - self.first.len()]
                    .try_recv()
                    .map(Received::Second)
            };
            match result {
                Ok(message) => return Ok(Some((ch, message))),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return Err(TaskError::UpstreamGone),
            }
        }
        Ok(None)
    }

    fn receive_blocking(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Arrival<A, B>>, TaskError> {
        let mut select = Select::new();
        let mut channel_of = Vec::with_capacity(self.channel_count());
        for (ch, rx) in self.first.iter().enumerate() {
            if self.tracker.is_open(ch) {
                select.recv(rx);
                channel_of.push(ch);
            }
        }
        for (i, rx) in self.second.iter().enumerate() {
            let ch = self.first.len() + i;
            if self.tracker.is_open(ch) {
                select.recv(rx);
                channel_of.push(ch);
            }
        }
        // The tracker never leaves every channel closed: all blocked means aligned and all
        // ended means End, and both are handed out before the gate reads again.
        debug_assert!(!channel_of.is_empty(), "no open input channel to wait on");
        let operation = match deadline {
            None => select.select(),
            Some(deadline) => match select.select_deadline(deadline) {
                Ok(operation) => operation,
                Err(_) => return Ok(None),
            },
        };
        let ch = channel_of[operation.index()];
        let received = if ch < self.first.len() {
            operation.recv(&self.first[ch]).map(Received::First)
        } else {
            operation
                .recv(&self.second[ch - self.first.len()])
                .map(Received::Second)
        };
        received
            .map(|message| Some((ch, message)))
            .map_err(|_| TaskError::UpstreamGone)
    }

    fn handle(&mut self, ch: usize, received: Received<A, B>) -> Option<GateEvent<A, B>> {
        #[cfg(debug_assertions)]
        assert!(
            !self.ended[ch],
            "a message followed end-of-stream on input channel {ch}"
        );
        let progress = match received {
            Received::First(Message::Batch(batch)) => {
                self.tracker.on_batch(ch);
                return Some(GateEvent::First(batch));
            }
            Received::Second(Message::Batch(batch)) => {
                self.tracker.on_batch(ch);
                return Some(GateEvent::Second(batch));
            }
            Received::First(control) => self.control(ch, control),
            Received::Second(control) => self.control(ch, control),
        };
        // Order matters: a barrier aligned by an end goes out before the end itself.
        if let Some(id) = progress.aligned {
            let alignment = self
                .aligning_since
                .take()
                .map_or(Duration::ZERO, |t| t.elapsed());
            self.pending.push_back(GateEvent::Barrier { id, alignment });
        }
        if let Some(wm) = progress.watermark {
            self.pending.push_back(GateEvent::Watermark(wm));
        }
        if progress.idle {
            self.pending.push_back(GateEvent::Idle);
        }
        if progress.all_ended {
            let checkpoint = self
                .final_checkpoint
                .expect("an end-of-stream was received");
            self.pending.push_back(GateEvent::End { checkpoint });
        }
        self.pending.pop_front()
    }

    fn control<T>(&mut self, ch: usize, message: Message<T>) -> Progress {
        match message {
            Message::Batch(_) => unreachable!("batches are handled by the caller"),
            Message::Watermark(wm) => self.tracker.on_watermark(ch, wm),
            Message::Idle => self.tracker.on_idle(ch),
            Message::Barrier(id) => {
                if !self.tracker.is_aligning() {
                    self.aligning_since = Some(Instant::now());
                }
                self.tracker.on_barrier(ch, id)
            }
            Message::End(id) => {
                #[cfg(debug_assertions)]
                {
                    self.ended[ch] = true;
                }
                // Every source ends with the same final checkpoint, on every channel.
                debug_assert!(
                    self.final_checkpoint.is_none_or(|f| f == id),
                    "two final checkpoints"
                );
                self.final_checkpoint = Some(id);
                self.tracker.on_end(ch)
            }
        }
    }
}
