//! The protocol replayed without threads, clocks or disk: unit tests of each rule, and a
//! property test over random interleavings of ticks, reports and command results.

use super::*;
use crate::coordinator::pending::TaskAckStats;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const INTERVAL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(1000);
const TASKS: [TaskKey; 3] = [(0, 0), (0, 1), (1, 0)];
const SOURCES: [TaskKey; 2] = [(0, 0), (0, 1)];

fn settings(periodic: bool) -> Settings {
    Settings {
        first_id: CheckpointId(1),
        tasks: TASKS.to_vec(),
        sources: SOURCES.len(),
        periodic: periodic.then_some((INTERVAL, TIMEOUT)),
    }
}

fn ack(task: TaskKey, id: u64) -> Input {
    Input::Report(TaskReport::Ack {
        task,
        checkpoint: CheckpointId(id),
        stats: TaskAckStats {
            alignment: Duration::from_millis(task.1 as u64 + 1),
            sync_snapshot: Duration::ZERO,
            async_snapshot: Duration::from_millis(5 * task.1 as u64),
            bytes: 10,
        },
        snapshot: None,
        source_offset: None,
    })
}

fn exhausted(task: TaskKey) -> Input {
    Input::Report(TaskReport::Exhausted { task })
}

fn failed(task: TaskKey, id: u64) -> Input {
    Input::Report(TaskReport::SnapshotFailed {
        task,
        checkpoint: CheckpointId(id),
        error: "disk full".into(),
    })
}

fn trigger(id: u64, is_final: bool) -> Command {
    Command::Trigger {
        id: CheckpointId(id),
        is_final,
    }
}

/// A protocol with its own clock, started at `t0`.
struct Run {
    p: Protocol,
    t0: Instant,
    now: Instant,
}

impl Run {
    fn new(periodic: bool) -> Self {
        let t0 = Instant::now();
        Run {
            p: Protocol::new(settings(periodic), t0),
            t0,
            now: t0,
        }
    }

    fn at(&mut self, ms: u64) -> &mut Self {
        self.now = self.t0 + Duration::from_millis(ms);
        self
    }

    fn step(&mut self, input: Input) -> Vec<Command> {
        self.p.step(self.now, input)
    }

    /// Every task acks `id`; returns the commands of the last ack.
    fn ack_all(&mut self, id: u64) -> Vec<Command> {
        let mut last = Vec::new();
        for task in TASKS {
            last = self.step(ack(task, id));
        }
        last
    }

    /// Every task acks `id`, and the manifest and the commit succeed.
    fn complete(&mut self, id: u64) -> Vec<Command> {
        let out = self.ack_all(id);
        assert!(
            matches!(&out[..], [Command::WriteManifest { checkpoint, .. }] if checkpoint.id.0 == id),
            "{out:?}"
        );
        let out = self.step(Input::ManifestWritten(CheckpointId(id)));
        assert!(
            matches!(&out[..], [Command::Commit(c)] if c.id.0 == id),
            "{out:?}"
        );
        self.step(Input::Committed(CheckpointId(id)))
    }
}

#[test]
fn triggers_periodically_at_the_interval() {
    let mut r = Run::new(true);
    assert_eq!(r.p.deadline(), Some(r.t0 + INTERVAL));
    assert_eq!(r.at(99).step(Input::Tick), []);
    assert_eq!(r.at(100).step(Input::Tick), [trigger(1, false)]);
    assert_eq!(r.p.deadline(), Some(r.t0 + INTERVAL + TIMEOUT));
    // Only one in flight, however long it takes.
    assert_eq!(r.at(500).step(Input::Tick), []);
    assert_eq!(r.at(600).complete(1), []);
    // The interval restarts when a checkpoint completes.
    assert_eq!(r.p.deadline(), Some(r.t0 + Duration::from_millis(700)));
    assert_eq!(r.at(699).step(Input::Tick), []);
    assert_eq!(r.at(700).step(Input::Tick), [trigger(2, false)]);
}

#[test]
fn commits_only_after_every_ack_and_the_manifest() {
    let mut r = Run::new(true);
    r.at(100).step(Input::Tick);
    assert_eq!(r.step(ack(TASKS[0], 1)), []);
    assert_eq!(r.step(ack(TASKS[0], 1)), [], "a repeated ack counts once");
    assert_eq!(r.step(ack(TASKS[1], 1)), []);
    let out = r.at(150).step(ack(TASKS[2], 1));
    let [Command::WriteManifest { checkpoint, .. }] = &out[..] else {
        panic!("{out:?}");
    };
    assert_eq!(
        *checkpoint,
        Completion {
            id: CheckpointId(1),
            is_final: false,
            triggered: r.t0 + INTERVAL,
            longest_alignment: Duration::from_millis(2),
            longest_sync_snapshot: Duration::ZERO,
            longest_async_snapshot: Duration::from_millis(5),
            bytes: 30,
        }
    );
    // Nothing happens until the manifest is durable: no commit, no timeout, no trigger.
    assert_eq!(r.at(5000).step(Input::Tick), []);
    assert_eq!(r.p.deadline(), None);
    assert_eq!(
        r.step(Input::ManifestWritten(CheckpointId(1))),
        [Command::Commit(*checkpoint)]
    );
    assert_eq!(r.step(Input::Tick), []);
    assert_eq!(r.step(Input::Committed(CheckpointId(1))), []);
}

