#![allow(dead_code)] // Shared by the wordcount example, the chaos driver and the tests.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! Word count from one Kafka topic into another: the graph of `wordcount_job.rs` with a
//! [`KafkaSource`] of lines and a [`KafkaSink`] of `word<TAB>running_count` values (keyed by
//! the word), so that the output is checked against the same sequential result.

use crossbeam_channel::Sender;
use snapflow::engine::{
    BoxError, CheckpointId, Committer, Data, ReadStatus, RestoredState, Sink, SinkWriter, Source,
    SourcePosition, SourceReader, TaskInfo,
};
use snapflow::kafka::{CommitFault, DeliveryMode, KafkaConfig, KafkaSink, KafkaSource};
use snapflow::operators::text::words;
use snapflow::prelude::*;
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where word count reads and writes.
#[derive(Clone, Debug)]
pub struct KafkaJob {
    /// The brokers.
    pub config: KafkaConfig,
    /// Lines in.
    pub input_topic: String,
    /// Counts out.
    pub output_topic: String,
    /// The exactly-once sink's transactional id.
    pub transactional_id: String,
    /// Exactly or at least once.
    pub mode: DeliveryMode,
    /// Read to the end offsets at start, then finish.
    pub bounded: bool,
    /// A fault planted in the sink's committer.
    pub fault: Option<Arc<CommitFault>>,
    /// The exactly-once sink's marker topic, if not its own default.
    pub marker_topic: Option<String>,
    /// Discard the counts instead of writing them (to measure the source alone).
    pub discard: bool,
    /// Told each time the sink's committer opens (each start and restart of the job), before
    /// it talks to Kafka: an event a test can wait for.
    pub opens: Option<Sender<()>>,
    /// Each source task returns at most this many lines between two barriers (see
    /// [`Stepped`]), so that a bounded run spans a known least number of checkpoints.
    pub step: Option<usize>,
}

impl KafkaJob {
    /// Exactly once, bounded, no fault, with the transactional id `wordcount-OUTPUT`.
    pub fn new(bootstrap: &str, input_topic: &str, output_topic: &str) -> Self {
        Self {
            config: KafkaConfig::new(bootstrap),
            input_topic: input_topic.to_owned(),
            output_topic: output_topic.to_owned(),
            transactional_id: format!("wordcount-{output_topic}"),
            mode: DeliveryMode::ExactlyOnce,
            bounded: true,
            fault: None,
            marker_topic: None,
            discard: false,
            opens: None,
            step: None,
        }
    }

    /// The word count job.
    pub fn build(&self) -> Job {
        let job = Job::new("wordcount");
        let source = KafkaSource::new(self.config.clone(), &self.input_topic, |record| {
            std::str::from_utf8(record.value)
                .map(str::to_owned)
                .map_err(|_| "the value is not UTF-8 text".to_owned())
        })
        .bounded(self.bounded);
        let lines = match self.step {
            Some(step) => job.source(Stepped {
                inner: source,
                step,
            }),
            None => job.source(source),
        };
        let counts = lines
            .name("read")
            .uid("read")
            .flat_map_with(|line: String, out: &mut Output<CompactString>| {
                for word in words(&line) {
                    out.push(CompactString::from(word));
                }
            })
            .name("tokenize")
            .uid("tokenize")
            .key_by(|word: &CompactString| word.clone())
            .process(
                |_,
                 word: CompactString,
                 count: &mut ValueState<u64>,
                 out: &mut Output<(CompactString, u64)>| {
                    let n = count.get().copied().unwrap_or(0) + 1;
                    count.set(n);
                    out.push((word, n));
                    Ok(())
                },
            )
            .name("count")
            .uid("count");
        if self.discard {
            counts.sink(DiscardSink::new()).name("write").uid("write");
            return job;
        }
        let serialize =
            |(word, n): &(CompactString, u64), key: &mut Vec<u8>, value: &mut Vec<u8>| {
                key.extend_from_slice(word.as_bytes());
                value.extend_from_slice(word.as_bytes());
                value.push(b'\t');
                value.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
            };
        let sink = match self.mode {
            DeliveryMode::ExactlyOnce => {
                let mut sink = KafkaSink::exactly_once(
                    self.config.clone(),
                    &self.output_topic,
                    &self.transactional_id,
                    serialize,
                );
                if let Some(fault) = &self.fault {
                    sink = sink.commit_fault(Arc::clone(fault));
                }
                if let Some(topic) = &self.marker_topic {
                    sink = sink.marker_topic(topic);
                }
                sink
            }
            DeliveryMode::AtLeastOnce => {
                KafkaSink::at_least_once(self.config.clone(), &self.output_topic, serialize)
            }
        };
        match &self.opens {
            Some(opens) => {
                let committer = sink.committer().map(|inner| {
                    Arc::new(ObservedCommitter {
                        inner,
                        opens: opens.clone(),
                    }) as Arc<dyn Committer>
                });
                counts
                    .sink(ObservedSink {
                        inner: sink,
                        committer,
                    })
                    .name("write")
                    .uid("write");
            }
            None => {
                counts.sink(sink).name("write").uid("write");
            }
        }
        job
    }
}

