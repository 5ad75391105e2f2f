#![allow(dead_code)] // Shared by the nexmark example and its tests.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! Nexmark: a deterministic, seekable source over the `nexmark` crate's generator, the
//! queries (q0, q1, q2, q3, q4, q5, q7, q8, q11, q18, with Flink's Nexmark SQL semantics: the
//! peer's `queries/*.sql`, and Flink's Nexmark suite for q4 and q18), and a sequential
//! implementation of each, written without the engine.
//!
//! q4 and q18 are not windowed: in Flink they produce a changelog, whose final state on a
//! bounded input is their result. Here they emit that final state once the input has ended
//! (an event-time timer at the end of time), which is what a comparison of results needs.
//!
//! The source's position is the event number: task `i` of `p` reads events `i, i + p, ...`,
//! each a pure function of its number (event time included: 0.1 ms apart from the pinned
//! base time), so a resumed task regenerates exactly what it would have read. Each task's
//! events are in time order, so watermarks are generated per split in the source
//! (`max_seen - 1`).

use nexmark::config::NexmarkConfig;
use nexmark::event::{Bid, Event, Person};
use nexmark::EventGenerator;
use snapflow::engine::{ReadStatus, Source, SourcePosition, SourceReader};
use snapflow::operators::time::{Context, KeyedProcessFunction, WatermarkStrategy};
use snapflow::operators::window::{EventTimeSessionWindows, SlidingEventTimeWindows, Window};
use snapflow::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Event 0's time: 2015-07-15T00:00:00Z, Beam Nexmark's base time (the peers' default).
pub const BASE_TIME_MS: u64 = 1_436_918_400_000;

/// The queries this module runs.
pub const QUERIES: [&str; 10] = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q11", "q18"];

fn config() -> NexmarkConfig {
    NexmarkConfig {
        base_time: BASE_TIME_MS,
        ..NexmarkConfig::default()
    }
}

/// The first `events` Nexmark events, split over the source's tasks by event number.
pub struct NexmarkSource {
    pub events: u64,
}

struct NexmarkReader {
    generator: EventGenerator,
    /// The next event number this task reads.
    next: u64,
    step: u64,
    events: u64,
}

impl Source for NexmarkSource {
    type Out = Event;

    fn name(&self) -> String {
        "nexmark".to_owned()
    }

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<Event>>, BoxError> {
        let (next, step) = (task.index as u64, task.parallelism as u64);
        Ok(Box::new(NexmarkReader {
            generator: EventGenerator::new(config())
                .with_offset(next)
                .with_step(step),
            next,
            step,
            events: self.events,
        }))
    }
}

impl SourceReader<Event> for NexmarkReader {
    fn read_batch(&mut self, batch: &mut Vec<Event>, max: usize) -> Result<ReadStatus, BoxError> {
        for _ in 0..max {
            if self.next >= self.events {
                break;
            }
            batch.push(self.generator.next().ok_or("the generator ended")?);
            self.next += self.step;
        }
        Ok(if self.next >= self.events {
            ReadStatus::Exhausted
        } else {
            ReadStatus::More
        })
    }

    fn position(&self) -> Option<SourcePosition> {
        Some(SourcePosition {
            offset: self.next.to_le_bytes().to_vec(),
            description: format!("event {}", self.next),
        })
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        let bytes: [u8; 8] = position.offset.as_slice().try_into()?;
        let next = u64::from_le_bytes(bytes);
        if next % self.step != self.generator.offset() % self.step {
            return Err(format!("event {next} is not one of this task's").into());
        }
        self.next = next;
        self.generator = EventGenerator::new(config())
            .with_offset(next)
            .with_step(self.step);
        Ok(())
    }
}

/// Every event, in number order: the input of the sequential implementations.
pub fn all_events(events: u64) -> Vec<Event> {
    EventGenerator::new(config())
        .take(events as usize)
        .collect()
}

fn bids_of(events: &[Event]) -> impl Iterator<Item = &Bid> {
    events.iter().filter_map(|e| match e {
        Event::Bid(b) => Some(b),
        _ => None,
    })
}

/// One output row, as text: the queries' results are compared row for row.
pub type Row = String;

/// Where the events come from.
#[derive(Clone, Debug)]
pub enum Input {
    /// The first N events of the generator.
    Generate(u64),
    /// A JSON-lines event file as `nexmark --number N` writes it (the Flink peer's input).
    File(std::path::PathBuf),
}

/// Parses event-file lines; a line that is not an event fails the job, quoting it.
struct ParseEvents;

impl snapflow::engine::UnaryOperator<String, Event> for ParseEvents {
    fn process_batch(
        &mut self,
        batch: Vec<String>,
        out: &mut Output<Event>,
    ) -> Result<(), BoxError> {
        for line in batch {
            if line.trim().is_empty() {
                continue;
            }
            let event: Event = serde_json::from_str(&line).map_err(|e| {
                let shown: String = line.chars().take(80).collect();
                format!("not a Nexmark event ({e}): {shown}")
            })?;
            out.push(event);
        }
        Ok(())
    }
}

/// Builds query `query` over the first `events` events, its rows into `sink`.
///
/// # Panics
/// For a query not in [`QUERIES`].
pub fn build<S: snapflow::engine::Sink<Row>>(query: &str, events: u64, sink: S) -> Job {
    build_from(query, &Input::Generate(events), sink)
}

/// Builds query `query` over `input`, its rows into `sink`.
///
/// # Panics
/// For a query not in [`QUERIES`].
pub fn build_from<S: snapflow::engine::Sink<Row>>(query: &str, input: &Input, sink: S) -> Job {
    let job = Job::new(format!("nexmark-{query}"));
    let strategy = WatermarkStrategy::for_monotonous_timestamps()
        .with_timestamp_assigner(|e: &Event| e.timestamp());
    let input = match input {
        Input::Generate(events) => job
            .source_with_watermarks(NexmarkSource { events: *events }, strategy)
            .name("nexmark")
            .uid("nexmark"),
        // Each task reads a contiguous part of the file, in time order: one generator per
        // task, right behind it (a forward edge).
        Input::File(path) => job
            .source(TextFileSource::new(path))
            .name("read")
            .uid("read")
            .unary("parse", |_| ParseEvents)
            .name("nexmark")
            .uid("nexmark")
            .assign_timestamps_and_watermarks(strategy)
            .name("watermarks")
            .uid("watermarks"),
    };
    if ["q3", "q4", "q8"].contains(&query) {
        let rows = match query {
            "q3" => q3(input),
            "q4" => q4(input),
            _ => q8(input),
        };
        rows.name("query")
            .uid("query")
            .sink(sink)
            .name("write")
            .uid("write");
        return job;
    }
    let bids = input
        .flat_map(|e: Event| match e {
            Event::Bid(b) => Some(b),
            _ => None,
        })
        .name("bids")
        .uid("bids")
        .with_timestamp_assigner(|b: &Bid| b.date_time);
    let rows: Stream<Row> = match query {
        "q0" => bids.map(|b: Bid| q0_row(&b)),
        "q1" => bids.map(|b: Bid| q1_row(&b)),
        "q2" => bids.flat_map(|b: Bid| {
            b.auction
                .is_multiple_of(123)
                .then(|| format!("{},{}", b.auction, b.price))
        }),
        "q5" => q5(bids),
        "q7" => q7(bids),
        "q18" => q18(bids),
        "q11" => bids
            .key_by(|b: &Bid| b.bidder as u64)
            .window(EventTimeSessionWindows::with_gap(Duration::from_secs(10)))
            .aggregate_with(Count, |bidder: &u64, w: Window, n: u64| {
                format!("{bidder},{n},{},{}", w.start, w.end)
            }),
        other => panic!("unknown query {other}"),
    };
    rows.name("query")
        .uid("query")
        .sink(sink)
        .name("write")
        .uid("write");
    job
}

/// q3's person side: `(id, name, city, state)`.
type Seller = (u64, String, String, String);

/// q3: auctions of category 10 with their sellers from Oregon, Idaho or California (a regular
/// join: whichever side comes first waits in state for the other).
fn q3(events: Stream<Event>) -> Stream<Row> {
    let persons = events
        .clone()
        .flat_map(|e: Event| match e {
            Event::Person(p) if ["or", "id", "ca"].contains(&p.state.as_str()) => {
                Some((p.id as u64, p.name, p.city, p.state))
            }
            _ => None,
        })
        .name("sellers")
        .uid("sellers");
    let auctions = events
        .flat_map(|e: Event| match e {
            Event::Auction(a) if a.category == 10 => Some((a.id as u64, a.seller as u64)),
            _ => None,
        })
        .name("auctions")
        .uid("auctions");
    auctions
        .key_by(|a: &(u64, u64)| a.1)
        .connect(persons.key_by(|p: &Seller| p.0))
        .process(
            |_: &u64,
             record: Either<(u64, u64), Seller>,
             state: &mut (ValueState<Seller>, ListState<u64>),
             out: &mut Output<Row>| {
                match record {
                    Either::Left((auction, _)) => match state.0.get() {
                        Some(p) => out.push(q3_row(p, auction)),
                        None => state.1.add(auction),
                    },
                    Either::Right(person) => {
                        for auction in state.1.take() {
                            out.push(q3_row(&person, auction));
                        }
                        state.0.set(person);
                    }
                }
                Ok(())
            },
        )
}

fn q3_row((_, name, city, state): &Seller, auction: u64) -> Row {
    format!("{name},{city},{state},{auction}")
}

/// q8's input: a new person `(id, name)` or an auction's seller, with its time.
#[derive(Clone, Debug)]
enum NewOrSelling {
    Person(u64, String, u64),
    Seller(u64, u64),
}

impl NewOrSelling {
    fn time(&self) -> u64 {
        match self {
            NewOrSelling::Person(_, _, t) | NewOrSelling::Seller(_, t) => *t,
        }
    }

    fn id(&self) -> u64 {
        match self {
            NewOrSelling::Person(id, _, _) | NewOrSelling::Seller(id, _) => *id,
        }
    }
}

/// q8: the persons who registered and opened an auction in the same 10 s tumbling window,
/// emitted at the window's end.
fn q8(events: Stream<Event>) -> Stream<Row> {
    events
        .flat_map(|e: Event| match e {
            Event::Person(p) => Some(NewOrSelling::Person(p.id as u64, p.name, p.date_time)),
            Event::Auction(a) => Some(NewOrSelling::Seller(a.seller as u64, a.date_time)),
            Event::Bid(_) => None,
        })
        .name("persons-and-sellers")
        .uid("persons-and-sellers")
        .with_timestamp_assigner(NewOrSelling::time)
        .key_by(|e: &NewOrSelling| (e.id(), e.time() / TEN_S * TEN_S))
        .process_function(NewAndSelling)
}

/// Per (person, window): the person's name if they registered in it, and whether they sold.
struct NewAndSelling;

impl KeyedProcessFunction<(u64, u64), NewOrSelling, Row> for NewAndSelling {
    type State = (ValueState<String>, ValueState<bool>);

    fn process_element(
        &self,
        record: NewOrSelling,
        ctx: &mut Context<'_, (u64, u64), Row>,
        (name, sold): &mut (ValueState<String>, ValueState<bool>),
    ) -> Result<(), BoxError> {
        let (_, start) = *ctx.key();
        ctx.timer_service()
            .register_event_time_timer(start + TEN_S - 1);
        match record {
            NewOrSelling::Person(_, n, _) => name.set(n),
            NewOrSelling::Seller(..) => sold.set(true),
        }
        Ok(())
    }

    fn on_timer(
        &self,
        _: u64,
        ctx: &mut Context<'_, (u64, u64), Row>,
        (name, sold): &mut (ValueState<String>, ValueState<bool>),
    ) -> Result<(), BoxError> {
        let (id, start) = *ctx.key();
        if let (Some(n), Some(true)) = (name.take(), sold.take()) {
            ctx.collect(format!("{id},{n},{start}"));
        }
        Ok(())
    }
}

/// q4's input: an auction `(id, category, start, expires)` or a bid `(auction, time, price)`.
#[derive(Clone, Debug)]
enum AuctionOrBid {
    Auction(u64, u64, u64, u64),
    Bid(u64, u64, u64),
}

/// The end of time: a timer there fires once the input has ended.
const END_OF_TIME: u64 = u64::MAX;

/// q4: per category, the average (integer, as Flink's `AVG` of a `BIGINT`) over its auctions
/// of the highest bid made while the auction was open (`dateTime BETWEEN start AND expires`).
fn q4(events: Stream<Event>) -> Stream<Row> {
    events
        .flat_map(|e: Event| match e {
            Event::Auction(a) => Some(AuctionOrBid::Auction(
                a.id as u64,
                a.category as u64,
                a.date_time,
                a.expires,
            )),
            Event::Bid(b) => Some(AuctionOrBid::Bid(
                b.auction as u64,
                b.date_time,
                b.price as u64,
            )),
            Event::Person(_) => None,
        })
        .name("auctions-and-bids")
        .uid("auctions-and-bids")
        .key_by(|e: &AuctionOrBid| match e {
            AuctionOrBid::Auction(id, ..) | AuctionOrBid::Bid(id, ..) => *id,
        })
        .process_function(WinningBid)
        .name("winning-bids")
        .uid("winning-bids")
        .key_by(|w: &(u64, u64, u64)| w.0)
        .process_function(AveragePerCategory)
}

/// Per auction: its category and window, the highest valid bid so far, and bids that came
/// before the auction itself (from another source task); emits `(category, auction, max)`
/// whenever the maximum rises.
struct WinningBid;

/// `(auction (category, start, expires), highest valid price, bids waiting for the auction)`.
type WinningState = (
    ValueState<(u64, u64, u64)>,
    ValueState<u64>,
    ListState<(u64, u64)>,
);

impl KeyedProcessFunction<u64, AuctionOrBid, (u64, u64, u64)> for WinningBid {
    type State = WinningState;

    fn process_element(
        &self,
        record: AuctionOrBid,
        ctx: &mut Context<'_, u64, (u64, u64, u64)>,
        (auction, max, waiting): &mut WinningState,
    ) -> Result<(), BoxError> {
        let bids = match record {
            AuctionOrBid::Auction(_, category, start, expires) => {
                auction.set((category, start, expires));
                waiting.take()
            }
            AuctionOrBid::Bid(_, time, price) => {
                if auction.get().is_none() {
                    waiting.add((time, price));
                    return Ok(());
                }
                vec![(time, price)]
            }
        };
        let (category, start, expires) = *auction.get().expect("known by now");
        let before = max.get().copied();
        for (time, price) in bids {
            if (start..=expires).contains(&time) && max.get().is_none_or(|m| price > *m) {
                max.set(price);
            }
        }
        if let Some(now) = max.get().copied().filter(|m| Some(*m) != before) {
            let id = *ctx.key();
            ctx.collect((category, id, now));
        }
        Ok(())
    }
}

/// Per category: each auction's highest bid; the average once the input has ended.
struct AveragePerCategory;

impl KeyedProcessFunction<u64, (u64, u64, u64), Row> for AveragePerCategory {
    type State = MapState<u64, u64>;

    fn process_element(
        &self,
        (_, auction, max): (u64, u64, u64),
        ctx: &mut Context<'_, u64, Row>,
        maxima: &mut MapState<u64, u64>,
    ) -> Result<(), BoxError> {
        if maxima.is_empty() {
            ctx.timer_service().register_event_time_timer(END_OF_TIME);
        }
        maxima.insert(auction, max);
        Ok(())
    }

    fn on_timer(
        &self,
        _: u64,
        ctx: &mut Context<'_, u64, Row>,
        maxima: &mut MapState<u64, u64>,
    ) -> Result<(), BoxError> {
        let (sum, n) = maxima
            .iter()
            .fold((0u128, 0u128), |(s, n), (_, m)| (s + u128::from(*m), n + 1));
        let category = *ctx.key();
        if let Some(avg) = sum.checked_div(n) {
            ctx.collect(format!("{category},{avg}"));
        }
        *maxima = MapState::default();
        Ok(())
    }
}

/// q18's state: one bid, serializable (the crate's `Bid` is not).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
struct LastBid {
    date_time: u64,
    price: usize,
    extra: String,
    auction: usize,
    bidder: usize,
    channel: String,
    url: String,
}

impl From<Bid> for LastBid {
    fn from(b: Bid) -> Self {
        LastBid {
            date_time: b.date_time,
            price: b.price,
            extra: b.extra,
            auction: b.auction,
            bidder: b.bidder,
            channel: b.channel,
            url: b.url,
        }
    }
}

/// The order that picks a bidder's last bid on an auction: latest time first (Flink's
/// `ORDER BY dateTime DESC`); ties, which Flink leaves open, go to the higher price, then the
/// greater `extra`, so that the result is one function of the input.
fn q18_rank(b: &LastBid) -> (u64, usize, &str) {
    (b.date_time, b.price, &b.extra)
}

/// q18: each bidder's last bid on each auction, once the input has ended.
fn q18(bids: Stream<Bid>) -> Stream<Row> {
    bids.map(LastBid::from)
        .name("last-bid-fields")
        .uid("last-bid-fields")
        .key_by(|b: &LastBid| (b.bidder as u64, b.auction as u64))
        .process_function(LastBidOf)
}

struct LastBidOf;

impl KeyedProcessFunction<(u64, u64), LastBid, Row> for LastBidOf {
    type State = ValueState<LastBid>;

    fn process_element(
        &self,
        bid: LastBid,
        ctx: &mut Context<'_, (u64, u64), Row>,
        last: &mut ValueState<LastBid>,
    ) -> Result<(), BoxError> {
        match last.get() {
            None => {
                ctx.timer_service().register_event_time_timer(END_OF_TIME);
                last.set(bid);
            }
            Some(old) if q18_rank(&bid) > q18_rank(old) => last.set(bid),
            Some(_) => {}
        }
        Ok(())
    }

    fn on_timer(
        &self,
        _: u64,
        ctx: &mut Context<'_, (u64, u64), Row>,
        last: &mut ValueState<LastBid>,
    ) -> Result<(), BoxError> {
        if let Some(b) = last.take() {
            ctx.collect(q18_row(&b));
        }
        Ok(())
    }
}

fn q18_row(b: &LastBid) -> Row {
    format!(
        "{},{},{},{},{},{},{}",
        b.auction, b.bidder, b.price, b.channel, b.url, b.date_time, b.extra
    )
}

fn q0_row(b: &Bid) -> Row {
    format!(
        "{},{},{},{},{}",
        b.auction, b.bidder, b.price, b.date_time, b.extra
    )
}

fn q1_row(b: &Bid) -> Row {
    // Flink's `0.908 * price` on a BIGINT is a DECIMAL: 3 decimal places, exact.
    let milli = b.price as u128 * 908;
    format!(
        "{},{},{}.{:03},{},{}",
        b.auction,
        b.bidder,
        milli / 1000,
        milli % 1000,
        b.date_time,
        b.extra
    )
}

/// Counts each auction's bids per HOP window (10 s, every 2 s): `(start, end, auction, n)`.
type AuctionCount = (i64, i64, u64, u64);

/// q5: per window, the auctions with the most bids.
fn q5(bids: Stream<Bid>) -> Stream<Row> {
    bids.key_by(|b: &Bid| b.auction as u64)
        .window(SlidingEventTimeWindows::of(
            Duration::from_secs(10),
            Duration::from_secs(2),
        ))
        .aggregate_with(Count, |auction: &u64, w: Window, n: u64| {
            (w.start, w.end, *auction, n)
        })
        .name("count-bids")
        .uid("count-bids")
        // A window's counts come out when the watermark passes its end: they are stamped
        // with its last millisecond, so that the next stage's timer there fires once every
        // task's counts of that window have arrived.
        .with_timestamp_assigner(|c: &AuctionCount| (c.1 - 1) as u64)
        .key_by(|c: &AuctionCount| (c.0, c.1))
        .process_function(HottestInWindow)
}

/// Per window: the largest count and the auctions with it, emitted at the window's end.
struct HottestInWindow;

impl KeyedProcessFunction<(i64, i64), AuctionCount, Row> for HottestInWindow {
    type State = ValueState<(u64, Vec<u64>)>;

    fn process_element(
        &self,
        (_, end, auction, n): AuctionCount,
        ctx: &mut Context<'_, (i64, i64), Row>,
        best: &mut ValueState<(u64, Vec<u64>)>,
    ) -> Result<(), BoxError> {
        match best.get_mut() {
            None => {
                best.set((n, vec![auction]));
                ctx.timer_service()
                    .register_event_time_timer((end - 1) as u64);
            }
            Some((max, auctions)) if n > *max => {
                *max = n;
                *auctions = vec![auction];
            }
            Some((max, auctions)) if n == *max => auctions.push(auction),
            Some(_) => {}
        }
        Ok(())
    }

    fn on_timer(
        &self,
        _: u64,
        ctx: &mut Context<'_, (i64, i64), Row>,
        best: &mut ValueState<(u64, Vec<u64>)>,
    ) -> Result<(), BoxError> {
        if let Some((n, auctions)) = best.take() {
            for auction in auctions {
                ctx.collect(format!("{auction},{n}"));
            }
        }
        Ok(())
    }
}

const TEN_S: u64 = 10_000;

/// q7: the bids at the maximum price of a 10 s tumbling window, with time in
/// `[window_end - 10 s, window_end]` (so a bid exactly at a window's end can match it too).
fn q7(bids: Stream<Bid>) -> Stream<Row> {
    bids.flat_map(|b: Bid| {
        let start = b.date_time / TEN_S * TEN_S;
        let mut out = vec![(start, false, b.clone())];
        if b.date_time.is_multiple_of(TEN_S) && start >= TEN_S {
            // Also a candidate for the previous window, whose end it is; it does not count
            // towards that window's maximum.
            out.push((start - TEN_S, true, b));
        }
        out
    })
    .name("window-of-bid")
    .uid("window-of-bid")
    .with_timestamp_assigner(|r: &(u64, bool, Bid)| r.2.date_time)
    .key_by(|r: &(u64, bool, Bid)| r.0)
    .process_function(HighestBid)
}

/// Per window: its maximum price and the bids at it, plus the bids at its end; emitted once
/// the watermark passes the window's end (all bids up to and including it are in).
struct HighestBid;

/// `(max price, bids at it, bids at the window's end)`.
type HighestState = (u64, Vec<Bid>, Vec<Bid>);

impl KeyedProcessFunction<u64, (u64, bool, Bid), Row> for HighestBid {
    type State = ValueState<SerdeBids>;

    fn process_element(
        &self,
        (start, at_end, bid): (u64, bool, Bid),
        ctx: &mut Context<'_, u64, Row>,
        state: &mut ValueState<SerdeBids>,
    ) -> Result<(), BoxError> {
        if state.get().is_none() {
            state.set(SerdeBids::default());
            ctx.timer_service().register_event_time_timer(start + TEN_S);
        }
        let s = &mut state.get_mut().expect("just set").0;
        let price = bid.price as u64;
        if at_end {
            s.2.push(bid);
        } else if s.1.is_empty() || price > s.0 {
            s.0 = price;
            s.1 = vec![bid];
        } else if price == s.0 {
            s.1.push(bid);
        }
        Ok(())
    }

    fn on_timer(
        &self,
        _: u64,
        ctx: &mut Context<'_, u64, Row>,
        state: &mut ValueState<SerdeBids>,
    ) -> Result<(), BoxError> {
        let Some(SerdeBids((max, at_max, at_end))) = state.take() else {
            return Ok(());
        };
        if at_max.is_empty() {
            return Ok(()); // only bids at its end: the window has no maximum of its own
        }
        for b in at_max
            .iter()
            .chain(at_end.iter().filter(|b| b.price as u64 == max))
        {
            ctx.collect(q7_row(b));
        }
        Ok(())
    }
}

fn q7_row(b: &Bid) -> Row {
    format!(
        "{},{},{},{},{}",
        b.auction, b.price, b.bidder, b.date_time, b.extra
    )
}

/// q7's state, serializable: the crate's `Bid` is not, so its fields are kept.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct SerdeBids(#[serde(with = "highest_serde")] HighestState);

mod highest_serde {
    use super::HighestState;
    use nexmark::event::Bid;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Fields = (usize, usize, usize, String, String, u64, String);

    fn fields(b: &Bid) -> Fields {
        (
            b.auction,
            b.bidder,
            b.price,
            b.channel.clone(),
            b.url.clone(),
            b.date_time,
            b.extra.clone(),
        )
    }

    fn bid(f: Fields) -> Bid {
        Bid {
            auction: f.0,
            bidder: f.1,
            price: f.2,
            channel: f.3,
            url: f.4,
            date_time: f.5,
            extra: f.6,
        }
    }

    pub fn serialize<S: Serializer>(s: &HighestState, ser: S) -> Result<S::Ok, S::Error> {
        let at_max: Vec<Fields> = s.1.iter().map(fields).collect();
        let at_end: Vec<Fields> = s.2.iter().map(fields).collect();
        (s.0, at_max, at_end).serialize(ser)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<HighestState, D::Error> {
        let (max, at_max, at_end): (u64, Vec<Fields>, Vec<Fields>) = Deserialize::deserialize(de)?;
        Ok((
            max,
            at_max.into_iter().map(bid).collect(),
            at_end.into_iter().map(bid).collect(),
        ))
    }
}

/// The sequential result of `query` over the first `events` events: its rows, sorted.
pub fn expected(query: &str, events: u64) -> Vec<Row> {
    expected_of(query, &all_events(events))
}

/// The events of a JSON-lines event file, in file order.
///
/// # Errors
/// The file cannot be read, or a line is not an event.
pub fn read_events(path: &std::path::Path) -> Result<Vec<Event>, BoxError> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1).into())
        })
        .collect()
}

