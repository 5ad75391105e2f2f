//! Every query as plain Rust over the whole vector of events: no engine, no event time, no
//! windows operator; each is written from the query's SQL, as the peer's `reference.py` is.
//! The pipelines in [`query`](crate::query) are tested against these.

use crate::event::{Bid, Event};
use crate::query::Query;
use crate::row::{Row, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

fn int(n: usize) -> Value {
    Value::Int(n as i64)
}

/// The query's result rows over `events` (a bounded input: at its end every window closes).
pub fn run(query: Query, events: &[Event]) -> Vec<Row> {
    let bids: Vec<&Bid> = events
        .iter()
        .filter_map(|e| match e {
            Event::Bid(b) => Some(b),
            _ => None,
        })
        .collect();
    match query {
        Query::Q0 => bids.iter().map(|b| bid_row(b, int(b.price))).collect(),
        Query::Q1 => bids
            .iter()
            .map(|b| bid_row(b, Value::Milli(b.price as i64 * 908)))
            .collect(),
        Query::Q2 => bids
            .iter()
            .filter(|b| b.auction % 123 == 0)
            .map(|b| Row(vec![int(b.auction), int(b.price)]))
            .collect(),
        Query::Q3 => q3(events),
        Query::Q4 => q4(events, &bids),
        Query::Q5 => q5(&bids),
        Query::Q7 => q7(&bids),
        Query::Q8 => q8(events),
        Query::Q11 => q11(&bids),
        Query::Q18 => q18(&bids),
    }
}

fn bid_row(b: &Bid, price: Value) -> Row {
    Row(vec![
        int(b.auction),
        int(b.bidder),
        price,
        Value::Time(b.date_time),
        Value::Str(b.extra.clone()),
    ])
}

/// Every (auction in category 10, its seller in or/id/ca) pair.
fn q3(events: &[Event]) -> Vec<Row> {
    let mut sellers: HashMap<usize, Vec<&crate::event::Person>> = HashMap::new();
    for e in events {
        if let Event::Person(p) = e {
            if ["or", "id", "ca"].contains(&p.state.as_str()) {
                sellers.entry(p.id).or_default().push(p);
            }
        }
    }
    let mut rows = Vec::new();
    for e in events {
        if let Event::Auction(a) = e {
            if a.category == 10 {
                for p in sellers.get(&a.seller).into_iter().flatten() {
                    rows.push(Row(vec![
                        Value::Str(p.name.clone()),
                        Value::Str(p.city.clone()),
                        Value::Str(p.state.clone()),
                        int(a.id),
                    ]));
                }
            }
        }
    }
    rows
}

/// Per category, the integer average of the auctions' highest bid in `[dateTime, expires]`.
fn q4(events: &[Event], bids: &[&Bid]) -> Vec<Row> {
    let mut by_auction: HashMap<usize, Vec<&Bid>> = HashMap::new();
    for b in bids {
        by_auction.entry(b.auction).or_default().push(b);
    }
    let mut per_category: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    for e in events {
        if let Event::Auction(a) = e {
            let closing = by_auction
                .get(&a.id)
                .into_iter()
                .flatten()
                .filter(|b| a.date_time <= b.date_time && b.date_time <= a.expires)
                .map(|b| b.price)
                .max();
            if let Some(price) = closing {
                let (sum, n) = per_category.entry(a.category).or_default();
                *sum += price as u64;
                *n += 1;
            }
        }
    }
    per_category
        .into_iter()
        .map(|(c, (sum, n))| Row(vec![int(c), int((sum / n) as usize)]))
        .collect()
}

/// Per sliding window (10 s every 2 s), the auctions with the most bids.
fn q5(bids: &[&Bid]) -> Vec<Row> {
    let (size, slide) = (10_000, 2_000);
    let mut counts: HashMap<u64, HashMap<usize, u64>> = HashMap::new();
    for b in bids {
        let t = b.date_time;
        let mut start = t - t % slide;
        loop {
            *counts
                .entry(start)
                .or_default()
                .entry(b.auction)
                .or_default() += 1;
            if start < slide || start - slide + size <= t {
                break;
            }
            start -= slide;
        }
    }
    let mut rows = Vec::new();
    for per_auction in counts.values() {
        let max = per_auction.values().copied().max().unwrap_or(0);
        for (&auction, &n) in per_auction {
            if n == max {
                rows.push(Row(vec![int(auction), int(n as usize)]));
            }
        }
    }
    rows
}

/// The bids at a 10 s tumbling window's maximum price, with time in `[end - 10 s, end]`.
fn q7(bids: &[&Bid]) -> Vec<Row> {
    let size = 10_000;
    let mut max: HashMap<u64, usize> = HashMap::new();
    for b in bids {
        let m = max.entry(b.date_time - b.date_time % size).or_default();
        *m = (*m).max(b.price);
    }
    let mut rows = Vec::new();
    for b in bids {
        for (&start, &price) in &max {
            let end = start + size;
            if b.price == price && start <= b.date_time && b.date_time <= end {
                rows.push(Row(vec![
                    int(b.auction),
                    int(b.price),
                    int(b.bidder),
                    Value::Time(b.date_time),
                    Value::Str(b.extra.clone()),
                ]));
            }
        }
    }
    rows
}

/// Distinct (person id, name, window) whose id sold an auction in the same 10 s window.
fn q8(events: &[Event]) -> Vec<Row> {
    let size = 10_000;
    let mut persons = HashSet::new();
    let mut sellers = HashSet::new();
    for e in events {
        match e {
            Event::Person(p) => {
                persons.insert((p.id, p.name.clone(), p.date_time - p.date_time % size));
            }
            Event::Auction(a) => {
                sellers.insert((a.seller, a.date_time - a.date_time % size));
            }
            Event::Bid(_) => {}
        }
    }
    persons
        .into_iter()
        .filter(|(id, _, start)| sellers.contains(&(*id, *start)))
        .map(|(id, name, start)| Row(vec![int(id), Value::Str(name), Value::Time(start)]))
        .collect()
}

/// Per bidder, sessions of bids less than or exactly 10 s apart: (bidder, bids, first, last + 10 s).
fn q11(bids: &[&Bid]) -> Vec<Row> {
    let gap = 10_000;
    let mut times: HashMap<usize, Vec<u64>> = HashMap::new();
    for b in bids {
        times.entry(b.bidder).or_default().push(b.date_time);
    }
    let mut rows = Vec::new();
    let mut emit = |bidder: usize, n: usize, start: u64, last: u64| {
        rows.push(Row(vec![
            int(bidder),
            int(n),
            Value::Time(start),
            Value::Time(last + gap),
        ]));
    };
    for (bidder, mut ts) in times {
        ts.sort_unstable();
        let (mut start, mut last, mut n) = (ts[0], ts[0], 0);
        for t in ts {
            // Windows [t, t + gap) merge when they intersect or touch.
            if t > last + gap {
                emit(bidder, n, start, last);
                (start, n) = (t, 0);
            }
            last = t;
            n += 1;
        }
        emit(bidder, n, start, last);
    }
    rows
}

/// Per (bidder, auction), the latest bid (ties: the greater price, channel, url, extra).
fn q18(bids: &[&Bid]) -> Vec<Row> {
    let mut last: HashMap<(usize, usize), &Bid> = HashMap::new();
    for &b in bids {
        let slot = last.entry((b.bidder, b.auction)).or_insert(b);
        let newer = (b.date_time, b.price, &b.channel, &b.url, &b.extra)
            > (
                slot.date_time,
                slot.price,
                &slot.channel,
                &slot.url,
                &slot.extra,
            );
        if newer {
            *slot = b;
        }
    }
    last.into_values()
        .map(|b| crate::query::q18_row(b.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BASE_TIME_MS;

    fn bid(auction: usize, bidder: usize, price: usize, t: u64) -> Event {
        Event::Bid(Bid {
            auction,
            bidder,
            price,
            channel: "c".into(),
            url: "u".into(),
            date_time: BASE_TIME_MS + t,
            extra: String::new(),
        })
    }

    fn sorted(mut rows: Vec<Row>) -> Vec<String> {
        rows.sort();
        rows.iter().map(Row::to_csv).collect()
    }

    #[test]
    fn q7_counts_a_bid_at_a_window_end_for_both_windows() {
        // Window [0, 10 s) has max 9 at 5 s; the bid at exactly 10 s (price 9) is in
        // [end - 10 s, end] of the first window and is the second window's max too.
        let events = [
            bid(1, 1, 9, 5_000),
            bid(1, 2, 9, 10_000),
            bid(1, 3, 3, 12_000),
        ];
        assert_eq!(
            sorted(run(Query::Q7, &events)),
            vec![
                "1,9,1,2015-07-15 00:00:05.000,",
                "1,9,2,2015-07-15 00:00:10.000,",
                "1,9,2,2015-07-15 00:00:10.000,",
            ]
        );
    }

    #[test]
    fn q11_sessions_merge_at_exactly_the_gap() {
        let events = [bid(1, 7, 1, 0), bid(1, 7, 1, 10_000), bid(1, 7, 1, 20_001)];
        assert_eq!(
            sorted(run(Query::Q11, &events)),
            vec![
                "7,1,2015-07-15 00:00:20.001,2015-07-15 00:00:30.001",
                "7,2,2015-07-15 00:00:00.000,2015-07-15 00:00:20.000",
            ]
        );
    }

    #[test]
    fn q5_counts_each_bid_in_five_windows() {
        let events = [
            bid(1, 1, 1, 3_000),
            bid(2, 1, 1, 3_500),
            bid(2, 1, 1, 9_000),
        ];
        let rows = sorted(run(Query::Q5, &events));
        // The windows starting at -6, -4 and -2 s hold one bid of each auction (a tie); those
        // starting at 0 and 2 s hold all three (auction 2 wins); those at 4, 6 and 8 s only
        // the bid at 9 s.
        assert_eq!(rows.iter().filter(|r| r.starts_with("1,")).count(), 3);
        assert_eq!(rows.iter().filter(|r| *r == "2,1").count(), 6);
        assert_eq!(rows.iter().filter(|r| *r == "2,2").count(), 2);
    }
}
