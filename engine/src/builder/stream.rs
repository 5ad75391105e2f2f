//! Streams: handles on an operator's output, to which further operators are attached.

use crate::data::{Data, Key};
use crate::error::BuildError;
use crate::graph::{Chaining, EdgeSpec, JobGraph, NodeKind, NodeSpec};
use crate::operator::{BinaryOperator, OperatorLifecycle, Sink, TaskInfo, UnaryOperator};
use crate::partition::Partitioning;
use crate::router::KeyHasher;
use crate::router::Output;
use crate::runtime::factory::{BinaryFactory, NodeFactory, SinkFactory, TypedEdge, UnaryFactory};
use crate::side_output::{OutputTag, Tagged};
use crate::BoxError;
use petgraph::graph::NodeIndex;
use snapflow_checkpoint::key_hash;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

/// Extracts the key of a record.
pub type KeySelector<T, K> = Arc<dyn Fn(&T) -> K + Send + Sync>;

/// Extracts the event timestamp (milliseconds) of a record.
///
/// snapflow does not store a timestamp next to every record: a stream with event time carries
/// the function that reads it from the record, and the operators that need a record's
/// timestamp (windows, process functions) call it. Streams without event time pay nothing.
pub type TimestampAssigner<T> = Arc<dyn Fn(&T) -> u64 + Send + Sync>;

/// The output of one operator, of records of type `T`.
///
/// Using a stream twice fans it out: every consumer gets every record. The settings methods
/// (`name`, `uid`, `parallelism`) apply to the operator that produces the stream.
pub struct Stream<T> {
    graph: Rc<RefCell<JobGraph>>,
    node: NodeIndex,
    partitioning: Option<Partitioning>,
    timestamps: Option<TimestampAssigner<T>>,
    /// For the main stream of an operator with side outputs: that operator, whose output is
    /// `Tagged<T>` (see [`split_side_outputs`](Stream::split_side_outputs)).
    sides: Option<NodeIndex>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Stream<T> {
    fn clone(&self) -> Self {
        Stream {
            graph: self.graph.clone(),
            node: self.node,
            partitioning: self.partitioning,
            timestamps: self.timestamps.clone(),
            sides: self.sides,
            _type: PhantomData,
        }
    }
}

fn set_node(graph: &RefCell<JobGraph>, node: NodeIndex, change: impl FnOnce(&mut NodeSpec)) {
    change(&mut graph.borrow_mut().graph[node]);
}

impl<T: Data> Stream<T> {
    pub(crate) fn new(graph: Rc<RefCell<JobGraph>>, node: NodeIndex) -> Self {
        Stream {
            graph,
            node,
            partitioning: None,
            timestamps: None,
            sides: None,
            _type: PhantomData,
        }
    }

    /// Says how to read each record's event timestamp, for the event-time operators
    /// downstream (windows, process functions). It adds no operator and no watermarks:
    /// watermarks come from `assign_timestamps_and_watermarks` upstream or from the source.
    /// Operators that keep the record type (`filter`, `key_by`, `union`, partitioning) keep the
    /// assigner; operators that change it (`map`, windows) drop it, so set it again there.
    pub fn with_timestamp_assigner(
        mut self,
        assigner: impl Fn(&T) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.timestamps = Some(Arc::new(assigner));
        self
    }

    /// The stream's timestamp assigner, if it has event time.
    pub fn timestamp_assigner(&self) -> Option<TimestampAssigner<T>> {
        self.timestamps.clone()
    }

    /// This stream with `assigner` (or none) as its timestamp assigner.
    pub fn with_assigner(mut self, assigner: Option<TimestampAssigner<T>>) -> Self {
        self.timestamps = assigner;
        self
    }

    /// Names the operator that produces this stream (shown in errors and metrics).
    pub fn name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        if let Some(raw) = self.sides {
            set_node(&self.graph, raw, |n| n.name = name.clone());
            set_node(&self.graph, self.node, |n| n.name = format!("{name}/main"));
        } else {
            set_node(&self.graph, self.node, |n| n.name = name);
        }
        self
    }

    /// Gives the operator a stable uid, which maps checkpointed state back to it. Without one,
    /// the uid is derived from the operator's position and name.
    pub fn uid(self, uid: impl Into<String>) -> Self {
        let uid = uid.into();
        if let Some(raw) = self.sides {
            set_node(&self.graph, raw, |n| n.uid = Some(uid.clone()));
            set_node(&self.graph, self.node, |n| {
                n.uid = Some(format!("{uid}/main"))
            });
        } else {
            set_node(&self.graph, self.node, |n| n.uid = Some(uid));
        }
        self
    }

