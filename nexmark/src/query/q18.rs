//! q18, find last bid: for every (bidder, auction), the bid with the latest `dateTime`
//! (the Flink Nexmark suite's q18: `ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY
//! dateTime DESC) = 1`, which Flink runs as a keep-last deduplication).
//!
//! Two bids of a pair at the same millisecond tie in SQL, and Flink keeps whichever arrived
//! last. Here the tie goes to the greater of `(price, channel, url, extra)`, so that the result
//! does not depend on arrival order (which differs between parallelisms). Each pair's row is
//! emitted once, when the input ends: the final row of Flink's changelog.

use crate::event::{Bid, Event};
use crate::query::{bids, int, END_OF_INPUT};
use crate::row::{Row, Value};
use snapflow_engine::{BoxError, Stream};
use snapflow_operators::time::{Context, KeyedProcessFunction, ProcessFunctionExt};
use snapflow_operators::ValueState;
use std::cmp::Ordering;

/// The order in which a pair's bids supersede each other: by time, then by the tie-break.
pub(crate) fn recency(a: &Bid, b: &Bid) -> Ordering {
    (a.date_time, a.price, &a.channel, &a.url, &a.extra).cmp(&(
        b.date_time,
        b.price,
        &b.channel,
        &b.url,
        &b.extra,
    ))
}

/// A bid as q18's row.
pub(crate) fn row(b: Bid) -> Row {
    Row(vec![
        int(b.auction),
        int(b.bidder),
        int(b.price),
        Value::Str(b.channel),
        Value::Str(b.url),
        Value::Time(b.date_time),
        Value::Str(b.extra),
    ])
}

struct LastBid;

impl KeyedProcessFunction<(usize, usize), Bid, Row> for LastBid {
    type State = ValueState<Bid>;

    fn process_element(
        &self,
        bid: Bid,
        ctx: &mut Context<'_, (usize, usize), Row>,
        state: &mut ValueState<Bid>,
    ) -> Result<(), BoxError> {
        match state.get() {
            Some(last) if recency(&bid, last) != Ordering::Greater => {}
            Some(_) => state.set(bid),
            None => {
                state.set(bid);
                ctx.timer_service().register_event_time_timer(END_OF_INPUT);
            }
        }
        Ok(())
    }

    fn on_timer(
        &self,
        _timestamp: u64,
        ctx: &mut Context<'_, (usize, usize), Row>,
        state: &mut ValueState<Bid>,
    ) -> Result<(), BoxError> {
        if let Some(bid) = state.take() {
            ctx.collect(row(bid));
        }
        Ok(())
    }
}

pub(crate) fn build(events: Stream<Event>) -> Stream<Row> {
    bids(events)
        .key_by(|b: &Bid| (b.bidder, b.auction))
        .process_function(LastBid)
        .name("q18-last-bid")
}
