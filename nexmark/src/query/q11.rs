//! q11, user sessions: the number of bids per bidder per session (an event-time session
//! window with a 10 s gap), as `(bidder, bid_count, start, end)`; a session runs from its
//! first bid to its last plus the gap (Flink's `SESSION_START` / `SESSION_END`).

use crate::event::Event;
use crate::query::int;
use crate::row::{Row, Value};
use snapflow_engine::{Output, Stream};
use snapflow_operators::window::{Count, EventTimeSessionWindows, Window, WindowExt};
use snapflow_operators::FlatMapExt;
use std::time::Duration;

/// The session gap.
pub(crate) const GAP_MS: u64 = 10_000;

pub(crate) fn build(events: Stream<Event>) -> Stream<Row> {
    events
        .flat_map_with(|e: Event, out: &mut Output<(usize, u64)>| {
            if let Event::Bid(b) = e {
                out.push((b.bidder, b.date_time));
            }
        })
        .name("q11-bids")
        .with_timestamp_assigner(|&(_, t): &(usize, u64)| t)
        .key_by(|&(bidder, _): &(usize, u64)| bidder)
        .window(EventTimeSessionWindows::with_gap(Duration::from_millis(
            GAP_MS,
        )))
        .aggregate_with(Count, |&bidder: &usize, w: Window, n: u64| {
            Row(vec![
                int(bidder),
                int(n as usize),
                Value::Time(w.start as u64),
                Value::Time(w.end as u64),
            ])
        })
        .name("q11-sessions")
}
