//! Side outputs (Flink's `OutputTag`): an operator emits records of other types next to its
//! main output, and each becomes a stream of its own.
//!
//! An operator with side outputs emits [`Tagged`] records: `Main` for the main output, `Side`
//! for a side output, labelled with its tag. [`Stream::split_side_outputs`] attaches to it a
//! small operator that forwards the main records, and returns that as the main stream;
//! [`Stream::side_output`] on the main stream attaches another that forwards one tag's records,
//! downcast back to their type. Side records are boxed (`Arc<dyn Any>`): they are meant for the
//! exceptions (late data, malformed input), while main records travel unboxed.
//!
//! [`Stream::split_side_outputs`]: crate::Stream::split_side_outputs
//! [`Stream::side_output`]: crate::Stream::side_output

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Names one side output of records of type `T` (Flink's `OutputTag<T>`). Create it once,
/// hand it to the operator that emits to it and to [`Stream::side_output`](crate::Stream::side_output).
pub struct OutputTag<T> {
    id: u32,
    name: Arc<str>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for OutputTag<T> {
    fn clone(&self) -> Self {
        OutputTag {
            id: self.id,
            name: self.name.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for OutputTag<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OutputTag({:?})", self.name)
    }
}

/// Tags get process-unique ids, so that two tags never match by accident.
static NEXT_TAG: AtomicU32 = AtomicU32::new(0);

impl<T> OutputTag<T> {
    /// A new tag named `name` (shown in operator names).
    pub fn new(name: impl Into<String>) -> Self {
        OutputTag {
            id: NEXT_TAG.fetch_add(1, Ordering::Relaxed),
            name: name.into().into(),
            _type: PhantomData,
        }
    }

    /// The tag's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag's process-unique id.
    pub fn id(&self) -> u32 {
        self.id
    }
}

/// A record of an operator that has side outputs: one of its main output, or one of the side
/// output `tag` (the [`OutputTag::id`]).
#[derive(Clone)]
pub enum Tagged<T> {
    /// A main-output record.
    Main(T),
    /// A side-output record, boxed; [`Stream::side_output`](crate::Stream::side_output)
    /// downcasts it to its tag's type.
    Side(u32, Arc<dyn Any + Send + Sync>),
}

impl<T> Tagged<T> {
    /// `value` as a record of the side output `tag`.
    pub fn side<S: Send + Sync + 'static>(tag: &OutputTag<S>, value: S) -> Self {
        Tagged::Side(tag.id, Arc::new(value))
    }
}

impl<T: fmt::Debug> fmt::Debug for Tagged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tagged::Main(t) => f.debug_tuple("Main").field(t).finish(),
            Tagged::Side(tag, _) => write!(f, "Side({tag}, ..)"),
        }
    }
}
