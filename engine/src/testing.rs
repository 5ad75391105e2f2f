//! Harnesses that drive one operator instance outside a job (Flink's
//! `OneInputStreamOperatorTestHarness`): push records and watermarks in, take a snapshot where
//! a barrier would, read what came out, and restore another instance from the snapshot.
//!
//! Each call runs the same hook the task loop would run, on the caller's thread, and then
//! collects everything the operator emitted, so a test reads its output in the order the
//! operator produced it, with no job, thread or channel set-up of its own.
//!
//! ```
//! use snapflow_engine::testing::OneInputHarness;
//! use snapflow_engine::{BoxError, OperatorLifecycle, Output, UnaryOperator};
//!
//! struct Double;
//! impl UnaryOperator<u32, u32> for Double {
//!     fn process_batch(&mut self, batch: Vec<u32>, out: &mut Output<u32>) -> Result<(), BoxError> {
//!         out.extend(batch.into_iter().map(|x| 2 * x));
//!         Ok(())
//!     }
//! }
//! impl OperatorLifecycle<u32> for Double {}
//!
//! let mut harness = OneInputHarness::new(Double);
//! harness.open().unwrap();
//! harness.process(vec![1, 2, 3]).unwrap();
//! assert_eq!(harness.take_output(), vec![2, 4, 6]);
//! ```

use crate::contract::restored::RestoredState;
use crate::error::BoxError;
use crate::message::{Message, Timestamp};
use crate::operator::{BinaryOperator, OperatorLifecycle, UnaryOperator};
use crate::router::Output;
use crate::{Data, SnapshotRequest};
use crossbeam_channel::Receiver;
use snapflow_checkpoint::{CheckpointId, KeyGroupRange};

/// The harness's batch size: small, so that tests also cross batch boundaries.
const BATCH_SIZE: usize = 16;

/// Where a harness's operator writes: an ordinary [`Output`] whose only edge goes to a channel
/// the harness drains after every call.
struct Collector<O> {
    output: Output<O>,
    receiver: Receiver<Message<O>>,
    records: Vec<O>,
    watermarks: Vec<Timestamp>,
}

impl<O: Data> Collector<O> {
    fn new() -> Self {
        let (output, receiver) = Output::collecting(BATCH_SIZE);
        Collector {
            output,
            receiver,
            records: Vec::new(),
            watermarks: Vec::new(),
        }
    }

