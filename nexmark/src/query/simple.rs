//! q0, q1 and q2: one pass over the bids, no state.

use crate::event::{Bid, Event};
use crate::query::int;
use crate::row::{Row, Value};
use snapflow_engine::{Output, Stream};
use snapflow_operators::FlatMapExt;

fn bid_row(b: Bid, price: Value) -> Row {
    Row(vec![
        int(b.auction),
        int(b.bidder),
        price,
        Value::Time(b.date_time),
        Value::Str(b.extra),
    ])
}

/// `SELECT auction, bidder, price, dateTime, extra FROM bid`.
pub(crate) fn q0(events: Stream<Event>) -> Stream<Row> {
    events
        .flat_map_with(|e: Event, out: &mut Output<Row>| {
            if let Event::Bid(b) = e {
                let price = int(b.price);
                out.push(bid_row(b, price));
            }
        })
        .name("q0")
}

/// `SELECT auction, bidder, 0.908 * price, dateTime, extra FROM bid`: the price as a
/// DECIMAL(23, 3), computed exactly in thousandths.
pub(crate) fn q1(events: Stream<Event>) -> Stream<Row> {
    events
        .flat_map_with(|e: Event, out: &mut Output<Row>| {
            if let Event::Bid(b) = e {
                let price = Value::Milli(b.price as i64 * 908);
                out.push(bid_row(b, price));
            }
        })
        .name("q1")
}

/// `SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0`.
pub(crate) fn q2(events: Stream<Event>) -> Stream<Row> {
    events
        .flat_map_with(|e: Event, out: &mut Output<Row>| {
            if let Event::Bid(b) = e {
                if b.auction % 123 == 0 {
                    out.push(Row(vec![int(b.auction), int(b.price)]));
                }
            }
        })
        .name("q2")
}
