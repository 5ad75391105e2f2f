//! The window operator (Flink's `WindowOperator` with its default triggers): per key, the open
//! windows and their contents; event-time windows fire when the watermark passes their end,
//! processing-time windows when the clock does.
//!
//! Lateness follows Flink: a window is late once `max_timestamp + allowed_lateness <=
//! watermark`, and an element is late when every window it belongs to is. A late element goes
//! to the late-data side output (or is dropped); an element for a window that has fired but is
//! not late yet updates it and fires it again (a late firing). A window's state is purged at
//! `max_timestamp + allowed_lateness`, so state stays bounded by the open windows.
//!
//! Firing and purging are timers: entries of a [`TimerIndex`] over the per-key state, which is
//! what the checkpoint holds (with the current watermark). A window fires from its timer only
//! when its `max_timestamp` is past the restored watermark, so a window that fired before the
//! checkpoint never fires again from replay.

use crate::process::StateKey;
use crate::time::timers::{
    decode_time_snapshots, encode_time_snapshot, watermark_value, TimerIndex,
};
use crate::time::ProcessingClock;
use crate::window::assigner::{Window, WindowAssigner};
use crate::window::function::WindowFunction;
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use snapflow_engine::{
    BoxError, CheckpointId, Data, KeySelector, OperatorLifecycle, Output, RestoredState, Tagged,
    TaskInfo, Timestamp, TimestampAssigner, UnaryOperator,
};
use std::ops::Range;
use std::sync::Arc;

/// Turns a late record into a side-output record.
pub(crate) type LateOutput<T, O> = Arc<dyn Fn(T) -> Tagged<O> + Send + Sync>;

/// A key's open windows and their contents.
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "A: Serialize", deserialize = "A: DeserializeOwned"))]
struct KeyWindows<A> {
    windows: Vec<(Window, A)>,
}

impl<A> Default for KeyWindows<A> {
    fn default() -> Self {
        KeyWindows {
            windows: Vec::new(),
        }
    }
}

/// The settings of one window operator.
pub(crate) struct WindowSpec<K, T, O> {
    pub key: KeySelector<T, K>,
    pub assigner: WindowAssigner,
    pub timestamps: Option<TimestampAssigner<T>>,
    pub lateness: i64,
    pub late: Option<LateOutput<T, O>>,
    pub clock: ProcessingClock,
}

impl<K, T, O> Clone for WindowSpec<K, T, O> {
    fn clone(&self) -> Self {
        WindowSpec {
            key: self.key.clone(),
            assigner: self.assigner,
            timestamps: self.timestamps.clone(),
            lateness: self.lateness,
            late: self.late.clone(),
            clock: self.clock.clone(),
        }
    }
}

/// One task of a window operator.
pub(crate) struct WindowOperator<K, T, F: WindowFunction<K, T>> {
    spec: WindowSpec<K, T, F::Out>,
    f: Arc<F>,
    keys: FxHashMap<K, KeyWindows<F::Acc>>,
    timers: TimerIndex<K>,
    /// Event time: the watermark. Processing time: unused.
    watermark: i64,
    groups: Range<u32>,
    max_parallelism: u32,
    /// Reused per record and per firing.
    assigned: Vec<Window>,
    emitted: Vec<F::Out>,
    /// Late records seen (counted whether or not they go to a side output).
    late_records: u64,
}

impl<K: StateKey, T: Data, F: WindowFunction<K, T>> WindowOperator<K, T, F> {
    pub(crate) fn new(spec: WindowSpec<K, T, F::Out>, f: Arc<F>, task: &TaskInfo) -> Self {
        WindowOperator {
            spec,
            f,
            keys: FxHashMap::default(),
            timers: TimerIndex::default(),
            watermark: i64::MIN,
            groups: task.key_groups().groups,
            max_parallelism: task.max_parallelism,
            assigned: Vec::new(),
            emitted: Vec::new(),
            late_records: 0,
        }
    }

    fn event_time(&self) -> bool {
        self.spec.assigner.is_event_time()
    }

