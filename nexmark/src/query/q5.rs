//! q5, hot items: per sliding window (size 10 s, slide 2 s), the auction(s) with the most
//! bids, ties included, as `(auction, num)`.
//!
//! Stage 1 counts bids per auction per window (a sliding event-time window, keyed by
//! auction). Each count is stamped with its window's last millisecond, so stage 2 (keyed by
//! window start, a tumbling window of one slide) sees every count of one sliding window in
//! one window of its own, which fires once the watermark has passed them all: it keeps the
//! counts equal to their maximum.

use crate::event::Event;
use crate::query::int;
use crate::row::Row;
use serde::{Deserialize, Serialize};
use snapflow_engine::{Output, Stream};
use snapflow_operators::window::{
    Count, SlidingEventTimeWindows, TumblingEventTimeWindows, Window, WindowExt,
};
use snapflow_operators::FlatMapExt;
use std::time::Duration;

/// The window size.
pub(crate) const SIZE_MS: u64 = 10_000;
/// The slide.
pub(crate) const SLIDE_MS: u64 = 2_000;

/// The number of bids on one auction in one window.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AuctionCount {
    window: Window,
    auction: usize,
    num: u64,
}

pub(crate) fn build(events: Stream<Event>) -> Stream<Row> {
    // One operator from events to (auction, time): there is no operator chaining yet, and
    // every operator is a thread and a channel hop.
    events
        .flat_map_with(|e: Event, out: &mut Output<(usize, u64)>| {
            if let Event::Bid(b) = e {
                out.push((b.auction, b.date_time));
            }
        })
        .name("q5-bids")
        .with_timestamp_assigner(|&(_, t): &(usize, u64)| t)
        .key_by(|&(auction, _): &(usize, u64)| auction)
        .window(SlidingEventTimeWindows::of(
            Duration::from_millis(SIZE_MS),
            Duration::from_millis(SLIDE_MS),
        ))
        .aggregate_with(Count, |&auction: &usize, window: Window, num: u64| {
            AuctionCount {
                window,
                auction,
                num,
            }
        })
        .name("q5-count")
        .with_timestamp_assigner(|c: &AuctionCount| c.window.max_timestamp() as u64)
        .key_by(|c: &AuctionCount| c.window.start)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(
            SLIDE_MS,
        )))
        .process(
            |_: &i64, _: Window, counts: &[AuctionCount], out: &mut Vec<Row>| {
                let max = counts.iter().map(|c| c.num).max().unwrap_or(0);
                for c in counts.iter().filter(|c| c.num == max) {
                    out.push(Row(vec![int(c.auction), int(c.num as usize)]));
                }
            },
        )
        .name("q5-hottest")
}
