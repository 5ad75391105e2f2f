//! `process_function` on keyed streams: Flink's `KeyedProcessFunction`, a user function with
//! per-key state, event-time and processing-time timers, and side outputs.

use crate::process::StateKey;
use crate::state::KeyedState;
use crate::time::clock::{system_clock, ProcessingClock};
use crate::time::timers::{
    decode_time_snapshots, encode_time_snapshot, watermark_value, TimerIndex,
};
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use snapflow_engine::{
    BoxError, CheckpointId, Data, KeySelector, KeyedStream, OperatorLifecycle, Output, OutputTag,
    RestoredState, Stream, Tagged, TaskInfo, Timestamp, TimestampAssigner, UnaryOperator,
};
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

/// Which clock a timer follows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TimeDomain {
    /// Event time: fires when the watermark reaches it.
    EventTime,
    /// Processing time: fires when the wall clock reaches it.
    ProcessingTime,
}

/// A keyed process function (Flink's `KeyedProcessFunction`).
pub trait KeyedProcessFunction<K, I, O>: Send + Sync + 'static {
    /// The state kept per key.
    type State: KeyedState;

    /// Called for every record, with its key's state.
    ///
    /// # Errors
    /// The job fails naming the task.
    fn process_element(
        &self,
        record: I,
        ctx: &mut Context<'_, K, O>,
        state: &mut Self::State,
    ) -> Result<(), BoxError>;

    /// Called when a timer of the key fires, at `timestamp`; [`Context::time_domain`] says
    /// which kind. The default does nothing.
    ///
    /// # Errors
    /// The job fails naming the task.
    fn on_timer(
        &self,
        _timestamp: u64,
        _ctx: &mut Context<'_, K, O>,
        _state: &mut Self::State,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A key's timers: part of its state.
#[derive(Default, Serialize, Deserialize)]
struct Timers {
    event: BTreeSet<u64>,
    processing: BTreeSet<u64>,
}

/// Everything the operator keeps per key.
#[derive(Default, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize", deserialize = "S: DeserializeOwned"))]
struct KeyEntry<S> {
    state: S,
    timers: Timers,
}

impl<S: KeyedState> KeyEntry<S> {
    fn is_empty(&self) -> bool {
        self.state.is_empty() && self.timers.event.is_empty() && self.timers.processing.is_empty()
    }
}

/// Registers and deletes the current key's timers (Flink's `TimerService`).
pub struct TimerService<'a, K> {
    key: &'a K,
    timers: &'a mut Timers,
    event_index: &'a mut TimerIndex<K>,
    processing_index: &'a mut TimerIndex<K>,
}

fn as_time(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// Timer times are kept within `i64` (times past it, such as `u64::MAX` for "at the end of
/// input", all mean the end of time), so that the index and the key's state agree on them.
fn clamp(t: u64) -> u64 {
    t.min(i64::MAX as u64)
}

impl<K: StateKey> TimerService<'_, K> {
    /// Fires `on_timer` once the watermark reaches `timestamp`. Registering the same time
    /// twice makes one timer.
    pub fn register_event_time_timer(&mut self, timestamp: u64) {
        let timestamp = clamp(timestamp);
        if self.timers.event.insert(timestamp) {
            self.event_index.add(as_time(timestamp), self.key.clone());
        }
    }

    /// Removes the event-time timer at `timestamp`, if there is one.
    pub fn delete_event_time_timer(&mut self, timestamp: u64) {
        self.timers.event.remove(&clamp(timestamp));
    }

    /// Fires `on_timer` once the processing time reaches `timestamp` (ms since the epoch).
    pub fn register_processing_time_timer(&mut self, timestamp: u64) {
        let timestamp = clamp(timestamp);
        if self.timers.processing.insert(timestamp) {
            self.processing_index
                .add(as_time(timestamp), self.key.clone());
        }
    }

    /// Removes the processing-time timer at `timestamp`, if there is one.
    pub fn delete_processing_time_timer(&mut self, timestamp: u64) {
        self.timers.processing.remove(&clamp(timestamp));
    }
}

/// What a process function sees besides the record and the state.
pub struct Context<'a, K, O> {
    timestamp: Option<u64>,
    watermark: i64,
    clock: &'a ProcessingClock,
    domain: Option<TimeDomain>,
    timers: TimerService<'a, K>,
    out: &'a mut Output<Tagged<O>>,
}