/// A sink whose committer reports every `open`.
struct ObservedSink<S> {
    inner: S,
    committer: Option<Arc<dyn Committer>>,
}

impl<T: Data, S: Sink<T>> Sink<T> for ObservedSink<S> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn create_writer(&self, task: &TaskInfo) -> Result<Box<dyn SinkWriter<T>>, BoxError> {
        self.inner.create_writer(task)
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        self.committer.clone()
    }
}

struct ObservedCommitter {
    inner: Arc<dyn Committer>,
    opens: Sender<()>,
}

impl Committer for ObservedCommitter {
    fn directories(&self) -> Vec<PathBuf> {
        self.inner.directories()
    }

    fn open(&self, restored: Option<&RestoredState>) -> Result<(), BoxError> {
        let _ = self.opens.send(());
        self.inner.open(restored)
    }

    fn close(&self, interrupted: bool) {
        self.inner.close(interrupted);
    }

    fn commit(&self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.inner.commit(checkpoint)
    }
}

/// Wraps a source so that each task returns at most `step` records between two barriers: a
/// task that returned `step` records waits (returning empty batches) until its position is
/// taken at the next barrier. Every `step` records of a task are then in a checkpoint of their
/// own, so that a bounded run of `n` records per task spans at least `n / step` checkpoints
/// with records, however fast or slow the machine: an event, not a rate.
pub struct Stepped<S> {
    /// The source.
    pub inner: S,
    /// Records per task between two barriers.
    pub step: usize,
}

impl<S: Source> Source for Stepped<S> {
    type Out = S::Out;

    fn name(&self) -> String {
        self.inner.name()
    }

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<S::Out>>, BoxError> {
        Ok(Box::new(SteppedReader {
            inner: self.inner.create_reader(task)?,
            step: self.step.max(1),
            since_barrier: 0,
            barrier: Cell::new(false),
        }))
    }

    fn verify_restore(&self, positions: &[SourcePosition]) -> Result<(), BoxError> {
        self.inner.verify_restore(positions)
    }
}

struct SteppedReader<T> {
    inner: Box<dyn SourceReader<T>>,
    step: usize,
    /// Records returned since the last barrier.
    since_barrier: usize,
    /// The runtime took the position (it does at a barrier, and only there).
    barrier: Cell<bool>,
}

impl<T> SourceReader<T> for SteppedReader<T> {
    fn read_batch(&mut self, batch: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        if self.barrier.replace(false) {
            self.since_barrier = 0;
        }
        if self.since_barrier >= self.step {
            // Pacing while the barrier is on its way, not a wait for a result: the runtime
            // calls again and takes the barrier between two calls.
            std::thread::sleep(Duration::from_millis(1));
            return Ok(ReadStatus::More);
        }
        let before = batch.len();
        let status = self
            .inner
            .read_batch(batch, max.min(self.step - self.since_barrier))?;
        self.since_barrier += batch.len() - before;
        Ok(status)
    }

    fn position(&self) -> Option<SourcePosition> {
        self.barrier.set(true);
        self.inner.position()
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        self.inner.seek(position)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.inner.notify_checkpoint_complete(checkpoint)
    }
}