    /// Runs the operator that produces this stream on threads of its own, never chained to
    /// its neighbours (Flink's `disableChaining`).
    pub fn disable_chaining(self) -> Self {
        for node in self.sides.into_iter().chain([self.node]) {
            set_node(&self.graph, node, |n| n.chaining = Chaining::Never);
        }
        self
    }

    /// Starts a new chain at the operator that produces this stream: it is not chained to
    /// its upstream neighbour, but what follows may chain to it (Flink's `startNewChain`).
    pub fn start_new_chain(self) -> Self {
        let head = self.sides.unwrap_or(self.node);
        set_node(&self.graph, head, |n| n.chaining = Chaining::Head);
        self
    }

    /// Sets how many parallel tasks run the operator (default: the job's parallelism).
    pub fn parallelism(self, parallelism: usize) -> Self {
        for node in self.sides.into_iter().chain([self.node]) {
            set_node(&self.graph, node, |n| n.parallelism = Some(parallelism));
        }
        self
    }

    /// A side output of the operator that produces this stream: the records it emitted to
    /// `tag`. The stream can be used like any other, including by an exactly-once sink.
    ///
    /// Only the stream [`split_side_outputs`](Stream::split_side_outputs) returned (what
    /// `process_function` and windows return) has side outputs; on another stream the job
    /// refuses to run with [`BuildError::NoSideOutputs`].
    pub fn side_output<S: Data + Sync>(&self, tag: &OutputTag<S>) -> Stream<S> {
        let raw: Stream<Tagged<T>> = match self.sides {
            Some(raw) => Stream::new(self.graph.clone(), raw),
            None => {
                let mut g = self.graph.borrow_mut();
                let operator = g.graph[self.node].name.clone();
                g.errors.push(BuildError::NoSideOutputs {
                    operator,
                    tag: tag.name().to_owned(),
                });
                drop(g);
                Stream::new(self.graph.clone(), self.node)
            }
        };
        let (id, parallelism) = (tag.id(), self.graph.borrow().graph[raw.node].parallelism);
        let stream = raw.unary(&format!("side-output {}", tag.name()), move |_| {
            SelectSide::<S> {
                tag: id,
                _type: PhantomData,
            }
        });
        match parallelism {
            Some(p) => stream.parallelism(p),
            None => stream,
        }
    }

    /// Sends task `i`'s records to task `i` of the next operator (the default when both have
    /// the same parallelism).
    pub fn forward(self) -> Self {
        self.partitioned(Partitioning::Forward)
    }

    /// Spreads records round-robin, in batches, over the next operator's tasks (the default
    /// when the parallelism differs).
    pub fn rebalance(self) -> Self {
        self.partitioned(Partitioning::Rebalance)
    }

    /// Sends every record to every task of the next operator.
    pub fn broadcast(self) -> Self {
        self.partitioned(Partitioning::Broadcast)
    }

    fn partitioned(mut self, partitioning: Partitioning) -> Self {
        self.partitioning = Some(partitioning);
        self
    }

    /// Partitions the stream by key: each key's records go to one task, which can keep state
    /// per key.
    pub fn key_by<K: Key>(
        self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
    ) -> KeyedStream<K, T> {
        let key = Arc::new(key);
        // Built here, where the key function's type is known, so that routing a record costs
        // one dynamic call with the key function inlined rather than two nested ones.
        let hasher: KeyHasher<T> = {
            let key = key.clone();
            Arc::new(move |record: &T| key_hash(&key(record)))
        };
        KeyedStream {
            stream: self,
            key,
            hasher,
        }
    }

    /// Merges this stream with another of the same type.
    pub fn union(self, other: Stream<T>) -> Stream<T> {
        let node = self.add_node(
            "union",
            NodeKind::Operator,
            1,
            UnaryFactory {
                make: |_: &TaskInfo| PassThrough,
                _types: PhantomData::<fn(T) -> T>,
            },
        );
        self.connect_to(node, 0, None);
        other.connect_to_checked(&self.graph, node, 0, None);
        Stream::new(self.graph.clone(), node).with_assigner(self.timestamps.clone())
    }

    /// Attaches a one-input operator; `make` creates one instance per task. The building
    /// block of `map`, `filter`, and the other stateless operators.
    pub fn unary<O, Op, F>(self, name: &str, make: F) -> Stream<O>
    where
        O: Data,
        Op: UnaryOperator<T, O>,
        F: Fn(&TaskInfo) -> Op + Send + Sync + 'static,
    {
        let node = self.add_node(
            name,
            NodeKind::Operator,
            1,
            UnaryFactory {
                make,
                _types: PhantomData,
            },
        );
        self.connect_to(node, 0, None);
        Stream::new(self.graph.clone(), node)
    }

