//! Window assigners: which windows a timestamp belongs to (Flink's `WindowAssigner`s).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A time window `[start, end)`, in milliseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// The first millisecond in the window.
    pub start: i64,
    /// The first millisecond after it.
    pub end: i64,
}

impl Window {
    /// The last timestamp in the window, `end - 1`: the window fires when the watermark
    /// (or, for processing-time windows, the clock) reaches it.
    pub fn max_timestamp(&self) -> i64 {
        self.end - 1
    }

    /// Whether the two windows overlap or touch (Flink's rule for merging sessions).
    pub fn intersects(&self, other: &Window) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &Window) -> Window {
        Window {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// Which windows each record goes to; build one with [`TumblingEventTimeWindows`],
/// [`SlidingEventTimeWindows`], [`EventTimeSessionWindows`],
/// [`TumblingProcessingTimeWindows`] or [`SlidingProcessingTimeWindows`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WindowAssigner {
    /// Fixed-size, non-overlapping windows in event time.
    TumblingEventTime {
        /// Window length, ms.
        size: i64,
        /// Shift of the window boundaries, ms.
        offset: i64,
    },
    /// Fixed-size windows starting every `slide`, in event time.
    SlidingEventTime {
        /// Window length, ms.
        size: i64,
        /// Distance between window starts, ms.
        slide: i64,
    },
    /// Per-key sessions in event time: windows of `[ts, ts + gap)` merged while they overlap.
    EventTimeSession {
        /// Inactivity gap that closes a session, ms.
        gap: i64,
    },
    /// Fixed-size, non-overlapping windows in processing time.
    TumblingProcessingTime {
        /// Window length, ms.
        size: i64,
    },
    /// Fixed-size windows starting every `slide`, in processing time.
    SlidingProcessingTime {
        /// Window length, ms.
        size: i64,
        /// Distance between window starts, ms.
        slide: i64,
    },
}

/// A length in ms: at least 1, since a window of no length holds nothing.
fn ms(d: Duration) -> i64 {
    offset_ms(d).max(1)
}

fn offset_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The start of the window of `size` (boundaries shifted by `offset`) that holds `ts`
/// (Flink's `TimeWindow.getWindowStartWithOffset`).
fn window_start(ts: i64, offset: i64, size: i64) -> i64 {
    ts - (ts - offset).rem_euclid(size)
}

impl WindowAssigner {
    /// Whether windows follow event time (else processing time).
    pub fn is_event_time(&self) -> bool {
        matches!(
            self,
            WindowAssigner::TumblingEventTime { .. }
                | WindowAssigner::SlidingEventTime { .. }
                | WindowAssigner::EventTimeSession { .. }
        )
    }

    /// Whether windows merge (sessions).
    pub fn is_merging(&self) -> bool {
        matches!(self, WindowAssigner::EventTimeSession { .. })
    }

    /// Appends to `out` the windows `ts` belongs to.
    pub fn assign(&self, ts: i64, out: &mut Vec<Window>) {
        match *self {
            WindowAssigner::TumblingEventTime { size, offset } => {
                let start = window_start(ts, offset, size);
                out.push(Window {
                    start,
                    end: start.saturating_add(size),
                });
            }
            WindowAssigner::TumblingProcessingTime { size } => {
                let start = window_start(ts, 0, size);
                out.push(Window {
                    start,
                    end: start.saturating_add(size),
                });
            }
            WindowAssigner::SlidingEventTime { size, slide }
            | WindowAssigner::SlidingProcessingTime { size, slide } => {
                let mut start = window_start(ts, 0, slide);
                while start > ts - size {
                    out.push(Window {
                        start,
                        end: start.saturating_add(size),
                    });
                    start -= slide;
                }
            }
            WindowAssigner::EventTimeSession { gap } => out.push(Window {
                start: ts,
                end: ts.saturating_add(gap),
            }),
        }
    }
}

/// Tumbling event-time windows (Flink's `TumblingEventTimeWindows`).
pub struct TumblingEventTimeWindows;

impl TumblingEventTimeWindows {
    /// Windows of `size`, aligned to the epoch.
    pub fn of(size: Duration) -> WindowAssigner {
        Self::of_with_offset(size, Duration::ZERO)
    }

    /// Windows of `size` whose boundaries are shifted by `offset`.
    pub fn of_with_offset(size: Duration, offset: Duration) -> WindowAssigner {
        WindowAssigner::TumblingEventTime {
            size: ms(size),
            offset: offset_ms(offset) % ms(size),
        }
    }
}

/// Sliding event-time windows (Flink's `SlidingEventTimeWindows`).
pub struct SlidingEventTimeWindows;

impl SlidingEventTimeWindows {
    /// Windows of `size` starting every `slide`; each record belongs to `size / slide` of them.
    pub fn of(size: Duration, slide: Duration) -> WindowAssigner {
        WindowAssigner::SlidingEventTime {
            size: ms(size),
            slide: ms(slide),
        }
    }
}

/// Session windows in event time (Flink's `EventTimeSessionWindows`).
pub struct EventTimeSessionWindows;

impl EventTimeSessionWindows {
    /// A key's session closes after `gap` without its events. A session's window runs from
    /// its first event to its last event plus `gap`.
    pub fn with_gap(gap: Duration) -> WindowAssigner {
        WindowAssigner::EventTimeSession { gap: ms(gap) }
    }
}

/// Tumbling processing-time windows (Flink's `TumblingProcessingTimeWindows`).
pub struct TumblingProcessingTimeWindows;

impl TumblingProcessingTimeWindows {
    /// Windows of `size` of wall-clock time.
    pub fn of(size: Duration) -> WindowAssigner {
        WindowAssigner::TumblingProcessingTime { size: ms(size) }
    }
}

/// Sliding processing-time windows (Flink's `SlidingProcessingTimeWindows`).
pub struct SlidingProcessingTimeWindows;

impl SlidingProcessingTimeWindows {
    /// Windows of `size` of wall-clock time starting every `slide`.
    pub fn of(size: Duration, slide: Duration) -> WindowAssigner {
        WindowAssigner::SlidingProcessingTime {
            size: ms(size),
            slide: ms(slide),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(a: WindowAssigner, ts: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        a.assign(ts, &mut out);
        out.into_iter().map(|w| (w.start, w.end)).collect()
    }

    #[test]
    fn tumbling_windows_hold_their_timestamps() {
        let a = TumblingEventTimeWindows::of(Duration::from_millis(10));
        assert_eq!(windows(a, 0), vec![(0, 10)]);
        assert_eq!(windows(a, 9), vec![(0, 10)]);
        assert_eq!(windows(a, 10), vec![(10, 20)]);
        assert_eq!(windows(a, -1), vec![(-10, 0)]);
        let shifted = TumblingEventTimeWindows::of_with_offset(
            Duration::from_millis(10),
            Duration::from_millis(3),
        );
        assert_eq!(windows(shifted, 2), vec![(-7, 3)]);
    }

    #[test]
    fn sliding_windows_are_every_window_that_holds_the_timestamp() {
        let a = SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(5));
        assert_eq!(windows(a, 7), vec![(5, 15), (0, 10)]);
        assert_eq!(windows(a, 5), vec![(5, 15), (0, 10)]);
        assert_eq!(windows(a, 4), vec![(0, 10), (-5, 5)]);
    }

    #[test]
    fn sessions_start_at_the_event_and_merge_when_touching() {
        let a = EventTimeSessionWindows::with_gap(Duration::from_millis(5));
        assert_eq!(windows(a, 7), vec![(7, 12)]);
        let w = Window { start: 7, end: 12 };
        assert!(w.intersects(&Window { start: 12, end: 17 }));
        assert!(!w.intersects(&Window { start: 13, end: 18 }));
        assert_eq!(
            w.cover(&Window { start: 1, end: 6 }),
            Window { start: 1, end: 12 }
        );
    }
}
