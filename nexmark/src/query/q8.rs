//! q8, monitor new users: the persons who opened an auction as a seller in the same 10 s
//! tumbling window in which they joined, as `(id, name, window start)`: a window join of the
//! distinct `(id, name, window)` of persons and `(seller, window)` of auctions.
//!
//! Persons and auctions go into one stream keyed by person id (the seller, for auctions) and
//! one tumbling window: a window holding both sides of an id emits its distinct persons.

use crate::event::Event;
use crate::query::int;
use crate::row::{Row, Value};
use serde::{Deserialize, Serialize};
use snapflow_engine::{Output, Stream};
use snapflow_operators::window::{TumblingEventTimeWindows, Window, WindowExt};
use snapflow_operators::FlatMapExt;
use std::time::Duration;

/// The window size.
pub(crate) const SIZE_MS: u64 = 10_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Side {
    Person { id: usize, name: String, time: u64 },
    Seller { id: usize, time: u64 },
}

impl Side {
    fn id(&self) -> usize {
        match self {
            Side::Person { id, .. } | Side::Seller { id, .. } => *id,
        }
    }

    fn time(&self) -> u64 {
        match self {
            Side::Person { time, .. } | Side::Seller { time, .. } => *time,
        }
    }
}

pub(crate) fn build(events: Stream<Event>) -> Stream<Row> {
    events
        .flat_map_with(|e: Event, out: &mut Output<Side>| match e {
            Event::Person(p) => out.push(Side::Person {
                id: p.id,
                name: p.name,
                time: p.date_time,
            }),
            Event::Auction(a) => out.push(Side::Seller {
                id: a.seller,
                time: a.date_time,
            }),
            Event::Bid(_) => {}
        })
        .name("q8-select")
        .with_timestamp_assigner(Side::time)
        .key_by(Side::id)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(SIZE_MS)))
        .process(
            |&id: &usize, w: Window, sides: &[Side], out: &mut Vec<Row>| {
                if !sides.iter().any(|s| matches!(s, Side::Seller { .. })) {
                    return;
                }
                let mut names: Vec<&str> = sides
                    .iter()
                    .filter_map(|s| match s {
                        Side::Person { name, .. } => Some(name.as_str()),
                        Side::Seller { .. } => None,
                    })
                    .collect();
                names.sort_unstable();
                names.dedup();
                for name in names {
                    out.push(Row(vec![
                        int(id),
                        Value::Str(name.to_owned()),
                        Value::Time(w.start as u64),
                    ]));
                }
            },
        )
        .name("q8-join")
}
