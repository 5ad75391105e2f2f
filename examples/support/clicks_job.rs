#![allow(dead_code)] // Shared by the clicks example, the chaos driver and the tests.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! The clicks job: clicks per user per event-time window, with late and malformed input in a
//! second exactly-once output; and its sequential reference, written independently of the
//! engine (windows computed straight from the input and the watermark rule).
//!
//! Input lines `timestamp_ms,user,page`; output `user<TAB>window_start<TAB>window_end<TAB>count`
//! per fired window; `late<TAB>line` and `malformed<TAB>line` in the late output.
//!
//! The watermark rule, which both the job and the reference follow: one task reads the file
//! in order and generates watermarks (Flink's bounded out-of-orderness, `max_seen - D - 1`),
//! due after every [`EMIT_EVERY`] valid clicks; the end of input is watermark +infinity. The
//! windows run at the job's parallelism. Since one channel carries the records and watermarks
//! to each window task in file order, which clicks are late is a function of the input alone,
//! the same after any number of crashes (watermarks are part of the checkpoint).

use snapflow::engine::{OperatorLifecycle, Tagged, UnaryOperator};
use snapflow::operators::time::WatermarkStrategy;
use snapflow::operators::window::{
    EventTimeSessionWindows, SlidingEventTimeWindows, TumblingEventTimeWindows, Window,
    WindowAssigner,
};
use snapflow::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Valid clicks between two watermark emission points.
pub const EMIT_EVERY: u64 = 64;

/// Which windows to count in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// `tumbling:W`
    Tumbling(u64),
    /// `sliding:W:S`
    Sliding(u64, u64),
    /// `session:G`
    Session(u64),
}

impl FromStr for WindowKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let ms = |p: &str| -> Result<u64, String> {
            match p.parse::<u64>() {
                Ok(n) if (1..=1_000_000_000_000).contains(&n) => Ok(n),
                _ => Err(format!(
                    "'{p}' in --window {s} is not a length in milliseconds (1 to 10^12)"
                )),
            }
        };
        match parts.as_slice() {
            ["tumbling", w] => Ok(WindowKind::Tumbling(ms(w)?)),
            ["sliding", w, sl] => {
                let (w, sl) = (ms(w)?, ms(sl)?);
                if sl > w {
                    return Err(format!("--window {s}: the slide must not exceed the size"));
                }
                if w / sl > 1000 {
                    return Err(format!(
                        "--window {s}: at most 1000 windows per event (size / slide)"
                    ));
                }
                Ok(WindowKind::Sliding(w, sl))
            }
            ["session", g] => Ok(WindowKind::Session(ms(g)?)),
            _ => Err(format!(
                "--window {s}: expected tumbling:W, sliding:W:S or session:G (milliseconds)"
            )),
        }
    }
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowKind::Tumbling(w) => write!(f, "tumbling:{w}"),
            WindowKind::Sliding(w, s) => write!(f, "sliding:{w}:{s}"),
            WindowKind::Session(g) => write!(f, "session:{g}"),
        }
    }
}

impl WindowKind {
    fn assigner(self) -> WindowAssigner {
        let d = Duration::from_millis;
        match self {
            WindowKind::Tumbling(w) => TumblingEventTimeWindows::of(d(w)),
            WindowKind::Sliding(w, s) => SlidingEventTimeWindows::of(d(w), d(s)),
            WindowKind::Session(g) => EventTimeSessionWindows::with_gap(d(g)),
        }
    }
}

/// One valid input line.
#[derive(Clone, Debug)]
pub struct Click {
    pub ts: u64,
    pub user: CompactString,
    /// The line as read, for the late output.
    pub line: String,
}

/// Parses `timestamp_ms,user,page`: a u64 and two non-empty fields without commas or
/// whitespace. `None` for a malformed line.
pub fn parse(line: &str) -> Option<Click> {
    let mut fields = line.split(',');
    let (ts, user, page) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() {
        return None;
    }
    let ts: u64 = ts.parse().ok()?;
    let ok = |f: &str| !f.is_empty() && !f.chars().any(char::is_whitespace);
    if !ok(user) || !ok(page) {
        return None;
    }
    Some(Click {
        ts,
        user: user.into(),
        line: line.to_owned(),
    })
}

