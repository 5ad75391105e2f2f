//! What may travel on a stream.

/// A record type that can flow between tasks.
///
/// Records are moved between threads (`Send`) and copied when a stream fans out to several
/// consumers or is broadcast (`Clone`). Every `Clone + Send + 'static` type qualifies.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// A key of a [`KeyedStream`](crate::KeyedStream): hashed to pick the task and key group that
/// own it, and compared to find its state.
pub trait Key: std::hash::Hash + Eq + Clone + Send + Sync + 'static {}
impl<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static> Key for K {}

/// A record of one of two inputs of a two-input operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Either<A, B> {
    /// A record of the first input.
    Left(A),
    /// A record of the second input.
    Right(B),
}
