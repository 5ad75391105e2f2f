//! The one message type on every channel.

use snapflow_checkpoint::CheckpointId;

/// Event time, in milliseconds. Watermarks carry it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The end of time: the watermark of an input that has ended, after which every
    /// event-time window and timer has fired.
    pub const MAX: Timestamp = Timestamp(u64::MAX);
}

/// What travels on an edge between two tasks.
///
/// Control messages travel in band with the data: channel order alone guarantees that every
/// record sent before a barrier is received before it, which is what makes the barrier a
/// consistent cut (Chandy-Lamport).
#[derive(Debug)]
pub enum Message<T> {
    /// A batch of records: the unit of transfer, so that no channel operation is per record.
    Batch(Vec<T>),
    /// No record with an earlier event time will follow on this channel.
    Watermark(Timestamp),
    /// The sender is idle (Flink's `WatermarkStatus.IDLE`): until it sends a batch or a
    /// watermark again, it does not hold back the receiver's watermark.
    Idle,
    /// Everything before this on the channel belongs to checkpoint `id`, everything after to
    /// later ones.
    Barrier(CheckpointId),
    /// The sender has finished; nothing follows on this channel. End-of-stream is also the
    /// barrier of the job's final checkpoint `id`: a task that has it on every input closes its
    /// operator (whose last output thus still belongs to the final checkpoint), snapshots, and
    /// forwards it.
    End(CheckpointId),
}
