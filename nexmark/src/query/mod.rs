//! The Nexmark queries as snapflow pipelines, with the semantics of Flink's Nexmark SQL
//! suite (the `../shared/peers/flink/nexmark/queries/*.sql` texts, and the suite's q4 and
//! q18). Each takes the stream of events (with event time and the sources' watermarks) and
//! returns a stream of result [`Row`]s.
//!
//! Rows that a SQL engine would update (the averages of q4, the latest bid of q18) are
//! emitted once, with their final value, when the input ends: the final state of Flink's
//! changelog for a bounded input.

mod q11;
mod q18;
mod q3;
mod q4;
mod q5;
mod q7;
mod q8;
mod simple;

use crate::event::Event;
use crate::row::Row;
use snapflow_engine::Stream;
use std::fmt;
use std::str::FromStr;

/// The time of the event-time timers that fire when the input ends (the final watermark,
/// +infinity, reaches them): how q4 and q18 emit their final rows.
pub(crate) const END_OF_INPUT: u64 = i64::MAX as u64;

/// A Nexmark query.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Query {
    /// Pass-through: every bid.
    Q0,
    /// Currency conversion: every bid with its price times 0.908.
    Q1,
    /// Selection: the bids on every 123rd auction.
    Q2,
    /// Local item suggestion: sellers in OR, ID or CA of auctions in category 10 (a regular
    /// join of auctions and persons).
    Q3,
    /// Average closing price per category.
    Q4,
    /// Hot items: per 10 s window sliding by 2 s, the auctions with the most bids.
    Q5,
    /// Highest bid: per 10 s tumbling window, the bids at the window's maximum price.
    Q7,
    /// New users: persons who opened an auction in the 10 s tumbling window they joined in.
    Q8,
    /// User sessions: bids per bidder per session (gap 10 s).
    Q11,
    /// Latest bid of every bidder on every auction.
    Q18,
}

impl Query {
    /// Every query, in order.
    pub const ALL: [Query; 10] = [
        Query::Q0,
        Query::Q1,
        Query::Q2,
        Query::Q3,
        Query::Q4,
        Query::Q5,
        Query::Q7,
        Query::Q8,
        Query::Q11,
        Query::Q18,
    ];

    /// The query's pipeline over `events`, which must carry event time (the sources'
    /// timestamp assigner and watermarks).
    pub fn build(self, events: Stream<Event>) -> Stream<Row> {
        match self {
            Query::Q0 => simple::q0(events),
            Query::Q1 => simple::q1(events),
            Query::Q2 => simple::q2(events),
            Query::Q3 => q3::build(events),
            Query::Q4 => q4::build(events),
            Query::Q5 => q5::build(events),
            Query::Q7 => q7::build(events),
            Query::Q8 => q8::build(events),
            Query::Q11 => q11::build(events),
            Query::Q18 => q18::build(events),
        }
    }

    /// The name of the operator that keeps the query's keyed state and sees records
    /// throughout the stream (the first window stage of q5 and q7), for failure injection;
    /// `None` for the stateless q0, q1 and q2.
    pub fn stateful_operator(self) -> Option<&'static str> {
        match self {
            Query::Q0 | Query::Q1 | Query::Q2 => None,
            Query::Q3 => Some("q3-join"),
            Query::Q4 => Some("q4-closing-price"),
            Query::Q5 => Some("q5-count"),
            Query::Q7 => Some("q7-local-max"),
            Query::Q8 => Some("q8-join"),
            Query::Q11 => Some("q11-sessions"),
            Query::Q18 => Some("q18-last-bid"),
        }
    }

    /// The columns of the query's rows, for people.
    pub fn columns(self) -> &'static str {
        match self {
            Query::Q0 | Query::Q1 => "auction,bidder,price,dateTime,extra",
            Query::Q2 => "auction,price",
            Query::Q3 => "name,city,state,id",
            Query::Q4 => "category,avg_final_price",
            Query::Q5 => "auction,num",
            Query::Q7 => "auction,price,bidder,dateTime,extra",
            Query::Q8 => "id,name,starttime",
            Query::Q11 => "bidder,bid_count,starttime,endtime",
            Query::Q18 => "auction,bidder,price,channel,url,dateTime,extra",
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = match self {
            Query::Q0 => 0,
            Query::Q1 => 1,
            Query::Q2 => 2,
            Query::Q3 => 3,
            Query::Q4 => 4,
            Query::Q5 => 5,
            Query::Q7 => 7,
            Query::Q8 => 8,
            Query::Q11 => 11,
            Query::Q18 => 18,
        };
        write!(f, "q{n}")
    }
}

/// A name that is not one of the queries.
#[derive(Debug, thiserror::Error)]
#[error("unknown query {0:?}: expected one of q0 q1 q2 q3 q4 q5 q7 q8 q11 q18")]
pub struct UnknownQuery(String);

impl FromStr for Query {
    type Err = UnknownQuery;

    fn from_str(s: &str) -> Result<Self, UnknownQuery> {
        Query::ALL
            .into_iter()
            .find(|q| q.to_string().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownQuery(s.to_owned()))
    }
}

/// The bids of the event stream, with their event time.
pub(crate) fn bids(events: Stream<Event>) -> Stream<crate::event::Bid> {
    use snapflow_operators::FlatMapExt;
    events
        .flat_map_with(
            |e: Event, out: &mut snapflow_engine::Output<crate::event::Bid>| {
                if let Event::Bid(b) = e {
                    out.push(b);
                }
            },
        )
        .name("bids")
        .with_timestamp_assigner(|b: &crate::event::Bid| b.date_time)
}

pub(crate) use q18::row as q18_row;

/// A BIGINT value from one of the generator's ids, prices or categories.
pub(crate) fn int(n: usize) -> crate::row::Value {
    crate::row::Value::Int(n as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for q in Query::ALL {
            assert_eq!(q.to_string().parse::<Query>().unwrap(), q);
        }
        assert!("q6".parse::<Query>().is_err());
        assert_eq!("Q11".parse::<Query>().unwrap(), Query::Q11);
    }
}
