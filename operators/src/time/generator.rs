//! The watermark generator: a pure state machine over the timestamps seen, checkpointed as it
//! is so that a recovered job emits exactly the watermarks the crashed one would have.

use serde::{Deserialize, Serialize};
use snapflow_engine::Timestamp;

/// Flink's `BoundedOutOfOrdernessWatermarks`: after seeing timestamps up to `max_seen`, no
/// event older than `max_seen - out_of_orderness` is expected, so the watermark is
/// `max_seen - out_of_orderness - 1`.
///
/// Emission is by record count rather than by a processing-time period (Flink's
/// `autoWatermarkInterval`): a watermark is due after every `interval` records. Which records
/// precede which watermark is then a function of the input alone, the same after any crash,
/// and a sequential computation can predict exactly which events are late.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundedOutOfOrderness {
    /// The largest timestamp seen.
    pub max_seen: Option<u64>,
    /// Records since the last emission point.
    pub since_emit: u64,
    /// The last watermark emitted.
    pub emitted: Option<u64>,
}

impl BoundedOutOfOrderness {
    /// Takes one record's timestamp; returns the watermark to emit after this record, if one
    /// is due (every `interval` records) and it advanced.
    #[inline]
    pub fn on_event(
        &mut self,
        timestamp: u64,
        out_of_orderness: u64,
        interval: u64,
    ) -> Option<Timestamp> {
        if self.max_seen.is_none_or(|m| m < timestamp) {
            self.max_seen = Some(timestamp);
        }
        self.since_emit += 1;
        if self.since_emit < interval {
            return None;
        }
        self.since_emit = 0;
        self.advance(out_of_orderness)
    }

    /// The watermark after what was seen, if it advanced past the last one emitted (which it
    /// then becomes).
    pub fn advance(&mut self, out_of_orderness: u64) -> Option<Timestamp> {
        let wm = self.max_seen?.checked_sub(out_of_orderness + 1)?;
        if self.emitted.is_some_and(|e| e >= wm) {
            return None;
        }
        self.emitted = Some(wm);
        Some(Timestamp(wm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_max_seen_minus_bound_minus_one_every_interval_when_it_advances() {
        let mut g = BoundedOutOfOrderness::default();
        let mut out = Vec::new();
        for ts in [100, 90, 120, 110, 105, 130, 90] {
            out.push(g.on_event(ts, 10, 2));
        }
        assert_eq!(
            out,
            vec![
                None,
                Some(Timestamp(89)),
                None,
                Some(Timestamp(109)),
                None,
                Some(Timestamp(119)),
                None,
            ]
        );
        // The next emission point after a record that does not raise the maximum: nothing new.
        assert_eq!(g.on_event(50, 10, 2), None);
    }

    #[test]
    fn no_watermark_before_the_bound_is_exceeded() {
        let mut g = BoundedOutOfOrderness::default();
        assert_eq!(g.on_event(5, 10, 1), None);
        assert_eq!(g.on_event(11, 10, 1), Some(Timestamp(0)));
    }
}