    /// Attaches a two-input operator reading this stream and `other`, which may carry another
    /// record type.
    pub fn binary<B, O, Op, F>(self, other: Stream<B>, name: &str, make: F) -> Stream<O>
    where
        B: Data,
        O: Data,
        Op: BinaryOperator<T, B, O>,
        F: Fn(&TaskInfo) -> Op + Send + Sync + 'static,
    {
        let node = self.add_node(
            name,
            NodeKind::Operator,
            2,
            BinaryFactory {
                make,
                _types: PhantomData,
            },
        );
        self.connect_to(node, 0, None);
        other.connect_to_checked(&self.graph, node, 1, None);
        Stream::new(self.graph.clone(), node)
    }

    /// Writes the stream to a sink.
    pub fn sink<S: Sink<T>>(self, sink: S) -> SinkStream {
        let name = sink.name();
        let node = self.add_node(
            &name,
            NodeKind::Sink,
            1,
            SinkFactory {
                sink,
                _type: PhantomData,
            },
        );
        self.connect_to(node, 0, None);
        SinkStream {
            graph: self.graph.clone(),
            node,
        }
    }

    fn add_node(
        &self,
        name: &str,
        kind: NodeKind,
        ports: usize,
        factory: impl NodeFactory + 'static,
    ) -> NodeIndex {
        self.graph.borrow_mut().graph.add_node(NodeSpec {
            name: name.to_owned(),
            uid: None,
            parallelism: None,
            kind,
            ports,
            factory: Arc::new(factory),
            chaining: Chaining::default(),
        })
    }

    /// Adds the edge from this stream's operator into `port` of `node`.
    fn connect_to(&self, node: NodeIndex, port: usize, hasher: Option<KeyHasher<T>>) {
        let partitioning = if hasher.is_some() {
            Some(Partitioning::Hash)
        } else {
            self.partitioning
        };
        self.graph.borrow_mut().graph.add_edge(
            self.node,
            node,
            EdgeSpec {
                port,
                partitioning,
                factory: Arc::new(TypedEdge { hasher }),
            },
        );
    }

    /// As `connect_to`, for a stream that might belong to another job than `graph`.
    fn connect_to_checked(
        &self,
        graph: &Rc<RefCell<JobGraph>>,
        node: NodeIndex,
        port: usize,
        hasher: Option<KeyHasher<T>>,
    ) {
        if Rc::ptr_eq(&self.graph, graph) {
            self.connect_to(node, port, hasher);
        } else {
            let mut g = graph.borrow_mut();
            let operator = g.graph[node].name.clone();
            g.errors.push(BuildError::ForeignStream { operator });
        }
    }
}

impl<T: Data> Stream<Tagged<T>> {
    /// The main output of an operator with side outputs: forwards its `Main` records, and
    /// remembers the operator so that [`side_output`](Stream::side_output) can take the others.
    pub fn split_side_outputs(self) -> Stream<T> {
        let parallelism = self.graph.borrow().graph[self.node].parallelism;
        let raw = self.node;
        let mut main = self.unary("main-output", |_| SelectMain);
        if let Some(p) = parallelism {
            main = main.parallelism(p);
        }
        main.sides = Some(raw);
        main
    }
}

/// Forwards the main records of an operator with side outputs.
struct SelectMain;

impl<T: Data> UnaryOperator<Tagged<T>, T> for SelectMain {
    fn process_batch(
        &mut self,
        batch: Vec<Tagged<T>>,
        out: &mut Output<T>,
    ) -> Result<(), BoxError> {
        for record in batch {
            if let Tagged::Main(record) = record {
                out.push(record);
            }
        }
        Ok(())
    }
}

impl<T: Data> OperatorLifecycle<T> for SelectMain {}

/// Forwards the records of one side output, unboxed.
struct SelectSide<S> {
    tag: u32,
    _type: PhantomData<fn() -> S>,
}

impl<T: Data, S: Data + Sync> UnaryOperator<Tagged<T>, S> for SelectSide<S> {
    fn process_batch(
        &mut self,
        batch: Vec<Tagged<T>>,
        out: &mut Output<S>,
    ) -> Result<(), BoxError> {
        for record in batch {
            if let Tagged::Side(tag, value) = record {
                if tag == self.tag {
                    let value = value.downcast::<S>().map_err(|_| {
                        format!("side output {tag} carries records of another type than its tag")
                    })?;
                    out.push(Arc::try_unwrap(value).unwrap_or_else(|shared| (*shared).clone()));
                }
            }
        }
        Ok(())
    }
}

impl<S: Data + Sync> OperatorLifecycle<S> for SelectSide<S> {}

/// Forwards batches unchanged (the union operator).
struct PassThrough;