/// Whether a line is ignored (blank).
pub fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Parses lines into clicks; malformed ones go to the side output `malformed`.
struct Parse {
    malformed: u32,
}

impl UnaryOperator<String, Tagged<Click>> for Parse {
    fn process_batch(
        &mut self,
        batch: Vec<String>,
        out: &mut Output<Tagged<Click>>,
    ) -> Result<(), BoxError> {
        for line in batch {
            if is_blank(&line) {
                continue;
            }
            match parse(&line) {
                Some(click) => out.push(Tagged::Main(click)),
                None => out.push(Tagged::Side(self.malformed, std::sync::Arc::new(line))),
            }
        }
        Ok(())
    }
}

impl OperatorLifecycle<Tagged<Click>> for Parse {}

/// Builds the job: counts per user per window of `window` into `output`, late and malformed
/// lines into `late`.
pub fn build(input: &Path, output: &Path, late: &Path, window: WindowKind, d: u64) -> Job {
    let job = Job::new("clicks");
    let malformed_tag: OutputTag<String> = OutputTag::new("malformed");
    let late_tag: OutputTag<Click> = OutputTag::new("late");
    let malformed_id = malformed_tag.id();
    // Reading, parsing and watermarking run as one task each, in file order: see the module
    // documentation for why.
    let parsed = job
        .source(TextFileSource::new(input))
        .name("read")
        .uid("read")
        .parallelism(1)
        .unary("parse", move |_| Parse {
            malformed: malformed_id,
        })
        .split_side_outputs()
        .name("parse")
        .uid("parse")
        .parallelism(1);
    let malformed = parsed.side_output(&malformed_tag);
    let counts = parsed
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(d))
                .with_timestamp_assigner(|c: &Click| c.ts)
                .with_emit_interval(EMIT_EVERY),
        )
        .name("watermarks")
        .uid("watermarks")
        .parallelism(1)
        .key_by(|c: &Click| c.user.clone())
        .window(window.assigner())
        .side_output_late_data(&late_tag)
        .aggregate_with(Count, |user: &CompactString, w: Window, n: u64| {
            (user.clone(), w.start, w.end, n)
        })
        .name("count")
        .uid("count");
    let late_clicks = counts.side_output(&late_tag);
    counts
        .sink(FileSink::with_format(
            output,
            |(user, start, end, n): &(CompactString, i64, i64, u64), buf: &mut Vec<u8>| {
                buf.extend_from_slice(format!("{user}\t{start}\t{end}\t{n}").as_bytes());
            },
        ))
        .name("write")
        .uid("write");
    late_clicks
        .map(|c: Click| format!("late\t{}", c.line))
        .name("format-late")
        .uid("format-late")
        .union(
            malformed
                .map(|line: String| format!("malformed\t{line}"))
                .name("format-malformed")
                .uid("format-malformed"),
        )
        .name("late-and-malformed")
        .uid("late-and-malformed")
        .sink(FileSink::new(late))
        .name("write-late")
        .uid("write-late");
    job
}

/// What the job must output, computed sequentially.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// `(user, start, end) -> count`, one entry per fired window.
    pub windows: BTreeMap<(String, i64, i64), u64>,
    /// The late-output lines, sorted.
    pub late: Vec<String>,
}

impl Expected {
    /// The output lines, sorted.
    pub fn output_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .windows
            .iter()
            .map(|((u, s, e), n)| format!("{u}\t{s}\t{e}\t{n}"))
            .collect();
        lines.sort();
        lines
    }
}