#[test]
fn a_timeout_aborts_and_frees_the_way() {
    let mut r = Run::new(true);
    r.at(100).step(Input::Tick);
    r.step(ack(TASKS[0], 1));
    assert_eq!(r.at(1099).step(Input::Tick), []);
    assert_eq!(
        r.at(1100).step(Input::Tick),
        [Command::Abort {
            id: CheckpointId(1),
            reason: "not complete after 1s: 2 tasks have not acknowledged".into()
        }]
    );
    // Late acks of the aborted checkpoint are ignored.
    assert_eq!(r.step(ack(TASKS[1], 1)), []);
    assert_eq!(r.step(ack(TASKS[2], 1)), []);
    assert_eq!(r.step(failed(TASKS[2], 1)), []);
    // The next one comes an interval after the abort, with a new id.
    assert_eq!(r.at(1199).step(Input::Tick), []);
    assert_eq!(r.at(1200).step(Input::Tick), [trigger(2, false)]);
    assert_eq!(r.step(ack(TASKS[0], 1)), []);
    assert_eq!(r.complete(2), []);
}

#[test]
fn a_failed_snapshot_aborts() {
    let mut r = Run::new(true);
    r.at(100).step(Input::Tick);
    assert_eq!(r.step(failed(TASKS[1], 0)), [], "another checkpoint");
    assert_eq!(
        r.at(150).step(failed(TASKS[1], 1)),
        [Command::Abort {
            id: CheckpointId(1),
            reason: "task (0, 1) could not write its snapshot: disk full".into()
        }]
    );
    assert_eq!(r.at(250).step(Input::Tick), [trigger(2, false)]);
}

#[test]
fn exhausted_sources_lead_to_the_final_checkpoint_without_a_timeout() {
    let mut r = Run::new(true);
    assert_eq!(r.step(exhausted(SOURCES[0])), []);
    assert_eq!(r.step(exhausted(SOURCES[0])), [], "counted once");
    assert_eq!(r.step(Input::Tick), []);
    assert_eq!(r.step(exhausted(SOURCES[1])), []);
    assert_eq!(r.step(Input::Tick), [trigger(1, true)]);
    assert_eq!(r.p.deadline(), None, "the final checkpoint has no timeout");
    assert_eq!(r.at(100_000).step(Input::Tick), []);
    assert_eq!(r.complete(1), [Command::Finish(CoordinatorExit::Finished)]);
    assert_eq!(r.step(Input::Tick), [], "finished for good");
}

#[test]
fn the_final_checkpoint_waits_for_the_one_in_flight() {
    let mut r = Run::new(true);
    r.at(100).step(Input::Tick);
    r.step(exhausted(SOURCES[0]));
    r.step(exhausted(SOURCES[1]));
    assert_eq!(r.step(Input::Tick), []);
    assert_eq!(r.complete(1), []);
    assert_eq!(r.step(Input::Tick), [trigger(2, true)]);
}

#[test]
fn a_failed_final_checkpoint_fails_the_job() {
    let mut r = Run::new(false);
    r.step(exhausted(SOURCES[0]));
    r.step(exhausted(SOURCES[1]));
    assert_eq!(r.step(Input::Tick), [trigger(1, true)]);
    let reason = "task (1, 0) could not write its snapshot: disk full".to_owned();
    assert_eq!(
        r.step(failed(TASKS[2], 1)),
        [
            Command::Abort {
                id: CheckpointId(1),
                reason: reason.clone()
            },
            Command::FailFinal {
                id: CheckpointId(1),
                reason
            }
        ]
    );
}

#[test]
fn without_checkpoints_only_the_final_one_is_taken() {
    let mut r = Run::new(false);
    assert_eq!(r.p.deadline(), None);
    assert_eq!(r.at(1_000_000).step(Input::Tick), []);
    r.step(exhausted(SOURCES[0]));
    r.step(exhausted(SOURCES[1]));
    assert_eq!(r.step(Input::Tick), [trigger(1, true)]);
    assert_eq!(r.complete(1), [Command::Finish(CoordinatorExit::Finished)]);
}