impl<T: Data> UnaryOperator<T, T> for PassThrough {
    fn process_batch(&mut self, batch: Vec<T>, out: &mut Output<T>) -> Result<(), BoxError> {
        out.push_batch(batch);
        Ok(())
    }
}

impl<T: Data> OperatorLifecycle<T> for PassThrough {}

/// A stream partitioned by a key of type `K`. Only keyed streams offer keyed state.
pub struct KeyedStream<K, T> {
    stream: Stream<T>,
    key: KeySelector<T, K>,
    /// The key hash of a record, for routing it to the task that owns its key group.
    hasher: KeyHasher<T>,
}

impl<K: Key, T: Data> KeyedStream<K, T> {
    /// The function that extracts a record's key.
    pub fn key_selector(&self) -> KeySelector<T, K> {
        self.key.clone()
    }

    /// The stream's timestamp assigner, if it has event time.
    pub fn timestamp_assigner(&self) -> Option<TimestampAssigner<T>> {
        self.stream.timestamp_assigner()
    }

    fn hasher(&self) -> KeyHasher<T> {
        self.hasher.clone()
    }

    /// Attaches a one-input operator that receives all records of a key on the same task;
    /// `make` gets the key selector along with the task. The building block of `process`,
    /// `reduce` and `fold`.
    pub fn keyed_unary<O, Op, F>(self, name: &str, make: F) -> Stream<O>
    where
        O: Data,
        Op: UnaryOperator<T, O>,
        F: Fn(&TaskInfo, KeySelector<T, K>) -> Op + Send + Sync + 'static,
    {
        let key = self.key.clone();
        let hasher = self.hasher();
        let stream = &self.stream;
        let node = stream.add_node(
            name,
            NodeKind::Operator,
            1,
            UnaryFactory {
                make: move |info: &TaskInfo| make(info, key.clone()),
                _types: PhantomData,
            },
        );
        stream.connect_to(node, 0, Some(hasher));
        Stream::new(stream.graph.clone(), node)
    }

    /// Pairs this stream with another keyed by the same key type, for a two-input operator
    /// that sees both streams' records of a key on the same task.
    pub fn connect<B: Data>(self, other: KeyedStream<K, B>) -> ConnectedKeyedStreams<K, T, B> {
        ConnectedKeyedStreams {
            first: self,
            second: other,
        }
    }
}

/// Two keyed streams with the same key type, partitioned alike.
pub struct ConnectedKeyedStreams<K, A, B> {
    first: KeyedStream<K, A>,
    second: KeyedStream<K, B>,
}

impl<K: Key, A: Data, B: Data> ConnectedKeyedStreams<K, A, B> {
    /// Attaches a two-input operator; `make` gets both key selectors along with the task.
    pub fn keyed_binary<O, Op, F>(self, name: &str, make: F) -> Stream<O>
    where
        O: Data,
        Op: BinaryOperator<A, B, O>,
        F: Fn(&TaskInfo, KeySelector<A, K>, KeySelector<B, K>) -> Op + Send + Sync + 'static,
    {
        let (key_a, key_b) = (self.first.key.clone(), self.second.key.clone());
        let (hash_a, hash_b) = (self.first.hasher(), self.second.hasher());
        let first = &self.first.stream;
        let node = first.add_node(
            name,
            NodeKind::Operator,
            2,
            BinaryFactory {
                make: move |info: &TaskInfo| make(info, key_a.clone(), key_b.clone()),
                _types: PhantomData,
            },
        );
        first.connect_to(node, 0, Some(hash_a));
        self.second
            .stream
            .connect_to_checked(&first.graph, node, 1, Some(hash_b));
        Stream::new(first.graph.clone(), node)
    }
}

/// A sink in the job; its settings methods configure the sink operator.
pub struct SinkStream {
    graph: Rc<RefCell<JobGraph>>,
    node: NodeIndex,
}

impl SinkStream {
    /// Names the sink.
    pub fn name(self, name: impl Into<String>) -> Self {
        set_node(&self.graph, self.node, |n| n.name = name.into());
        self
    }

    /// Gives the sink a stable uid.
    pub fn uid(self, uid: impl Into<String>) -> Self {
        set_node(&self.graph, self.node, |n| n.uid = Some(uid.into()));
        self
    }

    /// Runs the sink on threads of its own, never chained to the operator before it.
    pub fn disable_chaining(self) -> Self {
        set_node(&self.graph, self.node, |n| n.chaining = Chaining::Never);
        self
    }

    /// Sets how many parallel tasks write the sink.
    pub fn parallelism(self, parallelism: usize) -> Self {
        set_node(&self.graph, self.node, |n| {
            n.parallelism = Some(parallelism)
        });
        self
    }
}
