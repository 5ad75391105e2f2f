//! Barrier alignment, end-of-stream and watermark tracking over a task's input channels.
//!
//! A pure state machine, with no channels in it, so that every case is unit-tested. The task's
//! input gate asks it which channels may be read and feeds it every control message.
//!
//! Watermarks follow Flink's `StatusWatermarkValve`: the task's watermark is the minimum over
//! the latest watermarks of its channels that have neither ended nor declared themselves idle
//! (when all are idle, the largest of theirs), and it is handed out only when it advances. An idle channel rejoins with its next batch or
//! watermark. Once every channel has ended the watermark is [`Timestamp::MAX`], so that every
//! event-time window and timer downstream fires before the final checkpoint.
//!
//! Alignment follows Flink's aligned checkpoints (Carbone et al., "Lightweight Asynchronous
//! Snapshots for Distributed Dataflows", 2015): once barrier `n` arrives on a channel, that
//! channel is not read again until `n` has arrived on every channel that has not ended. Its
//! bounded channel then fills and holds its sender back, so nothing is buffered here.

use crate::message::Timestamp;
use snapflow_checkpoint::CheckpointId;

/// The state of one input channel.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ChannelState {
    /// May be read.
    Open,
    /// Delivered the barrier now being aligned; not read until alignment completes.
    Blocked,
    /// Delivered end-of-stream.
    Ended,
}

/// What a control message changed for the task as a whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Every input has delivered this barrier (or ended): snapshot and forward it now.
    pub aligned: Option<CheckpointId>,
    /// The minimum watermark over the inputs that have not ended advanced to this.
    pub watermark: Option<Timestamp>,
    /// Every input has ended.
    pub all_ended: bool,
    /// Every input that has not ended is idle: tell downstream this task is idle too.
    pub idle: bool,
}

/// Tracks barriers, watermarks and end-of-stream over `n` input channels.
#[derive(Debug)]
pub(crate) struct InputTracker {
    channels: Vec<ChannelState>,
    /// Highest barrier seen per channel (debug check: they strictly increase).
    last_barrier: Vec<Option<CheckpointId>>,
    watermarks: Vec<Option<Timestamp>>,
    /// Channels that declared themselves idle and have sent nothing since.
    idle: Vec<bool>,
    idle_count: usize,
    aligning: Option<CheckpointId>,
    last_aligned: Option<CheckpointId>,
    emitted_watermark: Option<Timestamp>,
    blocked: usize,
    ended: usize,
}

impl InputTracker {
    pub(crate) fn new(channels: usize) -> Self {
        InputTracker {
            channels: vec![ChannelState::Open; channels],
            last_barrier: vec![None; channels],
            watermarks: vec![None; channels],
            idle: vec![false; channels],
            idle_count: 0,
            aligning: None,
            last_aligned: None,
            emitted_watermark: None,
            blocked: 0,
            ended: 0,
        }
    }

    /// Whether a barrier is being aligned (some channel is blocked on it).
    pub(crate) fn is_aligning(&self) -> bool {
        self.aligning.is_some()
    }

    /// Whether channel `ch` may be read now.
    pub(crate) fn is_open(&self, ch: usize) -> bool {
        self.channels[ch] == ChannelState::Open
    }

    /// Barrier `id` arrived on channel `ch`.
    pub(crate) fn on_barrier(&mut self, ch: usize, id: CheckpointId) -> Progress {
        debug_assert_eq!(
            self.channels[ch],
            ChannelState::Open,
            "barrier on a channel that is not read"
        );
        debug_assert!(
            self.last_barrier[ch].is_none_or(|last| last < id),
            "barrier ids must strictly increase on a channel: {:?} then {id}",
            self.last_barrier[ch]
        );
        self.last_barrier[ch] = Some(id);
        if self.last_aligned.is_some_and(|done| id <= done) {
            return Progress::default();
        }
        match self.aligning {
            // A barrier of a checkpoint this task already gave up on: its successor subsumed it.
            Some(current) if id < current => return Progress::default(),
            // A newer checkpoint subsumes the one being aligned, which can no longer complete
            // here (its coordinator times it out). Start over with the newer one.
            Some(current) if id > current => self.unblock_all(),
            _ => {}
        }
        self.aligning = Some(id);
        self.channels[ch] = ChannelState::Blocked;
        self.blocked += 1;
        Progress {
            aligned: self.complete_if_aligned(),
            ..Progress::default()
        }
    }

    /// End-of-stream arrived on channel `ch`. An ended channel no longer holds back alignment
    /// or the watermark.
    pub(crate) fn on_end(&mut self, ch: usize) -> Progress {
        debug_assert_eq!(
            self.channels[ch],
            ChannelState::Open,
            "end on a channel that is not read"
        );
        self.channels[ch] = ChannelState::Ended;
        self.ended += 1;
        self.set_active(ch);
        Progress {
            aligned: self.complete_if_aligned(),
            watermark: self.advance_watermark(),
            all_ended: self.ended == self.channels.len(),
            idle: false,
        }
    }