impl<'a, K: StateKey, O: Data> Context<'a, K, O> {
    /// The current key.
    pub fn key(&self) -> &K {
        self.timers.key
    }

    /// The record's event timestamp (in `on_timer`: the timer's time), if the stream has
    /// event time.
    pub fn timestamp(&self) -> Option<u64> {
        self.timestamp
    }

    /// The operator's current watermark, `None` before the first.
    pub fn current_watermark(&self) -> Option<u64> {
        (self.watermark != i64::MIN).then(|| self.watermark.max(0) as u64)
    }

    /// Processing time now, ms since the epoch.
    pub fn current_processing_time(&self) -> u64 {
        (self.clock)()
    }

    /// In `on_timer`: which kind of timer fired.
    pub fn time_domain(&self) -> Option<TimeDomain> {
        self.domain
    }

    /// The key's timers.
    pub fn timer_service(&mut self) -> &mut TimerService<'a, K> {
        &mut self.timers
    }

    /// Emits `value` on the main output.
    pub fn collect(&mut self, value: O) {
        self.out.push(Tagged::Main(value));
    }

    /// Emits `value` on the side output `tag`.
    pub fn output<S: Send + Sync + 'static>(&mut self, tag: &OutputTag<S>, value: S) {
        self.out.push(Tagged::side(tag, value));
    }
}

/// Adds `process_function` to keyed streams.
pub trait ProcessFunctionExt<K, T> {
    /// Runs `f` on every record with its key's state, timers and side outputs; returns its
    /// main output, from which [`Stream::side_output`] takes the side outputs.
    fn process_function<O, F>(self, f: F) -> Stream<O>
    where
        O: Data,
        F: KeyedProcessFunction<K, T, O>;
}

impl<K: StateKey, T: Data> ProcessFunctionExt<K, T> for KeyedStream<K, T> {
    fn process_function<O, F>(self, f: F) -> Stream<O>
    where
        O: Data,
        F: KeyedProcessFunction<K, T, O>,
    {
        let f = Arc::new(f);
        let assigner = self.timestamp_assigner();
        self.keyed_unary("process-function", move |task, key| {
            ProcessFunctionOperator::new(key, assigner.clone(), f.clone(), task, system_clock())
        })
        .split_side_outputs()
    }
}

/// One task of `process_function`.
pub(crate) struct ProcessFunctionOperator<K, T, O, F: KeyedProcessFunction<K, T, O>> {
    key: KeySelector<T, K>,
    assigner: Option<TimestampAssigner<T>>,
    f: Arc<F>,
    entries: FxHashMap<K, KeyEntry<F::State>>,
    event_index: TimerIndex<K>,
    processing_index: TimerIndex<K>,
    watermark: i64,
    clock: ProcessingClock,
    groups: Range<u32>,
    max_parallelism: u32,
    _out: std::marker::PhantomData<fn() -> O>,
}

impl<K: StateKey, T: Data, O: Data, F: KeyedProcessFunction<K, T, O>>
    ProcessFunctionOperator<K, T, O, F>
{
    pub(crate) fn new(
        key: KeySelector<T, K>,
        assigner: Option<TimestampAssigner<T>>,
        f: Arc<F>,
        task: &TaskInfo,
        clock: ProcessingClock,
    ) -> Self {
        ProcessFunctionOperator {
            key,
            assigner,
            f,
            entries: FxHashMap::default(),
            event_index: TimerIndex::default(),
            processing_index: TimerIndex::default(),
            watermark: i64::MIN,
            clock,
            groups: task.key_groups().groups,
            max_parallelism: task.max_parallelism,
            _out: std::marker::PhantomData,
        }
    }

    /// Fires the timers of `domain` due at or before `upto`, in time order.
    fn fire(
        &mut self,
        domain: TimeDomain,
        upto: i64,
        out: &mut Output<Tagged<O>>,
    ) -> Result<(), BoxError> {
        loop {
            let index = match domain {
                TimeDomain::EventTime => &mut self.event_index,
                TimeDomain::ProcessingTime => &mut self.processing_index,
            };
            let Some((time, keys)) = index.pop_due(upto) else {
                return Ok(());
            };
            let at = time.max(0) as u64;
            for key in keys {
                let Some(mut entry) = self.entries.remove(&key) else {
                    continue;
                };
                let set = match domain {
                    TimeDomain::EventTime => &mut entry.timers.event,
                    TimeDomain::ProcessingTime => &mut entry.timers.processing,
                };
                if set.remove(&at) {
                    let mut ctx = Context {
                        timestamp: Some(at),
                        watermark: self.watermark,
                        clock: &self.clock,
                        domain: Some(domain),
                        timers: TimerService {
                            key: &key,
                            timers: &mut entry.timers,
                            event_index: &mut self.event_index,
                            processing_index: &mut self.processing_index,
                        },
                        out,
                    };
                    self.f.on_timer(at, &mut ctx, &mut entry.state)?;
                }
                if !entry.is_empty() {
                    self.entries.insert(key, entry);
                }
            }
        }
    }
}

