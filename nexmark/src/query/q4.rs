//! q4: the average closing price per category (the Flink Nexmark suite's q4):
//!
//! ```sql
//! SELECT Q.category, AVG(Q.final)
//! FROM (SELECT MAX(B.price) AS final, A.category
//!       FROM auction A, bid B
//!       WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
//!       GROUP BY A.id, A.category) Q
//! GROUP BY Q.category;
//! ```
//!
//! An auction's closing price is its highest bid within `[dateTime, expires]`; auctions
//! without such a bid have none and do not count. `AVG` of a BIGINT is a BIGINT in Flink
//! (the sum divided by the count, truncated), and so it is here.
//!
//! Stage 1, keyed by auction: an auction closes when the watermark passes its `expires`
//! (an event-time timer), and emits its closing price then; bids that arrive before their
//! auction wait for it. Once the watermark is past `expires` no bid that counts can arrive
//! (it would be late: no bid is, as each source split is in time order), so this is the
//! join's final result. Stage 2, keyed by category, sums the closing prices and emits each
//! category's average once, when the input ends (the final row of Flink's changelog).

use crate::event::Event;
use crate::query::{int, END_OF_INPUT};
use crate::row::Row;
use serde::{Deserialize, Serialize};
use snapflow_engine::{BoxError, Output, Stream};
use snapflow_operators::time::{Context, KeyedProcessFunction, ProcessFunctionExt};
use snapflow_operators::{FlatMapExt, ValueState};

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Input {
    Auction(AuctionInfo),
    Bid {
        auction: usize,
        price: usize,
        date_time: u64,
    },
}

#[derive(Copy, Clone, Debug, Serialize, Deserialize)]
struct AuctionInfo {
    id: usize,
    date_time: u64,
    expires: u64,
    category: usize,
}

impl AuctionInfo {
    fn counts(&self, bid_time: u64) -> bool {
        (self.date_time..=self.expires).contains(&bid_time)
    }
}

/// One auction's state while it is open (or, closed, a tombstone that drops its later bids).
#[derive(Clone, Default, Serialize, Deserialize)]
struct AuctionState {
    auction: Option<AuctionInfo>,
    max: Option<usize>,
    /// Bids that came before their auction: (time, price).
    pending: Vec<(u64, usize)>,
    closed: bool,
}

/// Stage 1: per auction, the closing price.
struct ClosingPrice;

impl KeyedProcessFunction<usize, Input, (usize, usize)> for ClosingPrice {
    type State = ValueState<AuctionState>;

    fn process_element(
        &self,
        input: Input,
        ctx: &mut Context<'_, usize, (usize, usize)>,
        state: &mut ValueState<AuctionState>,
    ) -> Result<(), BoxError> {
        if state.get().is_none() {
            state.set(AuctionState::default());
        }
        let st = state.get_mut().expect("set above");
        if st.closed {
            return Ok(()); // after its close, a bid is past `expires`: it never counts
        }
        match input {
            Input::Auction(a) => {
                for &(t, price) in &st.pending {
                    if a.counts(t) {
                        st.max = st.max.max(Some(price));
                    }
                }
                st.pending = Vec::new();
                st.auction = Some(a);
                ctx.timer_service().delete_event_time_timer(END_OF_INPUT);
                ctx.timer_service().register_event_time_timer(a.expires);
            }
            Input::Bid {
                price, date_time, ..
            } => match st.auction {
                Some(a) => {
                    if a.counts(date_time) {
                        st.max = st.max.max(Some(price));
                    }
                }
                None => {
                    st.pending.push((date_time, price));
                    // An auction that never comes: drop its bids at the end.
                    ctx.timer_service().register_event_time_timer(END_OF_INPUT);
                }
            },
        }
        Ok(())
    }

    fn on_timer(
        &self,
        timestamp: u64,
        ctx: &mut Context<'_, usize, (usize, usize)>,
        state: &mut ValueState<AuctionState>,
    ) -> Result<(), BoxError> {
        let Some(st) = state.get_mut() else {
            return Ok(());
        };
        if timestamp == END_OF_INPUT {
            state.clear();
            return Ok(());
        }
        if let (Some(a), Some(max)) = (st.auction, st.max) {
            ctx.collect((a.category, max));
        }
        *st = AuctionState {
            closed: true,
            ..AuctionState::default()
        };
        Ok(())
    }
}

/// Stage 2: per category, the running sum and count of closing prices.
struct Average;

impl KeyedProcessFunction<usize, (usize, usize), Row> for Average {
    type State = ValueState<(u64, u64)>;

    fn process_element(
        &self,
        (_, price): (usize, usize),
        ctx: &mut Context<'_, usize, Row>,
        state: &mut ValueState<(u64, u64)>,
    ) -> Result<(), BoxError> {
        let (sum, n) = state.get().copied().unwrap_or((0, 0));
        state.set((sum + price as u64, n + 1));
        ctx.timer_service().register_event_time_timer(END_OF_INPUT);
        Ok(())
    }

    fn on_timer(
        &self,
        _timestamp: u64,
        ctx: &mut Context<'_, usize, Row>,
        state: &mut ValueState<(u64, u64)>,
    ) -> Result<(), BoxError> {
        if let Some((sum, n)) = state.take() {
            let category = *ctx.key();
            ctx.collect(Row(vec![int(category), int((sum / n) as usize)]));
        }
        Ok(())
    }
}

pub(crate) fn build(events: Stream<Event>) -> Stream<Row> {
    events
        .flat_map_with(|e: Event, out: &mut Output<Input>| match e {
            Event::Auction(a) => out.push(Input::Auction(AuctionInfo {
                id: a.id,
                date_time: a.date_time,
                expires: a.expires,
                category: a.category,
            })),
            Event::Bid(b) => out.push(Input::Bid {
                auction: b.auction,
                price: b.price,
                date_time: b.date_time,
            }),
            Event::Person(_) => {}
        })
        .name("q4-select")
        .with_timestamp_assigner(|i: &Input| match i {
            Input::Auction(a) => a.date_time,
            Input::Bid { date_time, .. } => *date_time,
        })
        .key_by(|i: &Input| match i {
            Input::Auction(a) => a.id,
            Input::Bid { auction, .. } => *auction,
        })
        .process_function(ClosingPrice)
        .name("q4-closing-price")
        .key_by(|&(category, _): &(usize, usize)| category)
        .process_function(Average)
        .name("q4-average")
}