/// The sequential reference: replays the watermark rule over the clicks in file order and
/// computes the windows directly.
pub fn expected(text: &str, window: WindowKind, d: u64) -> Expected {
    let mut late = Vec::new();
    let mut clicks: Vec<(u64, &str, &str)> = Vec::new();
    for line in text.lines() {
        if is_blank(line) {
            continue;
        }
        match parse(line) {
            Some(c) => clicks.push((c.ts, line.split(',').nth(1).unwrap_or(""), line)),
            None => late.push(format!("malformed\t{line}")),
        }
    }
    // The watermark each click meets: the last one emitted before it (None: no watermark yet).
    let mut watermarks: Vec<Option<i64>> = Vec::with_capacity(clicks.len());
    let (mut max_seen, mut current): (Option<u64>, Option<i64>) = (None, None);
    for (i, (ts, _, _)) in clicks.iter().enumerate() {
        watermarks.push(current);
        max_seen = Some(max_seen.map_or(*ts, |m| m.max(*ts)));
        if (i as u64 + 1).is_multiple_of(EMIT_EVERY) {
            if let Some(wm) = max_seen.unwrap_or(0).checked_sub(d + 1) {
                let wm = wm as i64;
                if current.is_none_or(|c| c < wm) {
                    current = Some(wm);
                }
            }
        }
    }
    let mut windows: BTreeMap<(String, i64, i64), u64> = BTreeMap::new();
    match window {
        WindowKind::Tumbling(size) => count_fixed(
            &clicks,
            &watermarks,
            size as i64,
            size as i64,
            &mut windows,
            &mut late,
        ),
        WindowKind::Sliding(size, slide) => count_fixed(
            &clicks,
            &watermarks,
            size as i64,
            slide as i64,
            &mut windows,
            &mut late,
        ),
        WindowKind::Session(gap) => {
            count_sessions(&clicks, &watermarks, gap as i64, &mut windows, &mut late)
        }
    }
    late.sort();
    Expected { windows, late }
}

/// Tumbling and sliding windows: a click counts in each of its windows not yet complete
/// (`end - 1 > watermark`), and is late when there is none. Every window fires once, at the
/// latest at the end of input.
fn count_fixed(
    clicks: &[(u64, &str, &str)],
    watermarks: &[Option<i64>],
    size: i64,
    slide: i64,
    windows: &mut BTreeMap<(String, i64, i64), u64>,
    late: &mut Vec<String>,
) {
    for ((ts, user, line), wm) in clicks.iter().zip(watermarks) {
        let ts = *ts as i64;
        let mut counted = false;
        // Every window [s, s + size) with s a multiple of slide and s <= ts < s + size.
        let mut s = ts.div_euclid(slide) * slide;
        while s + size > ts {
            let open = wm.is_none_or(|w| s + size - 1 > w);
            if open {
                *windows
                    .entry(((*user).to_owned(), s, s + size))
                    .or_default() += 1;
                counted = true;
            }
            s -= slide;
        }
        if !counted {
            late.push(format!("late\t{line}"));
        }
    }
}

/// Session windows, simulated: before each click, sessions complete under its watermark
/// fire; the click is late if its own window `[ts, ts + gap)` is complete, else it joins
/// every open session of its user that it overlaps or touches.
fn count_sessions(
    clicks: &[(u64, &str, &str)],
    watermarks: &[Option<i64>],
    gap: i64,
    windows: &mut BTreeMap<(String, i64, i64), u64>,
    late: &mut Vec<String>,
) {
    // user -> open sessions (start, end, count)
    let mut open: HashMap<&str, Vec<(i64, i64, u64)>> = HashMap::new();
    let mut fired_upto: Option<i64> = None;
    for ((ts, user, line), wm) in clicks.iter().zip(watermarks) {
        if let Some(w) = *wm {
            if fired_upto.is_none_or(|f| f < w) {
                fired_upto = Some(w);
                for (u, sessions) in open.iter_mut() {
                    sessions.retain(|&(s, e, n)| {
                        if e - 1 <= w {
                            windows.insert(((*u).to_owned(), s, e), n);
                            false
                        } else {
                            true
                        }
                    });
                }
            }
        }
        let (start, end) = (*ts as i64, *ts as i64 + gap);
        if wm.is_some_and(|w| end - 1 <= w) {
            late.push(format!("late\t{line}"));
            continue;
        }
        let sessions = open.entry(user).or_default();
        let (mut s, mut e, mut n) = (start, end, 1);
        sessions.retain(|&(os, oe, on)| {
            if os <= end && oe >= start {
                s = s.min(os);
                e = e.max(oe);
                n += on;
                false
            } else {
                true
            }
        });
        sessions.push((s, e, n));
    }
    for (u, sessions) in open {
        for (s, e, n) in sessions {
            windows.insert((u.to_owned(), s, e), n);
        }
    }
}