    fn cleanup_time(&self, w: &Window) -> i64 {
        if self.event_time() {
            w.max_timestamp().saturating_add(self.spec.lateness)
        } else {
            w.max_timestamp()
        }
    }

    /// Whether `w` is past its allowed lateness: it takes no more elements.
    fn is_late(&self, w: &Window) -> bool {
        self.event_time() && self.cleanup_time(w) <= self.watermark
    }

    /// Registers the timers of a window that just opened: its firing unless it is already due
    /// (then the caller fires it now), and its purge.
    fn register(&mut self, key: &K, w: &Window) {
        let fire = w.max_timestamp();
        if !self.event_time() || fire > self.watermark {
            self.timers.add(fire, key.clone());
        }
        let cleanup = self.cleanup_time(w);
        if cleanup != fire {
            self.timers.add(cleanup, key.clone());
        }
    }

    fn emit(&mut self, key: &K, window: Window, acc: &F::Acc, out: &mut Output<Tagged<F::Out>>) {
        self.f.emit(key, window, acc, &mut self.emitted);
        for record in self.emitted.drain(..) {
            out.push(Tagged::Main(record));
        }
    }

    /// `now`: the processing time of the batch, for processing-time windows.
    fn process_record(&mut self, record: T, now: i64, out: &mut Output<Tagged<F::Out>>) {
        let ts = match &self.spec.timestamps {
            Some(assigner) if self.event_time() => {
                i64::try_from(assigner(&record)).unwrap_or(i64::MAX)
            }
            _ => now,
        };
        let mut assigned = std::mem::take(&mut self.assigned);
        assigned.clear();
        self.spec.assigner.assign(ts, &mut assigned);
        if assigned.iter().all(|w| self.is_late(w)) {
            self.late_records += 1;
            if let Some(late) = &self.spec.late {
                out.push(late(record));
            }
            self.assigned = assigned;
            return;
        }
        let key = (self.spec.key)(&record);
        let mut state = self.keys.remove(&key).unwrap_or_default();
        if self.spec.assigner.is_merging() {
            self.add_merging(&key, &mut state, assigned[0], record, out);
        } else {
            let live: Vec<Window> = assigned
                .iter()
                .copied()
                .filter(|w| !self.is_late(w))
                .collect();
            let last = live.len().saturating_sub(1);
            let mut record = Some(record);
            for (i, w) in live.into_iter().enumerate() {
                let value = if i == last {
                    record.take().expect("one record per window")
                } else {
                    record.clone().expect("one record per window")
                };
                match state.windows.iter_mut().find(|(open, _)| *open == w) {
                    Some((_, acc)) => self.f.add(acc, value),
                    None => {
                        self.register(&key, &w);
                        state.windows.push((w, self.f.create(value)));
                    }
                }
                if self.event_time() && w.max_timestamp() <= self.watermark {
                    // A late firing: the window fired already and is within its lateness.
                    let acc = &state
                        .windows
                        .iter()
                        .find(|(open, _)| *open == w)
                        .expect("just added")
                        .1;
                    self.f.emit(&key, w, acc, &mut self.emitted);
                    for r in self.emitted.drain(..) {
                        out.push(Tagged::Main(r));
                    }
                }
            }
        }
        if !state.windows.is_empty() {
            self.keys.insert(key, state);
        }
        self.assigned = assigned;
    }

    /// Session windows: the record's window absorbs every open window of the key it
    /// touches.
    fn add_merging(
        &mut self,
        key: &K,
        state: &mut KeyWindows<F::Acc>,
        window: Window,
        record: T,
        out: &mut Output<Tagged<F::Out>>,
    ) {
        let mut merged = window;
        let mut acc = self.f.create(record);
        let mut kept = Vec::with_capacity(state.windows.len());
        for (w, other) in state.windows.drain(..) {
            if w.intersects(&window) {
                merged = merged.cover(&w);
                self.f.merge(&mut acc, other);
            } else {
                kept.push((w, other));
            }
        }
        state.windows = kept;
        // The merged window is new to the timers (its old parts' entries find nothing).
        self.register(key, &merged);
        if merged.max_timestamp() <= self.watermark {
            self.emit(key, merged, &acc, out);
        }
        state.windows.push((merged, acc));
    }

