//! Nexmark on snapflow: the auction benchmark's events, queries and references.
//!
//! - [`source`]: a deterministic, seekable generator of Nexmark events (the `nexmark` crate,
//!   base time pinned, the event number as the checkpointed position) and a reader of the
//!   JSON-lines event file the Flink peer reads; both emit watermarks per split with 4 s of
//!   bounded out-of-orderness, as Flink's Nexmark suite does.
//! - [`query`]: q0, q1, q2, q3, q4, q5, q7, q8, q11 and q18 as snapflow pipelines on event
//!   time, with Flink's Nexmark SQL semantics; each returns CSV-ready [`Row`]s.
//! - [`sequential`]: every query again as plain Rust over a vector of events, the reference
//!   the pipelines are tested against.

pub mod event;
pub mod query;
mod row;
pub mod sequential;
pub mod source;

pub use event::{Auction, Bid, Event, Person};
pub use query::Query;
pub use row::{format_timestamp, Row, Value};