/// Generates `n` click lines: users `u0..u49`, about 10 ms apart, out of order by up to
/// 3 s; about 1 in 200 is 20 to 60 s late (late under the default 5 s bound), and about 1 in
/// 500 lines is malformed, 1 in 1000 blank.
pub fn generate(n: u64, seed: u64) -> String {
    let mut rng = super::rng::SplitMix64(seed ^ 0xc11c);
    let base: u64 = 1_700_000_000_000;
    let mut text = String::with_capacity(n as usize * 32);
    for i in 0..n {
        let r = rng.next();
        if r % 1000 == 7 {
            text.push('\n');
            continue;
        }
        if r % 500 == 3 {
            text.push_str(
                ["not-a-click", "12x,u1,home", "5,,home", "5,u1", "5,u 1,p"][(i % 5) as usize],
            );
            text.push('\n');
            continue;
        }
        let mut ts = base + i * 10 + rng.next() % 3_000;
        if r % 200 == 11 {
            ts -= 20_000 + rng.next() % 40_000;
        }
        let user = rng.next() % 50;
        let page = ["home", "cart", "item", "search"][(rng.next() % 4) as usize];
        text.push_str(&format!("{ts},u{user},{page}\n"));
    }
    text
}

/// Checks committed output against what may be there at any moment: every line well formed
/// and no window emitted twice.
pub fn check_running(output_lines: &[String]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for line in output_lines {
        let fields: Vec<&str> = line.split('\t').collect();
        let [user, start, end, n] = fields.as_slice() else {
            return Err(format!("malformed output line {line:?}"));
        };
        if start.parse::<i64>().is_err() || end.parse::<i64>().is_err() || n.parse::<u64>().is_err()
        {
            return Err(format!("bad numbers in output line {line:?}"));
        }
        if !seen.insert((user.to_string(), start.to_string(), end.to_string())) {
            return Err(format!("window {user} [{start}, {end}) emitted twice"));
        }
    }
    Ok(())
}

/// The final check: output and late lines equal the sequential reference, and, for
/// tumbling and sliding windows, for every user and window, its emitted count plus the late
/// events that fall in it equals the input's events in it.
pub fn check_final(
    text: &str,
    window: WindowKind,
    d: u64,
    mut output: Vec<String>,
    mut late: Vec<String>,
) -> Result<(), String> {
    check_running(&output)?;
    output.sort();
    late.sort();
    let want = expected(text, window, d);
    // Tumbling windows: for every user and window, the emitted count plus the late events
    // in it equals the input's events in it. (A sliding window's event may be late for one
    // of its windows and counted in another, so there only the reference decides.)
    if let WindowKind::Tumbling(size) = window {
        let size = size as i64;
        let mut balance: HashMap<(String, i64), i64> = HashMap::new();
        let mut add = |line: &str, by: i64| {
            if let Some(c) = parse(line) {
                let start = (c.ts as i64).div_euclid(size) * size;
                *balance.entry((c.user.to_string(), start)).or_default() += by;
            }
        };
        for line in text.lines() {
            add(line, 1);
        }
        for line in &late {
            if let Some(l) = line.strip_prefix("late\t") {
                add(l, -1);
            }
        }
        for line in &output {
            let f: Vec<&str> = line.split('\t').collect();
            let (start, n): (i64, i64) = (f[1].parse().unwrap_or(0), f[3].parse().unwrap_or(0));
            *balance.entry((f[0].to_owned(), start)).or_default() -= n;
        }
        if let Some(((user, start), diff)) = balance.iter().find(|(_, d)| **d != 0) {
            return Err(format!(
                "window {user} starting {start}: emitted + late differs from the input by {diff}"
            ));
        }
    }
    if output != want.output_lines() {
        let expected_lines = want.output_lines();
        let extra: Vec<&String> = output
            .iter()
            .filter(|l| !expected_lines.contains(l))
            .take(5)
            .collect();
        let missing: Vec<&String> = expected_lines
            .iter()
            .filter(|l| !output.contains(l))
            .take(5)
            .collect();
        return Err(format!(
            "{} window lines, {} expected; unexpected {extra:?}; missing {missing:?}",
            output.len(),
            expected_lines.len()
        ));
    }
    if late != want.late {
        return Err(format!(
            "{} late/malformed lines, {} expected",
            late.len(),
            want.late.len()
        ));
    }
    Ok(())
}