    /// Fires and purges what is due at or before `upto` (the watermark, or the clock).
    fn fire_due(&mut self, upto: i64, out: &mut Output<Tagged<F::Out>>) {
        while let Some((time, keys)) = self.timers.pop_due(upto) {
            for key in keys {
                let Some(mut state) = self.keys.remove(&key) else {
                    continue;
                };
                for (w, acc) in &state.windows {
                    if w.max_timestamp() == time {
                        self.f.emit(&key, *w, acc, &mut self.emitted);
                        for r in self.emitted.drain(..) {
                            out.push(Tagged::Main(r));
                        }
                    }
                }
                let lateness = self.spec.lateness;
                let event_time = self.event_time();
                state.windows.retain(|(w, _)| {
                    let cleanup = if event_time {
                        w.max_timestamp().saturating_add(lateness)
                    } else {
                        w.max_timestamp()
                    };
                    cleanup > time
                });
                if !state.windows.is_empty() {
                    self.keys.insert(key, state);
                }
            }
        }
    }
}

impl<K, T, F> UnaryOperator<T, Tagged<F::Out>> for WindowOperator<K, T, F>
where
    K: StateKey,
    T: Data,
    F: WindowFunction<K, T>,
{
    fn process_batch(
        &mut self,
        batch: Vec<T>,
        out: &mut Output<Tagged<F::Out>>,
    ) -> Result<(), BoxError> {
        // Processing time is read once per batch, not per record.
        let now = if self.event_time() {
            0
        } else {
            i64::try_from((self.spec.clock)()).unwrap_or(i64::MAX)
        };
        for record in batch {
            self.process_record(record, now, out);
        }
        Ok(())
    }
}

impl<K, T, F> OperatorLifecycle<Tagged<F::Out>> for WindowOperator<K, T, F>
where
    K: StateKey,
    T: Data,
    F: WindowFunction<K, T>,
{
    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        out: &mut Output<Tagged<F::Out>>,
    ) -> Result<(), BoxError> {
        let wm = watermark_value(watermark);
        if wm <= self.watermark {
            return Ok(()); // not past the restored watermark: replay, nothing new
        }
        self.watermark = wm;
        if self.event_time() {
            self.fire_due(wm, out);
        }
        Ok(())
    }

    fn next_processing_time(&self) -> Option<u64> {
        if self.event_time() {
            return None;
        }
        self.timers.next().map(|t| t.max(0) as u64)
    }

    fn on_processing_time(&mut self, out: &mut Output<Tagged<F::Out>>) -> Result<(), BoxError> {
        let now = i64::try_from((self.spec.clock)()).unwrap_or(i64::MAX);
        self.fire_due(now, out);
        Ok(())
    }

    /// Processing-time windows still open when the input ends fire now, so that a bounded
    /// job loses none of its input (event-time windows have fired at the final watermark).
    fn close(&mut self, out: &mut Output<Tagged<F::Out>>) -> Result<(), BoxError> {
        if !self.event_time() {
            self.fire_due(i64::MAX, out);
        }
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Option<Vec<u8>>, BoxError> {
        encode_time_snapshot(
            self.keys.iter(),
            self.watermark,
            self.groups.clone(),
            self.max_parallelism,
        )
        .map(Some)
    }

    fn restore(&mut self, state: &RestoredState) -> Result<(), BoxError> {
        self.watermark = decode_time_snapshots(state, self.max_parallelism, &mut self.keys)?;
        let keys: Vec<(K, Vec<Window>)> = self
            .keys
            .iter()
            .map(|(k, s)| (k.clone(), s.windows.iter().map(|(w, _)| *w).collect()))
            .collect();
        for (key, windows) in keys {
            for w in windows {
                self.register(&key, &w);
            }
        }
        Ok(())
    }
}
