//! q7, highest bid: the bids whose price is the maximum of a 10 s tumbling window and whose
//! time lies in `[window_end - 10 s, window_end]` (Flink's query joins every bid with the
//! windows' maxima under that condition; BETWEEN includes both ends).
//!
//! A bid in window `w` matches `w` when its price is `w`'s maximum. A bid at exactly the
//! start of `w` also matches the window before, whose end it is: such a bid enters the
//! previous window a second time, as a *boundary candidate* that does not count toward
//! that window's maximum. Stage 1 (keyed by auction, tumbling windows) keeps per window the
//! local maximum, the bids at it and the boundary candidates not below it; stage 2 (keyed by
//! window, one tumbling window each) takes the global maximum and emits the candidates at it.

use crate::event::Event;
use crate::query::int;
use crate::row::{Row, Value};
use serde::{Deserialize, Serialize};
use snapflow_engine::{Output, Stream};
use snapflow_operators::window::{AggregateFunction, TumblingEventTimeWindows, Window, WindowExt};
use snapflow_operators::FlatMapExt;
use std::time::Duration;

/// The window size.
pub(crate) const SIZE_MS: u64 = 10_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Candidate {
    auction: usize,
    bidder: usize,
    price: usize,
    date_time: u64,
    extra: String,
    /// A copy of a bid at a window start, placed in the window before (at its last ms).
    boundary: bool,
}

impl Candidate {
    fn time(&self) -> u64 {
        if self.boundary {
            self.date_time - 1
        } else {
            self.date_time
        }
    }

    fn row(&self) -> Row {
        Row(vec![
            int(self.auction),
            int(self.price),
            int(self.bidder),
            Value::Time(self.date_time),
            Value::Str(self.extra.clone()),
        ])
    }
}

/// One key's part of one window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Partial {
    /// The largest price of the window's own bids.
    max: Option<usize>,
    /// Its own bids at `max`, and boundary candidates at `max` or above (or all of them while
    /// `max` is `None`).
    candidates: Vec<Candidate>,
}

impl Partial {
    fn prune(&mut self) {
        if let Some(max) = self.max {
            self.candidates.retain(|c| {
                if c.boundary {
                    c.price >= max
                } else {
                    c.price == max
                }
            });
        }
    }
}

struct MaxBids;

impl AggregateFunction<Candidate> for MaxBids {
    type Acc = Partial;
    type Out = Partial;

    fn create_accumulator(&self) -> Partial {
        Partial::default()
    }

    fn add(&self, c: Candidate, acc: &mut Partial) {
        if !c.boundary {
            match acc.max {
                Some(max) if c.price < max => return,
                Some(max) if c.price == max => {}
                _ => {
                    acc.max = Some(c.price);
                    acc.prune();
                }
            }
        } else if acc.max.is_some_and(|max| c.price < max) {
            return;
        }
        acc.candidates.push(c);
    }

    fn get_result(&self, acc: &Partial) -> Partial {
        acc.clone()
    }

    fn merge(&self, acc: &mut Partial, other: Partial) {
        acc.max = acc.max.max(other.max);
        acc.candidates.extend(other.candidates);
        acc.prune();
    }
}

pub(crate) fn build(events: Stream<Event>) -> Stream<Row> {
    events
        .flat_map_with(|e: Event, out: &mut Output<Candidate>| {
            let Event::Bid(b) = e else {
                return;
            };
            let c = Candidate {
                auction: b.auction,
                bidder: b.bidder,
                price: b.price,
                date_time: b.date_time,
                extra: b.extra,
                boundary: false,
            };
            if c.date_time.is_multiple_of(SIZE_MS) && c.date_time > 0 {
                out.push(Candidate {
                    boundary: true,
                    ..c.clone()
                });
            }
            out.push(c);
        })
        .name("q7-candidates")
        .with_timestamp_assigner(Candidate::time)
        .key_by(|c: &Candidate| c.auction)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(SIZE_MS)))
        .aggregate_with(MaxBids, |_: &usize, w: Window, p: Partial| (w, p))
        .name("q7-local-max")
        .with_timestamp_assigner(|(w, _): &(Window, Partial)| w.max_timestamp() as u64)
        .key_by(|(w, _): &(Window, Partial)| w.start)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(SIZE_MS)))
        .process(
            |_: &i64, _: Window, parts: &[(Window, Partial)], out: &mut Vec<Row>| {
                let Some(max) = parts.iter().filter_map(|(_, p)| p.max).max() else {
                    return;
                };
                for (_, p) in parts {
                    for c in p.candidates.iter().filter(|c| c.price == max) {
                        out.push(c.row());
                    }
                }
            },
        )
        .name("q7-max")
}