    /// A batch arrived on channel `ch`: if it was idle, it rejoins (its last watermark holds
    /// the minimum back again). Cheap when no channel is idle, since it runs once per batch.
    #[inline]
    pub(crate) fn on_batch(&mut self, ch: usize) {
        if self.idle_count > 0 {
            self.set_active(ch);
        }
    }

    /// Channel `ch` declared itself idle: the watermark may advance without it.
    pub(crate) fn on_idle(&mut self, ch: usize) -> Progress {
        if !self.idle[ch] {
            self.idle[ch] = true;
            self.idle_count += 1;
        }
        let live = self.channels.len() - self.ended;
        let all_idle = live > 0
            && self
                .channels
                .iter()
                .zip(&self.idle)
                .all(|(state, idle)| *state == ChannelState::Ended || *idle);
        Progress {
            watermark: self.advance_watermark(),
            idle: all_idle,
            ..Progress::default()
        }
    }

    fn set_active(&mut self, ch: usize) {
        if self.idle[ch] {
            self.idle[ch] = false;
            self.idle_count -= 1;
        }
    }

    /// Watermark `wm` arrived on channel `ch`.
    pub(crate) fn on_watermark(&mut self, ch: usize, wm: Timestamp) -> Progress {
        self.set_active(ch);
        let slot = &mut self.watermarks[ch];
        if slot.is_none_or(|old| old < wm) {
            *slot = Some(wm);
        }
        Progress {
            watermark: self.advance_watermark(),
            ..Progress::default()
        }
    }

    fn complete_if_aligned(&mut self) -> Option<CheckpointId> {
        let id = self.aligning?;
        if self.blocked + self.ended < self.channels.len() {
            return None;
        }
        self.unblock_all();
        self.last_aligned = Some(id);
        Some(id)
    }

    fn unblock_all(&mut self) {
        for state in &mut self.channels {
            if *state == ChannelState::Blocked {
                *state = ChannelState::Open;
            }
        }
        self.blocked = 0;
        self.aligning = None;
    }