/// The sequential result of `query` over `events`: its rows, sorted.
pub fn expected_of(query: &str, events: &[Event]) -> Vec<Row> {
    let bids: Vec<&Bid> = bids_of(events).collect();
    let mut rows: Vec<Row> = match query {
        "q0" => bids.iter().map(|b| q0_row(b)).collect(),
        "q1" => bids.iter().map(|b| q1_row(b)).collect(),
        "q2" => bids
            .iter()
            .filter(|b| b.auction.is_multiple_of(123))
            .map(|b| format!("{},{}", b.auction, b.price))
            .collect(),
        "q5" => {
            // (window start) -> auction -> bids, over every HOP window holding each bid.
            let mut counts: BTreeMap<u64, HashMap<usize, u64>> = BTreeMap::new();
            for b in &bids {
                let mut start = b.date_time / 2_000 * 2_000;
                loop {
                    *counts
                        .entry(start)
                        .or_default()
                        .entry(b.auction)
                        .or_default() += 1;
                    if start < 2_000 || start + TEN_S <= b.date_time + 2_000 {
                        break;
                    }
                    start -= 2_000;
                }
            }
            let mut rows = Vec::new();
            for per_auction in counts.values() {
                let max = per_auction.values().max().copied().unwrap_or(0);
                for (auction, n) in per_auction {
                    if *n == max {
                        rows.push(format!("{auction},{n}"));
                    }
                }
            }
            rows
        }
        "q7" => {
            let mut max: BTreeMap<u64, usize> = BTreeMap::new();
            for b in &bids {
                let m = max.entry(b.date_time / TEN_S * TEN_S).or_default();
                *m = (*m).max(b.price);
            }
            let mut rows = Vec::new();
            for (start, m) in &max {
                for b in &bids {
                    if b.price == *m && b.date_time >= *start && b.date_time <= start + TEN_S {
                        rows.push(q7_row(b));
                    }
                }
            }
            rows
        }
        "q3" => {
            let sellers: HashMap<usize, &Person> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Person(p) if ["or", "id", "ca"].contains(&p.state.as_str()) => {
                        Some((p.id, p))
                    }
                    _ => None,
                })
                .collect();
            events
                .iter()
                .filter_map(|e| match e {
                    Event::Auction(a) if a.category == 10 => sellers
                        .get(&a.seller)
                        .map(|p| format!("{},{},{},{}", p.name, p.city, p.state, a.id)),
                    _ => None,
                })
                .collect()
        }
        "q4" => {
            let auctions: HashMap<usize, (usize, u64, u64)> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Auction(a) => Some((a.id, (a.category, a.date_time, a.expires))),
                    _ => None,
                })
                .collect();
            let mut highest: HashMap<usize, usize> = HashMap::new();
            for b in &bids {
                if let Some((_, start, expires)) = auctions.get(&b.auction) {
                    if b.date_time >= *start && b.date_time <= *expires {
                        let h = highest.entry(b.auction).or_default();
                        *h = (*h).max(b.price);
                    }
                }
            }
            let mut per_category: BTreeMap<usize, (u128, u128)> = BTreeMap::new();
            for (auction, price) in &highest {
                let (sum, n) = per_category.entry(auctions[auction].0).or_default();
                *sum += *price as u128;
                *n += 1;
            }
            per_category
                .iter()
                .map(|(c, (sum, n))| format!("{c},{}", sum / n))
                .collect()
        }
        "q18" => {
            let mut last: HashMap<(usize, usize), &Bid> = HashMap::new();
            for b in &bids {
                let key = (b.bidder, b.auction);
                let newer = last.get(&key).is_none_or(|old| {
                    (b.date_time, b.price, b.extra.as_str())
                        > (old.date_time, old.price, old.extra.as_str())
                });
                if newer {
                    last.insert(key, b);
                }
            }
            last.values()
                .map(|b| {
                    format!(
                        "{},{},{},{},{},{},{}",
                        b.auction, b.bidder, b.price, b.channel, b.url, b.date_time, b.extra
                    )
                })
                .collect()
        }
        "q8" => {
            let window = |t: u64| t / TEN_S * TEN_S;
            let persons: Vec<(&Person, u64)> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Person(p) => Some((p, window(p.date_time))),
                    _ => None,
                })
                .collect();
            let selling: std::collections::HashSet<(usize, u64)> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Auction(a) => Some((a.seller, window(a.date_time))),
                    _ => None,
                })
                .collect();
            persons
                .into_iter()
                .filter(|(p, w)| selling.contains(&(p.id, *w)))
                .map(|(p, w)| format!("{},{},{w}", p.id, p.name))
                .collect()
        }
        "q11" => {
            let mut per_bidder: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
            for b in &bids {
                per_bidder.entry(b.bidder).or_default().push(b.date_time);
            }
            let mut rows = Vec::new();
            for (bidder, mut times) in per_bidder {
                times.sort_unstable();
                let (mut first, mut last, mut n) = (times[0], times[0], 0u64);
                for t in times {
                    if t > last + TEN_S {
                        rows.push(format!("{bidder},{n},{first},{}", last + TEN_S));
                        first = t;
                        n = 0;
                    }
                    last = t;
                    n += 1;
                }
                rows.push(format!("{bidder},{n},{first},{}", last + TEN_S));
            }
            rows
        }
        other => panic!("unknown query {other}"),
    };
    rows.sort();
    rows
}
