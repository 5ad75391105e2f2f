//! The window operator driven through the harness: firing, lateness, merging, processing
//! time with an injected clock, restore, and state that shrinks as windows fire.

use super::assigner::*;
use super::function::AggregateFn;
use super::operator::{LateOutput, WindowOperator, WindowSpec};
use super::Count;
use crate::time::test_support::{self, restore_and_open};
use crate::time::{time_state_summary, ManualClock, ProcessingClock};
use snapflow_engine::testing::OneInputHarness;
use snapflow_engine::{CheckpointId, OutputTag, Tagged, TaskInfo, Timestamp};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// (key, timestamp)
type Ev = (&'static str, u64);
/// (key, start, end, count)
type Fired = (String, i64, i64, u64);

fn task() -> TaskInfo {
    test_support::task("window", 0, 1)
}

fn harness(
    assigner: WindowAssigner,
    lateness: i64,
    late: Option<&OutputTag<Ev>>,
    clock: ProcessingClock,
) -> OneInputHarness<Ev, Tagged<Fired>> {
    let late: Option<LateOutput<Ev, Fired>> = late.map(|tag| {
        let id = tag.id();
        let f: LateOutput<Ev, Fired> = Arc::new(move |e: Ev| Tagged::Side(id, Arc::new(e)));
        f
    });
    let spec = WindowSpec {
        key: Arc::new(|e: &Ev| e.0.to_string()),
        assigner,
        timestamps: Some(Arc::new(|e: &Ev| e.1)),
        lateness,
        late,
        clock,
    };
    let f = AggregateFn {
        agg: Count,
        with_window: |k: &String, w: Window, n: u64| (k.clone(), w.start, w.end, n),
        _out: PhantomData,
    };
    OneInputHarness::new(WindowOperator::new(spec, Arc::new(f), &task()))
}

/// A harness for event-time windows, which never read the processing-time clock.
fn event_time_harness(
    assigner: WindowAssigner,
    lateness: i64,
    late: Option<&OutputTag<Ev>>,
) -> OneInputHarness<Ev, Tagged<Fired>> {
    harness(assigner, lateness, late, ManualClock::new(0).clock())
}

fn split(out: Vec<Tagged<Fired>>) -> (Vec<Fired>, Vec<Ev>) {
    let (mut main, mut side) = (Vec::new(), Vec::new());
    for r in out {
        match r {
            Tagged::Main(f) => main.push(f),
            Tagged::Side(_, v) => side.push(*v.downcast_ref::<Ev>().unwrap()),
        }
    }
    main.sort();
    (main, side)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn tumbling_fires_at_the_watermark_and_sends_late_events_aside() {
    let tag = OutputTag::new("late");
    let mut h = event_time_harness(TumblingEventTimeWindows::of(ms(10)), 0, Some(&tag));
    h.open().unwrap();
    h.process(vec![("a", 1), ("b", 5), ("a", 12)]).unwrap();
    h.watermark(Timestamp(8)).unwrap();
    assert!(
        h.take_output().is_empty(),
        "window [0,10) is not complete before 9"
    );
    h.watermark(Timestamp(9)).unwrap();
    let (main, side) = split(h.take_output());
    assert_eq!(main, vec![("a".into(), 0, 10, 1), ("b".into(), 0, 10, 1)]);
    assert!(side.is_empty());
    // [0,10) has fired: an event in it is late; one in [10,20) is not.
    h.process(vec![("a", 9), ("a", 10)]).unwrap();
    let (main, side) = split(h.take_output());
    assert!(main.is_empty());
    assert_eq!(side, vec![("a", 9)]);
    h.watermark(Timestamp::MAX).unwrap();
    let (main, _) = split(h.take_output());
    assert_eq!(main, vec![("a".into(), 10, 20, 2)]);
}

#[test]
fn allowed_lateness_refires_with_the_update_then_purges() {
    let tag = OutputTag::new("late");
    let mut h = event_time_harness(TumblingEventTimeWindows::of(ms(10)), 5, Some(&tag));
    h.open().unwrap();
    h.process(vec![("a", 1)]).unwrap();
    h.watermark(Timestamp(9)).unwrap();
    assert_eq!(split(h.take_output()).0, vec![("a".into(), 0, 10, 1)]);
    // end - 1 + lateness = 14 > 13: still accepted, and the window fires again at once.
    h.watermark(Timestamp(13)).unwrap();
    h.process(vec![("a", 2)]).unwrap();
    assert_eq!(split(h.take_output()).0, vec![("a".into(), 0, 10, 2)]);
    h.watermark(Timestamp(14)).unwrap();
    assert!(h.take_output().is_empty(), "purging does not fire");
    h.process(vec![("a", 3)]).unwrap();
    assert_eq!(split(h.take_output()).1, vec![("a", 3)]);
}

#[test]
fn sliding_windows_count_each_event_in_every_window() {
    let mut h = event_time_harness(SlidingEventTimeWindows::of(ms(10), ms(5)), 0, None);
    h.open().unwrap();
    h.process(vec![("a", 7), ("a", 12)]).unwrap();
    h.watermark(Timestamp::MAX).unwrap();
    assert_eq!(
        split(h.take_output()).0,
        vec![
            ("a".into(), 0, 10, 1),
            ("a".into(), 5, 15, 2),
            ("a".into(), 10, 20, 1),
        ]
    );
}

#[test]
fn a_partly_late_event_counts_only_in_its_open_windows() {
    let tag = OutputTag::new("late");
    let mut h = event_time_harness(SlidingEventTimeWindows::of(ms(10), ms(5)), 0, Some(&tag));
    h.open().unwrap();
    h.watermark(Timestamp(9)).unwrap();
    // 7 is in [0,10) (fired) and [5,15) (open).
    h.process(vec![("a", 7)]).unwrap();
    h.watermark(Timestamp::MAX).unwrap();
    let (main, side) = split(h.take_output());
    assert_eq!(main, vec![("a".into(), 5, 15, 1)]);
    assert!(side.is_empty());
}

#[test]
fn sessions_merge_and_span_first_event_to_last_plus_gap() {
    let mut h = event_time_harness(EventTimeSessionWindows::with_gap(ms(10)), 0, None);
    h.open().unwrap();
    h.process(vec![("a", 0), ("a", 25), ("a", 8), ("b", 3), ("a", 16)])
        .unwrap();
    // a: 0 and 8 merge into [0,18); 16 touches it and 25's [25,35) (16+10 = 26 >= 25): one
    // session [0,35).
    h.watermark(Timestamp::MAX).unwrap();
    assert_eq!(
        split(h.take_output()).0,
        vec![("a".into(), 0, 35, 4), ("b".into(), 3, 13, 1)]
    );
}

#[test]
fn processing_time_windows_fire_by_the_injected_clock() {
    let clock = ManualClock::new(1_000);
    let mut h = harness(
        TumblingProcessingTimeWindows::of(ms(100)),
        0,
        None,
        clock.clock(),
    );
    h.open().unwrap();
    h.process(vec![("a", 0), ("a", 0)]).unwrap();
    assert_eq!(h.next_processing_time(), Some(1_099));
    clock.set(1_050);
    h.process(vec![("b", 0)]).unwrap();
    h.processing_time().unwrap();
    assert!(h.take_output().is_empty());
    clock.set(1_099);
    h.processing_time().unwrap();
    assert_eq!(
        split(h.take_output()).0,
        vec![("a".into(), 1_000, 1_100, 2), ("b".into(), 1_000, 1_100, 1)]
    );
    assert_eq!(h.next_processing_time(), None);
    // Sliding: one event, two windows, each fired at its own end.
    let mut s = harness(
        SlidingProcessingTimeWindows::of(ms(100), ms(50)),
        0,
        None,
        clock.clock(),
    );
    s.open().unwrap();
    clock.set(1_120);
    s.process(vec![("a", 0)]).unwrap();
    clock.set(1_149);
    s.processing_time().unwrap();
    assert_eq!(
        split(s.take_output()).0,
        vec![("a".into(), 1_050, 1_150, 1)]
    );
    s.close().unwrap();
    assert_eq!(
        split(s.take_output()).0,
        vec![("a".into(), 1_100, 1_200, 1)]
    );
}

#[test]
fn a_restored_window_fires_once_and_a_fired_one_never_again() {
    let tag = OutputTag::new("late");
    let mut h = event_time_harness(TumblingEventTimeWindows::of(ms(10)), 0, Some(&tag));
    h.open().unwrap();
    h.process(vec![("a", 1), ("a", 15)]).unwrap();
    h.watermark(Timestamp(9)).unwrap();
    assert_eq!(split(h.take_output()).0, vec![("a".into(), 0, 10, 1)]);
    let state = h.snapshot(CheckpointId(1)).unwrap().unwrap();
    assert_eq!(time_state_summary(&state).unwrap(), (Some(9), 1));

    // After a crash: the replayed event of the fired window is late, not a second firing.
    let mut r = event_time_harness(TumblingEventTimeWindows::of(ms(10)), 0, Some(&tag));
    restore_and_open(&mut r, CheckpointId(1), state);
    r.watermark(Timestamp(5)).unwrap(); // replayed watermark, behind the restored one
    r.process(vec![("a", 2)]).unwrap();
    let (main, side) = split(r.take_output());
    assert!(main.is_empty());
    assert_eq!(side, vec![("a", 2)]);
    r.watermark(Timestamp::MAX).unwrap();
    assert_eq!(split(r.take_output()).0, vec![("a".into(), 10, 20, 1)]);
}

#[test]
fn state_shrinks_as_windows_fire_over_a_long_stream() {
    let mut h = event_time_harness(TumblingEventTimeWindows::of(ms(100)), 0, None);
    h.open().unwrap();
    let users = ["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"];
    let mut fired = 0;
    let mut peak = 0;
    for step in 0..2_000u64 {
        let batch: Vec<Ev> = users.iter().map(|u| (*u, step * 10)).collect();
        h.process(batch).unwrap();
        h.watermark(Timestamp((step * 10).saturating_sub(1)))
            .unwrap();
        fired += h.take_output().len();
        if step % 100 == 0 {
            let state = h.snapshot(CheckpointId(step + 1)).unwrap().unwrap();
            let (_, keys) = time_state_summary(&state).unwrap();
            peak = peak.max(keys);
            assert!(
                keys <= users.len() as u64,
                "only the open window per user is kept"
            );
        }
    }
    h.watermark(Timestamp::MAX).unwrap();
    fired += h.take_output().len();
    assert_eq!(fired, 200 * users.len());
    let state = h.snapshot(CheckpointId(10_000)).unwrap().unwrap();
    assert_eq!(
        time_state_summary(&state).unwrap().1,
        0,
        "nothing left after the last firing"
    );
    assert!(peak > 0);
}