#[test]
fn a_stop_without_checkpoints_is_a_cancel() {
    let mut r = Run::new(false);
    assert_eq!(
        r.step(Input::StopRequested),
        [Command::Finish(CoordinatorExit::Stopped)]
    );
}

#[test]
fn a_graceful_stop_takes_a_fresh_checkpoint() {
    let mut r = Run::new(true);
    r.at(100).step(Input::Tick);
    // Checkpoint 1 was triggered before the request: it does not stop the job.
    assert_eq!(r.step(Input::StopRequested), []);
    assert_eq!(r.step(Input::Tick), []);
    assert_eq!(r.complete(1), []);
    // The next one comes at once, not an interval later.
    assert_eq!(r.step(Input::Tick), [trigger(2, false)]);
    assert_eq!(r.step(Input::StopRequested), []);
    assert_eq!(
        r.complete(2),
        [Command::Finish(CoordinatorExit::StoppedAt(CheckpointId(2)))]
    );
}

#[test]
fn a_graceful_stop_retries_an_aborted_checkpoint() {
    let mut r = Run::new(true);
    r.step(Input::StopRequested);
    assert_eq!(r.step(Input::Tick), [trigger(1, false)]);
    // The abort frees the way for the next try at once.
    let out = r.at(1000).step(Input::Tick);
    assert!(
        matches!(&out[..], [Command::Abort { .. }, t] if *t == trigger(2, false)),
        "{out:?}"
    );
    assert_eq!(
        r.complete(2),
        [Command::Finish(CoordinatorExit::StoppedAt(CheckpointId(2)))]
    );
}

#[test]
fn a_graceful_stop_after_the_sources_ended_finishes() {
    let mut r = Run::new(true);
    r.step(exhausted(SOURCES[0]));
    r.step(exhausted(SOURCES[1]));
    r.step(Input::StopRequested);
    assert_eq!(r.step(Input::Tick), [trigger(1, true)]);
    assert_eq!(r.complete(1), [Command::Finish(CoordinatorExit::Finished)]);
}

/// One thing that can happen to the coordinator, for the property test.
#[derive(Clone, Debug)]
enum Event {
    /// Time passes by this many milliseconds, then a tick.
    Tick(u64),
    /// A task acks the checkpoint `newest triggered - back` (late acks when `back > 0`).
    Ack {
        task: usize,
        back: u64,
    },
    /// A task fails its snapshot of the checkpoint `newest triggered - back`.
    Fail {
        task: usize,
        back: u64,
    },
    Exhausted(usize),
    StopRequested,
    /// The coordinator finishes the manifest write or the commit it is performing.
    Done,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (0u64..400).prop_map(Event::Tick),
        8 => (0..TASKS.len(), prop_oneof![3 => Just(0u64), 1 => 1u64..3])
            .prop_map(|(task, back)| Event::Ack { task, back }),
        1 => (0..TASKS.len(), 0u64..2).prop_map(|(task, back)| Event::Fail { task, back }),
        1 => (0..SOURCES.len()).prop_map(Event::Exhausted),
        1 => Just(Event::StopRequested),
        4 => Just(Event::Done),
    ]
}

/// What the model knows from the commands so far.
#[derive(Default)]
struct Model {
    triggered: Vec<(u64, bool)>,
    /// Checkpoints triggered and neither aborted nor committed.
    in_flight: BTreeSet<u64>,
    aborted: BTreeSet<u64>,
    acked: BTreeMap<u64, BTreeSet<TaskKey>>,
    manifest_written: BTreeSet<u64>,
    committed: BTreeSet<u64>,
    /// The result the coordinator still has to feed back.
    performing: Option<Input>,
    exhausted: BTreeSet<TaskKey>,
    stop_requested_before: Option<u64>,
    finished: bool,
    /// When each checkpoint was triggered.
    trigger_times: BTreeMap<u64, Instant>,
    /// Since when the slot is free (the start, an abort or a commit).
    idle_since: Option<Instant>,
}