    /// Moves everything the operator emitted so far into `records`.
    fn drain(&mut self) -> Result<(), BoxError> {
        self.output.flush()?;
        for message in self.receiver.try_iter() {
            match message {
                Message::Batch(batch) => self.records.extend(batch),
                Message::Watermark(wm) => self.watermarks.push(wm),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The lifecycle a harness enforces, as the task loop does: restore, then open, then input,
/// then close.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    Created,
    Open,
    Closed,
}

impl Phase {
    fn expect(self, want: Phase, call: &str) -> Result<(), BoxError> {
        if self == want {
            Ok(())
        } else {
            Err(format!("harness: `{call}` called while the operator is {self:?}").into())
        }
    }
}

/// One-input operators' harness: see [`OperatorHarness`].
pub type OneInputHarness<I, O> = OperatorHarness<dyn UnaryOperator<I, O>, O>;

/// Two-input operators' harness: see [`OperatorHarness`].
pub type TwoInputHarness<A, B, O> = OperatorHarness<dyn BinaryOperator<A, B, O>, O>;

/// Drives one operator instance through its [`OperatorLifecycle`]; `Op` is the boxed
/// operator's kind, which adds the calls that take input ([`OneInputHarness::process`], or
/// [`TwoInputHarness::process_first`] and [`TwoInputHarness::process_second`]).
pub struct OperatorHarness<Op: ?Sized, O> {
    operator: Box<Op>,
    collector: Collector<O>,
    phase: Phase,
}

impl<I: Data, O: Data> OperatorHarness<dyn UnaryOperator<I, O>, O> {
    /// A harness around `operator`, not yet opened.
    pub fn new(operator: impl UnaryOperator<I, O>) -> Self {
        Self::from_boxed(Box::new(operator))
    }

    /// Hands `records` to the operator as one batch.
    ///
    /// # Errors
    /// The operator failed, or it is not open.
    pub fn process(&mut self, records: Vec<I>) -> Result<(), BoxError> {
        self.input("process", |op, out| op.process_batch(records, out))
    }
}

impl<A: Data, B: Data, O: Data> OperatorHarness<dyn BinaryOperator<A, B, O>, O> {
    /// A harness around `operator`, not yet opened.
    pub fn new(operator: impl BinaryOperator<A, B, O>) -> Self {
        Self::from_boxed(Box::new(operator))
    }

    /// Hands `records` to the operator's first input as one batch.
    ///
    /// # Errors
    /// The operator failed, or it is not open.
    pub fn process_first(&mut self, records: Vec<A>) -> Result<(), BoxError> {
        self.input("process_first", |op, out| op.process_first(records, out))
    }

    /// Hands `records` to the operator's second input as one batch.
    ///
    /// # Errors
    /// The operator failed, or it is not open.
    pub fn process_second(&mut self, records: Vec<B>) -> Result<(), BoxError> {
        self.input("process_second", |op, out| op.process_second(records, out))
    }
}

impl<Op: OperatorLifecycle<O> + ?Sized, O: Data> OperatorHarness<Op, O> {
    /// A harness around an operator already boxed, as operator factories return them.
    pub fn from_boxed(operator: Box<Op>) -> Self {
        OperatorHarness {
            operator,
            collector: Collector::new(),
            phase: Phase::Created,
        }
    }

    /// Runs `call` on the open operator with its output, then collects what it emitted.
    fn input(
        &mut self,
        name: &str,
        call: impl FnOnce(&mut Op, &mut Output<O>) -> Result<(), BoxError>,
    ) -> Result<(), BoxError> {
        self.phase.expect(Phase::Open, name)?;
        call(&mut self.operator, &mut self.collector.output)?;
        self.collector.drain()
    }

    /// Restores the operator from `state`, as a resuming job does before `open`.
    ///
    /// # Errors
    /// The operator's `restore` failed, or the operator is already open.
    pub fn restore(&mut self, state: &RestoredState) -> Result<(), BoxError> {
        self.phase.expect(Phase::Created, "restore")?;
        self.operator.restore(state)
    }

    /// Restores the operator from the snapshots `payloads` of checkpoint `checkpoint` (what
    /// every old instance's [`snapshot`](Self::snapshot) returned), keeping `key_groups`: the
    /// key groups this instance owns, which may differ from the old instances' when a test
    /// rescales.
    ///
    /// # Errors
    /// As [`restore`](Self::restore).
    pub fn restore_from(
        &mut self,
        checkpoint: CheckpointId,
        key_groups: KeyGroupRange,
        payloads: Vec<Vec<u8>>,
    ) -> Result<(), BoxError> {
        self.restore(&RestoredState::from_payloads(
            checkpoint, key_groups, payloads,
        ))
    }

    /// Opens the operator.
    ///
    /// # Errors
    /// The operator's `open` failed, or it was opened before.
    pub fn open(&mut self) -> Result<(), BoxError> {
        self.phase.expect(Phase::Created, "open")?;
        self.phase = Phase::Open;
        self.operator.open()
    }

    /// Advances the operator's (combined) input watermark to `watermark`.
    ///
    /// # Errors
    /// The operator failed, or it is not open.
    pub fn watermark(&mut self, watermark: Timestamp) -> Result<(), BoxError> {
        self.input("watermark", |op, out| op.on_watermark(watermark, out))
    }

    /// What the barrier of `checkpoint` does to the operator: returns its state, or `None`.
    ///
    /// # Errors
    /// The operator failed, or it is not open.
    pub fn snapshot(&mut self, checkpoint: CheckpointId) -> Result<Option<Vec<u8>>, BoxError> {
        self.phase.expect(Phase::Open, "snapshot")?;
        let state = self
            .operator
            .snapshot_frozen(SnapshotRequest::full(checkpoint))?
            .serialize()?;
        self.collector.drain()?;
        Ok(state)
    }

    /// When the operator next wants processing-time callbacks (its earliest processing-time
    /// timer), as the task loop asks it.
    pub fn next_processing_time(&self) -> Option<u64> {
        self.operator.next_processing_time()
    }

    /// Calls the operator's processing-time hook, as the task loop does once the time
    /// [`next_processing_time`](Self::next_processing_time) named has come. The operator reads
    /// processing time from its own clock, which a test injects.
    ///
    /// # Errors
    /// The operator failed, or it is not open.
    pub fn processing_time(&mut self) -> Result<(), BoxError> {
        self.input("processing_time", |op, out| op.on_processing_time(out))
    }

    /// Takes the watermarks the operator emitted itself (through
    /// [`Output::emit_watermark`]) since the last call; the runtime's forwarding of input
    /// watermarks is not part of the harness.
    pub fn take_watermarks(&mut self) -> Vec<Timestamp> {
        std::mem::take(&mut self.collector.watermarks)
    }

    /// Tells the operator that `checkpoint` is complete.
    ///
    /// # Errors
    /// The operator failed, or it is not open.
    pub fn notify_complete(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.input("notify_complete", |op, _| {
            op.notify_checkpoint_complete(checkpoint)
        })
    }

    /// Ends the input: closes the operator, which may emit its last records.
    ///
    /// # Errors
    /// The operator failed, or it is not open.
    pub fn close(&mut self) -> Result<(), BoxError> {
        self.phase.expect(Phase::Open, "close")?;
        self.phase = Phase::Closed;
        self.operator.close(&mut self.collector.output)?;
        self.collector.drain()
    }

    /// Everything the operator emitted since the last [`take_output`](Self::take_output).
    pub fn output(&self) -> &[O] {
        &self.collector.records
    }

    /// Takes everything the operator emitted since the last call.
    pub fn take_output(&mut self) -> Vec<O> {
        std::mem::take(&mut self.collector.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums its input; emits the sum at every watermark and on close; snapshots the sum.
    #[derive(Default)]
    struct Sum(u64);

    impl UnaryOperator<u64, u64> for Sum {
        fn process_batch(&mut self, batch: Vec<u64>, _: &mut Output<u64>) -> Result<(), BoxError> {
            self.0 += batch.iter().sum::<u64>();
            Ok(())
        }
    }

    impl OperatorLifecycle<u64> for Sum {
        fn snapshot(&mut self, _: CheckpointId) -> Result<Option<Vec<u8>>, BoxError> {
            Ok(Some(self.0.to_le_bytes().to_vec()))
        }

        fn restore(&mut self, state: &RestoredState) -> Result<(), BoxError> {
            for payload in state.payloads() {
                self.0 += u64::from_le_bytes(payload.try_into()?);
            }
            Ok(())
        }

        fn on_watermark(&mut self, _: Timestamp, out: &mut Output<u64>) -> Result<(), BoxError> {
            out.push(self.0);
            Ok(())
        }

        fn close(&mut self, out: &mut Output<u64>) -> Result<(), BoxError> {
            out.push(self.0);
            Ok(())
        }
    }

    fn all_groups() -> KeyGroupRange {
        KeyGroupRange::for_task(0, 1, 128)
    }

    #[test]
    fn drives_the_lifecycle_and_restores_from_a_snapshot() {
        let mut first = OneInputHarness::new(Sum::default());
        first.open().unwrap();
        first.process((1..=10).collect()).unwrap();
        first.watermark(Timestamp(5)).unwrap();
        assert_eq!(first.take_output(), vec![55]);
        let state = first.snapshot(CheckpointId(1)).unwrap().unwrap();
        first.process(vec![100]).unwrap();
        first.close().unwrap();
        assert_eq!(first.take_output(), vec![155]);

        let mut second = OneInputHarness::new(Sum::default());
        second
            .restore_from(CheckpointId(1), all_groups(), vec![state.clone(), state])
            .unwrap();
        second.open().unwrap();
        second.close().unwrap();
        assert_eq!(second.output(), &[110]);
    }

    #[test]
    fn refuses_calls_out_of_order() {
        let mut harness = OneInputHarness::new(Sum::default());
        assert!(harness.process(vec![1]).is_err());
        harness.open().unwrap();
        assert!(harness.open().is_err());
        assert!(harness
            .restore_from(CheckpointId(1), all_groups(), vec![])
            .is_err());
        harness.close().unwrap();
        assert!(harness.snapshot(CheckpointId(1)).is_err());
    }

    #[test]
    fn output_spanning_many_batches_keeps_its_order() {
        struct Repeat;
        impl UnaryOperator<u32, u32> for Repeat {
            fn process_batch(
                &mut self,
                b: Vec<u32>,
                out: &mut Output<u32>,
            ) -> Result<(), BoxError> {
                for x in b {
                    out.extend((0..x).map(|i| x * 1000 + i));
                }
                Ok(())
            }
        }

        impl OperatorLifecycle<u32> for Repeat {}
        let mut harness = OneInputHarness::new(Repeat);
        harness.open().unwrap();
        harness.process(vec![40, 3]).unwrap();
        let want: Vec<u32> = (0..40)
            .map(|i| 40_000 + i)
            .chain((0..3).map(|i| 3000 + i))
            .collect();
        assert_eq!(harness.take_output(), want);
        assert!(harness.output().is_empty());
    }

    #[test]
    fn two_inputs_reach_their_own_hooks() {
        struct Tag;
        impl BinaryOperator<u8, char, String> for Tag {
            fn process_first(
                &mut self,
                b: Vec<u8>,
                out: &mut Output<String>,
            ) -> Result<(), BoxError> {
                out.extend(b.into_iter().map(|x| format!("n{x}")));
                Ok(())
            }
            fn process_second(
                &mut self,
                b: Vec<char>,
                out: &mut Output<String>,
            ) -> Result<(), BoxError> {
                out.extend(b.into_iter().map(|c| format!("c{c}")));
                Ok(())
            }
        }

        impl OperatorLifecycle<String> for Tag {}
        let mut harness = TwoInputHarness::new(Tag);
        harness.open().unwrap();
        harness.process_first(vec![1]).unwrap();
        harness.process_second(vec!['x']).unwrap();
        harness.process_first(vec![2]).unwrap();
        assert_eq!(harness.take_output(), vec!["n1", "cx", "n2"]);
        assert_eq!(harness.snapshot(CheckpointId(1)).unwrap(), None);
        harness.close().unwrap();
    }
}
