//! The builder API: a [`Job`] hands out [`Stream`]s, and operators chain onto them.

mod stream;

pub use stream::{
    ConnectedKeyedStreams, KeySelector, KeyedStream, SinkStream, Stream, TimestampAssigner,
};

use crate::config::JobConfig;
use crate::contract::restart::is_restartable;
use crate::error::JobError;
use crate::error_chain::ErrorChain;
use crate::graph::{Chaining, JobGraph, NodeKind, NodeSpec};
use crate::operator::Source;
use crate::runtime::factory::SourceFactory;
use crate::runtime::{JobHandle, JobReport};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

/// A dataflow job under construction, and the way to run it.
///
/// ```
/// use snapflow_engine::{Job, JobConfig, ReadStatus, Source, SourceReader, TaskInfo, BoxError};
/// # struct Numbers;
/// # impl Source for Numbers {
/// #     type Out = u64;
/// #     fn create_reader(&self, _: &TaskInfo) -> Result<Box<dyn SourceReader<u64>>, BoxError> {
/// #         Ok(Box::new(Once(Some(3))))
/// #     }
/// # }
/// # struct Once(Option<u64>);
/// # impl SourceReader<u64> for Once {
/// #     fn read_batch(&mut self, batch: &mut Vec<u64>, _: usize) -> Result<ReadStatus, BoxError> {
/// #         batch.extend(self.0.take());
/// #         Ok(ReadStatus::Exhausted)
/// #     }
/// # }
/// # struct Ignore;
/// # impl snapflow_engine::Sink<u64> for Ignore {
/// #     fn create_writer(&self, _: &TaskInfo) -> Result<Box<dyn snapflow_engine::SinkWriter<u64>>, BoxError> {
/// #         Ok(Box::new(Ignore))
/// #     }
/// # }
/// # impl snapflow_engine::SinkWriter<u64> for Ignore {
/// #     fn write_batch(&mut self, _: Vec<u64>) -> Result<(), BoxError> { Ok(()) }
/// # }
/// let job = Job::new("example");
/// job.source(Numbers).sink(Ignore);
/// let report = job.run(&JobConfig::default()).unwrap();
/// assert_eq!(report.operators[0].records_out, 1);
/// ```
pub struct Job {
    name: String,
    graph: Rc<RefCell<JobGraph>>,
}

impl Job {
    /// An empty job.
    pub fn new(name: impl Into<String>) -> Job {
        Job {
            name: name.into(),
            graph: Rc::default(),
        }
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a source; the returned stream carries what it reads.
    pub fn source<S: Source>(&self, source: S) -> Stream<S::Out> {
        let node = self.graph.borrow_mut().graph.add_node(NodeSpec {
            name: source.name(),
            uid: None,
            parallelism: None,
            kind: NodeKind::Source,
            ports: 0,
            factory: Arc::new(SourceFactory(source)),
            chaining: Chaining::default(),
        });
        Stream::new(self.graph.clone(), node)
    }

    /// Validates the job and starts every task on its own thread.
    ///
    /// # Errors
    /// [`JobError::Build`] for an invalid graph or configuration (nothing is started), or
    /// [`JobError::Spawn`].
    pub fn launch(&self, config: &JobConfig) -> Result<JobHandle, JobError> {
        crate::runtime::plan::launch(&self.name, &self.graph.borrow(), config)
    }

    /// Runs the job to completion: [`launch`](Job::launch), then [`JobHandle::join`].
    ///
    /// # Errors
    /// As `launch` and `join`: an invalid job, or the first task failure.
    ///
    /// A failed attempt is restarted from the latest completed checkpoint as the config's
    /// [`RestartStrategy`](crate::RestartStrategy) says; once no restart is left, the last
    /// error is returned.
    pub fn run(&self, config: &JobConfig) -> Result<JobReport, JobError> {
        let mut restarts = 0;
        loop {
            let error = match self.launch(config).and_then(JobHandle::join) {
                Ok(mut report) => {
                    report.restarts = restarts;
                    return Ok(report);
                }
                Err(error) => error,
            };
            match config.restart.delay(restarts + 1) {
                Some(delay) if is_restartable(&error) => {
                    restarts += 1;
                    tracing::warn!(job = %self.name, restart = restarts, error = %ErrorChain(&error), "job failed; restarting from the latest checkpoint");
                    std::thread::sleep(delay);
                }
                _ => return Err(error),
            }
        }
    }
}
