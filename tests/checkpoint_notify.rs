//! Operators are told when a checkpoint completes (Flink's `notifyCheckpointComplete`), with
//! the id of a checkpoint that really completed, at their next input.

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use snapflow::engine::{
    CheckpointEvent, CheckpointId, OperatorLifecycle, ReadStatus, Source, SourcePosition,
    SourceReader, UnaryOperator,
};
use snapflow::prelude::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A one-task source that emits the records the test sends, and ends when the test hangs up.
struct ChannelSource(Receiver<u64>);

struct ChannelReader {
    records: Receiver<u64>,
    sent: u64,
}

impl Source for ChannelSource {
    type Out = u64;

    fn create_reader(&self, _: &TaskInfo) -> Result<Box<dyn SourceReader<u64>>, BoxError> {
        Ok(Box::new(ChannelReader {
            records: self.0.clone(),
            sent: 0,
        }))
    }
}

impl SourceReader<u64> for ChannelReader {
    fn read_batch(&mut self, batch: &mut Vec<u64>, _max: usize) -> Result<ReadStatus, BoxError> {
        // Waiting briefly keeps the source from spinning; it returns between waits so that it
        // still takes checkpoint triggers. Nothing is asserted about time.
        match self.records.recv_timeout(Duration::from_millis(2)) {
            Ok(record) => {
                batch.push(record);
                self.sent += 1;
                Ok(ReadStatus::More)
            }
            Err(RecvTimeoutError::Timeout) => Ok(ReadStatus::More),
            Err(RecvTimeoutError::Disconnected) => Ok(ReadStatus::Exhausted),
        }
    }

    fn position(&self) -> Option<SourcePosition> {
        Some(SourcePosition {
            offset: self.sent.to_le_bytes().to_vec(),
            description: format!("record {}", self.sent),
        })
    }
}

/// Passes records on and reports every completion it is told about.
struct Notified(Sender<CheckpointId>);

impl UnaryOperator<u64, u64> for Notified {
    fn process_batch(&mut self, batch: Vec<u64>, out: &mut Output<u64>) -> Result<(), BoxError> {
        out.extend(batch);
        Ok(())
    }
}

impl OperatorLifecycle<u64> for Notified {
    fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        let _ = self.0.send(checkpoint);
        Ok(())
    }
}

#[test]
fn an_operator_is_notified_of_completed_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (records, source_records) = unbounded();
    let (events_tx, events) = unbounded();
    let (notified_tx, notified) = unbounded();
    let job = Job::new("notify");
    job.source(ChannelSource(source_records))
        .unary("notified", move |_| Notified(notified_tx.clone()))
        .sink(DiscardSink::new());
    let config = JobConfig::default()
        .with_checkpointing(dir.path(), Duration::from_millis(5))
        .with_checkpoint_listener(events_tx);
    let handle = job.launch(&config).unwrap();

    let mut completed = Vec::new();
    for record in 0..3u64 {
        records.send(record).unwrap();
        // A checkpoint completes after this record ...
        let id = loop {
            match events.recv_timeout(WAIT).expect("a checkpoint event") {
                CheckpointEvent::Completed(stats) => break stats.id,
                CheckpointEvent::Aborted { .. } => {}
            }
        };
        completed.push(id);
        // ... and the operator hears of it (or of a later one) at its next input.
        records.send(100 + record).unwrap();
        let told = loop {
            let told = notified.recv_timeout(WAIT).expect("a notification");
            if told >= id {
                break told;
            }
        };
        assert!(told >= id);
    }
    drop(records);
    let report = handle.join().unwrap();
    let all: Vec<CheckpointId> = report.checkpoints.iter().map(|c| c.id).collect();
    for id in &completed {
        assert!(all.contains(id));
    }
    // Every notification named a checkpoint that completed, in increasing order.
    let told: Vec<CheckpointId> = notified.try_iter().collect();
    assert!(told.windows(2).all(|w| w[0] < w[1]), "{told:?}");
    assert!(
        told.iter().all(|id| all.contains(id)),
        "{told:?} vs {all:?}"
    );
}
