//! The events (the `nexmark` crate's own types) and the pinned generator configuration.

use nexmark::config::NexmarkConfig;
pub use nexmark::event::{Auction, Bid, Event, Person};
use nexmark::EventGenerator;

/// Event 0's time, ms since the epoch (2015-07-15T00:00:00Z, Beam Nexmark's `BASE_TIME`): the
/// base time `../shared/peers/nexmark_gen.sh` pins the event file to.
pub const BASE_TIME_MS: u64 = 1_436_918_400_000;

/// The watermarks' bounded out-of-orderness, as in Flink's Nexmark suite
/// (`WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND`).
pub const OUT_OF_ORDERNESS_MS: u64 = 4_000;

/// The generator's configuration: the crate's defaults (1:3:46 mix, hot auctions, bidders
/// and sellers, 10,000 events per second of event time, in order) with the base time pinned.
pub fn config() -> NexmarkConfig {
    NexmarkConfig {
        base_time: BASE_TIME_MS,
        ..NexmarkConfig::default()
    }
}

/// Events `start, start + step, ...`, a pure function of the event number.
pub fn generator(start: u64, step: u64) -> EventGenerator {
    EventGenerator::new(config())
        .with_offset(start)
        .with_step(step.max(1))
}

/// The first `count` events, in order: what the sequential references read.
pub fn generate(count: u64) -> Vec<Event> {
    generator(0, 1).take(count as usize).collect()
}

/// An event's time, ms since the epoch.
pub fn event_time(event: &Event) -> u64 {
    event.timestamp()
}

/// The watermark after events up to time `max_seen`: Flink's bounded out-of-orderness,
/// `max_seen - 4000 - 1`.
pub fn watermark_after(max_seen: u64) -> u64 {
    max_seen.saturating_sub(OUT_OF_ORDERNESS_MS + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_is_the_pinned_base_plus_a_tenth_of_a_ms_per_event() {
        let events = generate(50);
        assert_eq!(event_time(&events[0]), BASE_TIME_MS);
        assert!(matches!(events[0], Event::Person(_)));
        assert!(matches!(events[1], Event::Auction(_)));
        assert!(matches!(events[4], Event::Bid(_)));
        assert_eq!(event_time(&events[49]), BASE_TIME_MS + 5);
    }

    /// The first 100 lines of the Flink peer's event file (`nexmark_gen.sh 100000`, md5
    /// a170560cde41ec487fe31994caddde63), made by the crate's binary with the wall clock as
    /// base time and then shifted to the pinned one.
    const FILE_HEAD: &str = include_str!("../testdata/events-head-100.json");

    fn same_as_file(lines: &str, count: usize) {
        let events = generate(count as u64);
        let mut n = 0;
        for (line, event) in lines.lines().zip(&events) {
            assert_eq!(
                &serde_json::from_str::<Event>(line).unwrap(),
                event,
                "line {}",
                n + 1
            );
            assert_eq!(
                serde_json::to_string(event).unwrap(),
                line,
                "line {}",
                n + 1
            );
            n += 1;
        }
        assert_eq!(n, count);
    }

    #[test]
    fn generated_events_are_the_peer_files_events() {
        same_as_file(FILE_HEAD, 100);
    }

    /// The same on a whole event file, when `NEXMARK_EVENTS_FILE` names one (made by
    /// `../shared/peers/nexmark_gen.sh N`, which needs a `cargo install` first).
    #[test]
    fn generated_events_are_a_whole_peer_file_when_given() {
        if let Ok(path) = std::env::var("NEXMARK_EVENTS_FILE") {
            let text = std::fs::read_to_string(&path).unwrap();
            same_as_file(&text, text.lines().count());
        }
    }

    #[test]
    fn a_generator_seeks_by_offset_and_step() {
        let all = generate(100);
        let odd: Vec<Event> = generator(1, 2).take(50).collect();
        for (i, e) in odd.iter().enumerate() {
            assert_eq!(e, &all[2 * i + 1]);
        }
    }
}