    fn advance_watermark(&mut self) -> Option<Timestamp> {
        let mut min: Option<Timestamp> = None;
        let mut active = 0;
        for ((state, wm), idle) in self.channels.iter().zip(&self.watermarks).zip(&self.idle) {
            if *state == ChannelState::Ended || *idle {
                continue;
            }
            active += 1;
            let wm = (*wm)?; // a live channel without a watermark holds everything back
            min = Some(min.map_or(wm, |m| m.min(wm)));
        }
        let min = match min {
            Some(min) => min,
            // Every channel ended: the end of time.
            None if self.ended == self.channels.len() => Timestamp::MAX,
            // Every live channel is idle: as Flink's valve does, go as far as the most advanced
            // of them, since none of them holds anything back now.
            None => {
                debug_assert_eq!(active, 0);
                self.channels
                    .iter()
                    .zip(&self.watermarks)
                    .filter(|(state, _)| **state != ChannelState::Ended)
                    .filter_map(|(_, wm)| *wm)
                    .max()?
            }
        };
        if self.emitted_watermark.is_some_and(|e| e >= min) {
            return None;
        }
        self.emitted_watermark = Some(min);
        Some(min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: CheckpointId = CheckpointId(1);
    const C2: CheckpointId = CheckpointId(2);

    fn aligned(id: CheckpointId) -> Progress {
        Progress {
            aligned: Some(id),
            ..Progress::default()
        }
    }

    #[test]
    fn single_channel_aligns_at_once() {
        let mut t = InputTracker::new(1);
        assert_eq!(t.on_barrier(0, C1), aligned(C1));
        assert!(t.is_open(0));
    }

    #[test]
    fn blocks_each_channel_until_the_barrier_came_on_all() {
        let mut t = InputTracker::new(3);
        assert_eq!(t.on_barrier(1, C1), Progress::default());
        assert!(!t.is_open(1) && t.is_open(0) && t.is_open(2));
        assert_eq!(t.on_barrier(0, C1), Progress::default());
        assert!(!t.is_open(0));
        assert_eq!(t.on_barrier(2, C1), aligned(C1));
        assert!((0..3).all(|ch| t.is_open(ch)));
        // The next checkpoint aligns independently.
        assert_eq!(t.on_barrier(2, C2), Progress::default());
        assert_eq!(t.on_barrier(0, C2), Progress::default());
        assert_eq!(t.on_barrier(1, C2), aligned(C2));
    }

    #[test]
    fn an_ended_channel_does_not_hold_back_alignment() {
        let mut t = InputTracker::new(2);
        assert_eq!(t.on_barrier(0, C1), Progress::default());
        let p = t.on_end(1);
        assert_eq!(p.aligned, Some(C1));
        assert!(!p.all_ended);
        assert!(t.is_open(0));
        // With channel 1 gone, channel 0 alone aligns the next barrier.
        assert_eq!(t.on_barrier(0, C2), aligned(C2));
        assert!(t.on_end(0).all_ended);
    }

    #[test]
    fn ending_before_any_barrier_then_aligning_on_the_rest() {
        let mut t = InputTracker::new(2);
        assert_eq!(t.on_end(0), Progress::default());
        assert_eq!(t.on_barrier(1, C1), aligned(C1));
    }

    #[test]
    fn a_newer_barrier_subsumes_the_pending_one() {
        let mut t = InputTracker::new(2);
        t.on_barrier(0, C1);
        // Channel 1 skipped checkpoint 1 (say its source never saw the trigger).
        assert_eq!(t.on_barrier(1, C2), Progress::default());
        assert!(t.is_open(0) && !t.is_open(1));
        assert_eq!(t.on_barrier(0, C2), aligned(C2));
    }

    #[test]
    fn a_stale_barrier_is_ignored() {
        let mut t = InputTracker::new(2);
        t.on_barrier(0, C2);
        assert_eq!(t.on_barrier(1, C1), Progress::default());
        assert!(t.is_open(1), "a stale barrier does not block its channel");
        assert_eq!(t.on_barrier(1, C2), aligned(C2));
    }

    #[test]
    fn watermark_is_the_minimum_over_live_channels() {
        let mut t = InputTracker::new(2);
        assert_eq!(t.on_watermark(0, Timestamp(10)).watermark, None);
        assert_eq!(
            t.on_watermark(1, Timestamp(5)).watermark,
            Some(Timestamp(5))
        );
        assert_eq!(
            t.on_watermark(1, Timestamp(20)).watermark,
            Some(Timestamp(10))
        );
        // Going backwards on one channel changes nothing.
        assert_eq!(t.on_watermark(1, Timestamp(7)).watermark, None);
        // Once channel 0 ends, channel 1 alone decides.
        assert_eq!(t.on_end(0).watermark, Some(Timestamp(20)));
        // And once every channel ended, the watermark is the end of time.
        assert_eq!(t.on_end(1).watermark, Some(Timestamp::MAX));
    }

    #[test]
    fn ending_without_any_watermark_still_reaches_the_end_of_time() {
        let mut t = InputTracker::new(2);
        assert_eq!(t.on_end(0).watermark, None);
        let p = t.on_end(1);
        assert_eq!(p.watermark, Some(Timestamp::MAX));
        assert!(p.all_ended);
    }

    #[test]
    fn an_idle_channel_does_not_hold_back_the_watermark_and_rejoins_when_it_sends() {
        let mut t = InputTracker::new(3);
        t.on_watermark(0, Timestamp(10));
        t.on_watermark(1, Timestamp(50));
        // Channel 2 never sent a watermark: it holds everything back until it goes idle.
        assert_eq!(t.on_watermark(0, Timestamp(40)).watermark, None);
        let p = t.on_idle(2);
        assert_eq!(p.watermark, Some(Timestamp(40)));
        assert!(!p.idle, "two channels are still active");
        // It rejoins with a batch: the minimum waits for its watermark again.
        t.on_batch(2);
        assert_eq!(t.on_watermark(0, Timestamp(60)).watermark, None);
        assert_eq!(
            t.on_watermark(2, Timestamp(45)).watermark,
            Some(Timestamp(45))
        );
        // A watermark behind what was emitted never moves the output backwards.
        t.on_idle(2);
        assert_eq!(t.on_watermark(2, Timestamp(41)).watermark, None);
    }

    #[test]
    fn the_task_is_idle_when_every_live_channel_is() {
        let mut t = InputTracker::new(3);
        t.on_end(0);
        assert!(!t.on_idle(1).idle);
        let p = t.on_idle(2);
        assert!(p.idle);
        assert_eq!(p.watermark, None, "no channel to take a watermark from");
        // With watermarks, all idle: the most advanced one.
        t.on_watermark(1, Timestamp(7));
        t.on_watermark(2, Timestamp(9));
        assert_eq!(
            t.on_idle(2).watermark,
            None,
            "channel 1 at 7 still holds it back"
        );
        assert_eq!(t.on_idle(1).watermark, Some(Timestamp(9)));
        t.on_batch(1);
        assert!(!t.on_idle(2).idle);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "strictly increase")]
    fn debug_build_rejects_repeated_barrier_ids_on_a_channel() {
        let mut t = InputTracker::new(2);
        t.on_end(1);
        t.on_barrier(0, C1);
        t.on_barrier(0, C1);
    }
}