impl<K, T, O, F> UnaryOperator<T, Tagged<O>> for ProcessFunctionOperator<K, T, O, F>
where
    K: StateKey,
    T: Data,
    O: Data,
    F: KeyedProcessFunction<K, T, O>,
{
    fn process_batch(
        &mut self,
        batch: Vec<T>,
        out: &mut Output<Tagged<O>>,
    ) -> Result<(), BoxError> {
        for record in batch {
            let key = (self.key)(&record);
            let timestamp = self.assigner.as_ref().map(|a| a(&record));
            let mut entry = self.entries.remove(&key).unwrap_or_default();
            let mut ctx = Context {
                timestamp,
                watermark: self.watermark,
                clock: &self.clock,
                domain: None,
                timers: TimerService {
                    key: &key,
                    timers: &mut entry.timers,
                    event_index: &mut self.event_index,
                    processing_index: &mut self.processing_index,
                },
                out,
            };
            self.f.process_element(record, &mut ctx, &mut entry.state)?;
            if !entry.is_empty() {
                self.entries.insert(key, entry);
            }
        }
        Ok(())
    }
}

impl<K, T, O, F> OperatorLifecycle<Tagged<O>> for ProcessFunctionOperator<K, T, O, F>
where
    K: StateKey,
    T: Data,
    O: Data,
    F: KeyedProcessFunction<K, T, O>,
{
    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        out: &mut Output<Tagged<O>>,
    ) -> Result<(), BoxError> {
        let wm = watermark_value(watermark);
        if wm <= self.watermark {
            return Ok(()); // behind the restored watermark: replay, nothing new
        }
        self.watermark = wm;
        self.fire(TimeDomain::EventTime, wm, out)
    }

    fn next_processing_time(&self) -> Option<u64> {
        self.processing_index.next().map(|t| t.max(0) as u64)
    }

    fn on_processing_time(&mut self, out: &mut Output<Tagged<O>>) -> Result<(), BoxError> {
        let now = as_time((self.clock)());
        self.fire(TimeDomain::ProcessingTime, now, out)
    }

    /// Expired state (a [`TtlValueState`](crate::TtlValueState) past its time to live) is
    /// dropped first: it is never checkpointed.
    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>, BoxError> {
        let now = (self.clock)();
        self.entries.retain(|_, entry| {
            entry.state.expire(now);
            !entry.is_empty()
        });
        encode_time_snapshot(
            self.entries.iter(),
            self.watermark,
            self.groups.clone(),
            self.max_parallelism,
        )
        .map(Some)
    }

    fn restore(&mut self, state: &RestoredState) -> Result<(), BoxError> {
        self.watermark = decode_time_snapshots(state, self.max_parallelism, &mut self.entries)?;
        for (key, entry) in &self.entries {
            for &t in &entry.timers.event {
                self.event_index.add(as_time(t), key.clone());
            }
            for &t in &entry.timers.processing {
                self.processing_index.add(as_time(t), key.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ValueState;
    use crate::time::test_support::{self, restore_and_open};
    use crate::time::{time_state_summary, ManualClock};
    use snapflow_engine::testing::OneInputHarness;

    /// Counts each key's records; 10 ms (event time) after a key's first record, emits the
    /// count and clears it; a processing-time timer 100 ms after the first record emits
    /// "tick"; records with timestamp 0 go to a side output.
    struct CountThenEmit {
        zeros: OutputTag<(String, u64)>,
    }

    impl KeyedProcessFunction<String, (String, u64), String> for CountThenEmit {
        type State = ValueState<u64>;

        fn process_element(
            &self,
            record: (String, u64),
            ctx: &mut Context<'_, String, String>,
            state: &mut ValueState<u64>,
        ) -> Result<(), BoxError> {
            if record.1 == 0 {
                ctx.output(&self.zeros, record);
                return Ok(());
            }
            let n = state.get().copied().unwrap_or(0);
            if n == 0 {
                let ts = ctx.timestamp().expect("event time");
                ctx.timer_service().register_event_time_timer(ts + 10);
                let now = ctx.current_processing_time();
                ctx.timer_service()
                    .register_processing_time_timer(now + 100);
            }
            state.set(n + 1);
            Ok(())
        }

        fn on_timer(
            &self,
            timestamp: u64,
            ctx: &mut Context<'_, String, String>,
            state: &mut ValueState<u64>,
        ) -> Result<(), BoxError> {
            let line = match ctx.time_domain() {
                Some(TimeDomain::EventTime) => {
                    format!("{} {} at {timestamp}", ctx.key(), state.take().unwrap_or(0))
                }
                _ => format!("{} tick at {timestamp}", ctx.key()),
            };
            ctx.collect(line);
            Ok(())
        }
    }

    fn task() -> TaskInfo {
        test_support::task("p", 0, 1)
    }

    fn harness(
        clock: &ManualClock,
        zeros: &OutputTag<(String, u64)>,
    ) -> OneInputHarness<(String, u64), Tagged<String>> {
        OneInputHarness::new(ProcessFunctionOperator::new(
            Arc::new(|r: &(String, u64)| r.0.clone()),
            Some(Arc::new(|r: &(String, u64)| r.1)),
            Arc::new(CountThenEmit {
                zeros: zeros.clone(),
            }),
            &task(),
            clock.clock(),
        ))
    }

    /// The main-output records of `out`, in the order they were emitted.
    fn main_in_order<T>(out: Vec<Tagged<T>>) -> Vec<T> {
        out.into_iter()
            .filter_map(|t| match t {
                Tagged::Main(x) => Some(x),
                Tagged::Side(..) => None,
            })
            .collect()
    }

    /// The main-output records of `out`, sorted.
    fn main(out: Vec<Tagged<String>>) -> Vec<String> {
        let mut v = main_in_order(out);
        v.sort();
        v
    }

    /// A harness around `f`, keyed by `key`, with no timestamp assigner.
    fn untimed_harness<O: Data, F: KeyedProcessFunction<String, (String, u64), O>>(
        key: fn(&(String, u64)) -> String,
        f: F,
        clock: ProcessingClock,
    ) -> OneInputHarness<(String, u64), Tagged<O>> {
        OneInputHarness::new(ProcessFunctionOperator::new(
            Arc::new(key),
            None,
            Arc::new(f),
            &task(),
            clock,
        ))
    }

    fn ev(k: &str, ts: u64) -> (String, u64) {
        (k.to_owned(), ts)
    }

    #[test]
    fn timers_fire_once_each_across_a_restore() {
        let clock = ManualClock::new(1_000);
        let zeros = OutputTag::new("zeros");
        let mut h = harness(&clock, &zeros);
        h.open().unwrap();
        h.process(vec![ev("a", 5), ev("b", 20), ev("a", 7), ev("z", 0)])
            .unwrap();
        let side = h.take_output();
        assert_eq!(side.len(), 1, "the zero went to the side output");
        assert_eq!(h.next_processing_time(), Some(1_100));
        h.watermark(Timestamp(15)).unwrap();
        assert_eq!(main(h.take_output()), vec!["a 2 at 15"]);
        // The checkpoint: a's event timer fired; b's (at 30) has not; both tick timers pend.
        let state = h.snapshot(CheckpointId(1)).unwrap().unwrap();
        assert_eq!(time_state_summary(&state).unwrap(), (Some(15), 2));
        h.watermark(Timestamp(40)).unwrap();
        assert_eq!(main(h.take_output()), vec!["b 1 at 30"]);

        // Recovered from the checkpoint: b's timer fires (once), a's never again.
        let mut r = harness(&clock, &zeros);
        restore_and_open(&mut r, CheckpointId(1), state);
        r.watermark(Timestamp(12)).unwrap();
        assert!(
            r.take_output().is_empty(),
            "a watermark behind the restored one fires nothing"
        );
        r.watermark(Timestamp::MAX).unwrap();
        assert_eq!(main(r.take_output()), vec!["b 1 at 30"]);
        // Processing-time timers were restored too.
        assert_eq!(r.next_processing_time(), Some(1_100));
        clock.set(1_100);
        r.processing_time().unwrap();
        assert_eq!(
            main(r.take_output()),
            vec!["a tick at 1100", "b tick at 1100"]
        );
        assert_eq!(r.next_processing_time(), None);
        let empty = r.snapshot(CheckpointId(2)).unwrap().unwrap();
        assert_eq!(
            time_state_summary(&empty).unwrap().1,
            0,
            "no key keeps state or timers"
        );
    }

    #[test]
    fn expired_ttl_state_is_not_read_and_not_checkpointed() {
        use crate::state::TtlValueState;
        /// Remembers each key's last value for 100 ms and emits what it remembered before.
        struct Remember;
        impl KeyedProcessFunction<String, (String, u64), (String, Option<u64>)> for Remember {
            type State = TtlValueState<u64>;
            fn process_element(
                &self,
                record: (String, u64),
                ctx: &mut Context<'_, String, (String, Option<u64>)>,
                last: &mut TtlValueState<u64>,
            ) -> Result<(), BoxError> {
                let now = ctx.current_processing_time();
                let before = last.get(now).copied();
                last.set(record.1, now, std::time::Duration::from_millis(100));
                ctx.collect((record.0, before));
                Ok(())
            }
        }
        let clock = ManualClock::new(1_000);
        type Remembered = (String, Option<u64>);
        let mut h: OneInputHarness<(String, u64), Tagged<Remembered>> =
            untimed_harness(|r| r.0.clone(), Remember, clock.clock());
        h.open().unwrap();
        h.process(vec![ev("a", 1), ev("b", 2), ev("c", 9)]).unwrap();
        clock.set(1_050);
        h.process(vec![ev("a", 3)]).unwrap();
        clock.set(1_120);
        h.process(vec![ev("a", 4), ev("b", 5)]).unwrap();
        let got = main_in_order(h.take_output());
        assert_eq!(
            got,
            vec![
                ("a".into(), None),
                ("b".into(), None),
                ("c".into(), None),
                ("a".into(), Some(1)),
                ("a".into(), Some(3)),
                ("b".into(), None),
            ]
        );
        clock.set(1_200);
        let state = h.snapshot(CheckpointId(1)).unwrap().unwrap();
        assert_eq!(
            time_state_summary(&state).unwrap().1,
            2,
            "a and b (written at 1120) are live, c (written at 1000) is not"
        );
        clock.set(1_300);
        let state = h.snapshot(CheckpointId(2)).unwrap().unwrap();
        assert_eq!(time_state_summary(&state).unwrap().1, 0);
    }

    /// Registers an event-time timer at each "set" record's timestamp and deletes the one at
    /// each other record's; emits each timer's time when it fires. Every record has one key.
    struct SetOrDeleteTimers;

    impl KeyedProcessFunction<String, (String, u64), u64> for SetOrDeleteTimers {
        type State = ValueState<u8>;
        fn process_element(
            &self,
            record: (String, u64),
            ctx: &mut Context<'_, String, u64>,
            _: &mut ValueState<u8>,
        ) -> Result<(), BoxError> {
            if record.0 == "set" {
                ctx.timer_service().register_event_time_timer(record.1);
            } else {
                ctx.timer_service().delete_event_time_timer(record.1);
            }
            Ok(())
        }
        fn on_timer(
            &self,
            ts: u64,
            ctx: &mut Context<'_, String, u64>,
            _: &mut ValueState<u8>,
        ) -> Result<(), BoxError> {
            ctx.collect(ts);
            Ok(())
        }
    }

    fn timers_harness() -> OneInputHarness<(String, u64), Tagged<u64>> {
        untimed_harness(
            |_| "k".to_owned(),
            SetOrDeleteTimers,
            ManualClock::new(0).clock(),
        )
    }

    #[test]
    fn a_timer_at_the_end_of_time_fires_at_the_end_of_input() {
        let mut h = timers_harness();
        h.open().unwrap();
        h.process(vec![ev("set", u64::MAX), ev("set", u64::MAX)])
            .unwrap();
        h.watermark(Timestamp(1 << 62)).unwrap();
        assert!(h.take_output().is_empty());
        h.watermark(Timestamp::MAX).unwrap();
        assert_eq!(h.take_output().len(), 1, "one timer, fired once");
    }

    #[test]
    fn deleted_timers_do_not_fire() {
        let mut h = timers_harness();
        h.open().unwrap();
        h.process(vec![ev("set", 5), ev("set", 6), ev("del", 5)])
            .unwrap();
        h.watermark(Timestamp(10)).unwrap();
        assert_eq!(main_in_order(h.take_output()), vec![6]);
    }
}