impl Model {
    fn check(&mut self, now: Instant, commands: Vec<Command>) -> Result<(), TestCaseError> {
        for command in commands {
            prop_assert!(!self.finished, "{command:?} after finishing");
            match command {
                Command::Trigger { id, is_final } => {
                    let id = id.0;
                    let expected = self.triggered.last().map_or(1, |(last, _)| last + 1);
                    prop_assert_eq!(id, expected, "ids strictly increase, one by one");
                    prop_assert_eq!(is_final, self.exhausted.len() == SOURCES.len());
                    self.triggered.push((id, is_final));
                    self.trigger_times.insert(id, now);
                    self.idle_since = None;
                    self.in_flight.insert(id);
                    prop_assert!(self.in_flight.len() <= 1, "{:?} in flight", self.in_flight);
                }
                Command::WriteManifest { checkpoint, .. } => {
                    let id = checkpoint.id.0;
                    prop_assert!(self.in_flight.contains(&id) && !self.aborted.contains(&id));
                    prop_assert_eq!(self.acked.get(&id).map_or(0, BTreeSet::len), TASKS.len());
                    prop_assert!(self.performing.is_none());
                    self.performing = Some(Input::ManifestWritten(checkpoint.id));
                }
                Command::Commit(c) => {
                    let id = c.id.0;
                    prop_assert!(
                        self.manifest_written.contains(&id),
                        "commit before manifest"
                    );
                    prop_assert_eq!(self.acked.get(&id).map_or(0, BTreeSet::len), TASKS.len());
                    prop_assert!(self.performing.is_none());
                    self.performing = Some(Input::Committed(c.id));
                }
                Command::Abort { id, .. } => {
                    prop_assert!(
                        self.in_flight.remove(&id.0),
                        "abort of {id:?} not in flight"
                    );
                    prop_assert!(!self.manifest_written.contains(&id.0));
                    self.aborted.insert(id.0);
                    self.idle_since = Some(now);
                }
                Command::FailFinal { id, .. } => {
                    prop_assert!(self.triggered.contains(&(id.0, true)));
                    prop_assert!(self.aborted.contains(&id.0));
                    self.finished = true;
                }
                Command::Finish(exit) => {
                    match exit {
                        CoordinatorExit::Finished => {
                            let last = *self.triggered.last().expect("a final checkpoint");
                            prop_assert!(last.1 && self.committed.contains(&last.0));
                        }
                        CoordinatorExit::StoppedAt(id) => {
                            prop_assert!(self.committed.contains(&id.0));
                            let asked = self.stop_requested_before.expect("a stop request");
                            prop_assert!(id.0 > asked, "a checkpoint triggered after the request");
                        }
                        CoordinatorExit::Stopped => {
                            prop_assert!(false, "no cancel with checkpoints")
                        }
                    }
                    self.finished = true;
                }
            }
        }
        Ok(())
    }

    /// What must have happened by a tick at `now`: a due trigger, a due timeout.
    fn check_tick(&self, now: Instant) -> Result<(), TestCaseError> {
        if self.finished || self.performing.is_some() {
            return Ok(());
        }
        match self.in_flight.first() {
            None => {
                let due = self.stop_requested_before.is_some()
                    || self.exhausted.len() == SOURCES.len()
                    || self.idle_since.is_some_and(|t| now >= t + INTERVAL);
                prop_assert!(!due, "a due checkpoint was not triggered");
            }
            Some(id) => {
                let is_final = self.triggered.contains(&(*id, true));
                let timed_out = now >= self.trigger_times[id] + TIMEOUT;
                prop_assert!(is_final || !timed_out, "{id} timed out and was not aborted");
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_interleavings_keep_the_protocol(events in proptest::collection::vec(event(), 0..200)) {
        let mut r = Run::new(true);
        let mut m = Model { idle_since: Some(r.t0), ..Model::default() };
        for e in events {
            if m.finished {
                break;
            }
            let newest = m.triggered.last().map_or(0, |t| t.0);
            let input = match e {
                Event::Tick(ms) => {
                    r.now += Duration::from_millis(ms);
                    Input::Tick
                }
                Event::Ack { task, back } => {
                    let id = newest.saturating_sub(back);
                    if !m.aborted.contains(&id) && !m.committed.contains(&id) && newest > 0 {
                        m.acked.entry(id).or_default().insert(TASKS[task]);
                    }
                    ack(TASKS[task], id)
                }
                Event::Fail { task, back } => failed(TASKS[task], newest.saturating_sub(back)),
                Event::Exhausted(s) => {
                    m.exhausted.insert(SOURCES[s]);
                    exhausted(SOURCES[s])
                }
                Event::StopRequested => {
                    m.stop_requested_before.get_or_insert(newest);
                    Input::StopRequested
                }
                Event::Done => match m.performing.take() {
                    Some(Input::ManifestWritten(id)) => {
                        m.manifest_written.insert(id.0);
                        Input::ManifestWritten(id)
                    }
                    Some(Input::Committed(id)) => {
                        m.in_flight.remove(&id.0);
                        m.committed.insert(id.0);
                        m.idle_since = Some(r.now);
                        Input::Committed(id)
                    }
                    _ => Input::Tick,
                },
            };
            let tick = matches!(input, Input::Tick);
            let commands = r.step(input);
            m.check(r.now, commands)?;
            if tick {
                m.check_tick(r.now)?;
            }
        }
    }
}
