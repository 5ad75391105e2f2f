#![allow(dead_code)] // Shared by the ledger example, the chaos driver and the tests.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! The ledger job graph, shared so that tests and the chaos driver run exactly what the example
//! runs. Needs `ledger_model` as a sibling module.
//!
//! ```text
//! read --key: id block--> dedup --key: account--> balance --> write (balances, dead letters)
//! ```
//!
//! Shaped for throughput. Every operator runs one thread per parallel task, every edge costs a
//! hand-over per record, and a stream used twice would copy every record for its second
//! consumer; so the job is a straight line of four operators, and the two outputs are split
//! apart only inside the sink.
//!
//! - `read` is one task ([`READ_PARALLELISM`]) that reads the file from start to end. The
//!   result must be a function of the input alone: of the lines with the same id, the first in
//!   the file wins and the others are dead letters, whatever the timing. One reading task
//!   sends its lines in file order, and a channel delivers one sender's batches in order, so
//!   every `dedup` task sees its ids in file order. (Parallel readers each read a byte range
//!   of the file, and which range's copy of an id reached `dedup` first was a race.)
//! - `read` parses each line ([`TransferSource`]): what travels is a compact [`Input`] with
//!   inline account names, not the line, which is dropped on the thread that allocated it.
//!   Parsing in `dedup` instead, in parallel, would hand every line's `String` to another
//!   thread to free, and with the system allocator that cost more CPU (+65%) than the parse.
//! - `dedup` sees malformed lines as well as transfers, so it is the one place that decides
//!   what becomes a dead letter: it emits the two [`Entry`]s of a new transfer, or a
//!   [`DeadLetter`]. Its state is a bitmap per block of 64 ids rather than a key per id: 64
//!   times fewer keys to look up and to write at every checkpoint.
//! - `balance` applies entries per account. Dead letters travel with them under the empty
//!   account name (never a real account), are passed on, and touch no state.
//! - `write` ([`Outputs`]) hands balances to one sink and dead letters to another: by default
//!   two exactly-once [`FileSink`]s, each with its own directory, its own two-phase commit and
//!   its own lines, exactly as if they were separate sink operators.

use super::ledger_model::{self, Fields};
use serde::{Deserialize, Serialize};
use snapflow::engine::sink_state;
use snapflow::engine::RestoredState;
use snapflow::engine::{
    CheckpointId, Committer, ReadStatus, Sink, SinkWriter, Source, SourcePosition, SourceReader,
    TaskInfo,
};
use snapflow::kafka::{KafkaConfig, KafkaSink, KafkaSource};
use snapflow::operators::sink::DiscardCounter;
use snapflow::postgres::{PgMode, PgTable, PostgresSink};
use snapflow::prelude::*;
use std::path::Path;
use std::sync::Arc;

/// Ids per `dedup` state entry: one bit each in a `u64`.
const IDS_PER_BLOCK: u64 = 64;

/// The parallelism of `read`: one task, so that lines leave it in file order (see the module
/// documentation). Every other operator runs at the job's parallelism.
pub const READ_PARALLELISM: usize = 1;

/// How many tasks `operator` (one of [`OPERATORS`]) runs when the job runs at `parallelism`.
pub fn tasks(operator: &str, parallelism: usize) -> usize {
    match operator {
        "read" => READ_PARALLELISM,
        _ => parallelism,
    }
}

/// A valid transfer on its way from `read` to `dedup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub id: u64,
    pub amount: u64,
    pub from: CompactString,
    pub to: CompactString,
    /// The input line, kept only when formatting the fields does not give it back (such as
    /// `007,a,b,+5`): a duplicate's dead letter must repeat its line byte for byte.
    pub odd_line: Option<Box<str>>,
}

impl Transfer {
    /// The transfer of `line`, whose fields are `fields`.
    fn new(fields: Fields<'_>, line: &str) -> Transfer {
        Transfer {
            id: fields.id,
            amount: fields.amount,
            from: CompactString::from(fields.from),
            to: CompactString::from(fields.to),
            odd_line: (!fields.canonical).then(|| line.into()),
        }
    }

    /// The input line this transfer came from.
    pub fn into_line(self) -> String {
        match self.odd_line {
            Some(line) => line.into(),
            None => {
                let mut line = String::with_capacity(self.from.len() + self.to.len() + 40);
                line.push_str(itoa::Buffer::new().format(self.id));
                line.push(',');
                line.push_str(&self.from);
                line.push(',');
                line.push_str(&self.to);
                line.push(',');
                line.push_str(itoa::Buffer::new().format(self.amount));
                line
            }
        }
    }
}

/// A non-blank input line, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Transfer(Transfer),
    Malformed(String),
}

impl Input {
    /// Parses `line`: `None` for a blank line, which the ledger ignores.
    pub fn parse(line: String) -> Option<Input> {
        if let Some(fields) = ledger_model::fields(&line) {
            return Some(Input::Transfer(Transfer::new(fields, &line)));
        }
        (!ledger_model::is_blank(&line)).then_some(Input::Malformed(line))
    }

    /// The key that `dedup` partitions and keeps state by: the transfer's block of ids.
    /// Malformed lines go with block 0 and touch no state.
    fn block(&self) -> u64 {
        match self {
            Input::Transfer(t) => t.id / IDS_PER_BLOCK,
            Input::Malformed(_) => 0,
        }
    }
}

/// A line that the ledger does not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadLetter {
    Malformed(String),
    Duplicate(String),
}

impl DeadLetter {
    /// Appends the dead-letter output line, `malformed<TAB>line` or `duplicate<TAB>line`.
    pub fn format(&self, buf: &mut Vec<u8>) {
        let (kind, line) = match self {
            DeadLetter::Malformed(line) => ("malformed", line),
            DeadLetter::Duplicate(line) => ("duplicate", line),
        };
        buf.extend_from_slice(kind.as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(line.as_bytes());
    }
}

/// One side of an accepted transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub account: CompactString,
    pub delta: i64,
}

/// What `dedup` emits: entries to apply, dead letters to write (boxed: they are rare, and
/// entries stay 32 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    Entry(Entry),
    DeadLetter(Box<DeadLetter>),
}

impl Checked {
    /// The key that `balance` partitions and keeps state by.
    fn account(&self) -> CompactString {
        match self {
            Checked::Entry(e) => e.account.clone(),
            // Account names are never empty.
            Checked::DeadLetter(_) => CompactString::default(),
        }
    }
}

/// An account's balance after its `version`-th entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance {
    pub account: CompactString,
    pub balance: i128,
    pub version: u64,
}

impl Balance {
    /// Appends the output line `account<TAB>balance<TAB>version`.
    pub fn format(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.account.as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(itoa::Buffer::new().format(self.balance).as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(itoa::Buffer::new().format(self.version).as_bytes());
    }
}

/// An account's state in `balance`. The balance is kept as the two halves of an `i128`: an
/// `i128` is 16-byte aligned, which would make every state entry 80 bytes instead of 56, and
/// with thousands of accounts the entries' cache footprint is what a lookup costs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Account {
    balance_low: u64,
    balance_high: i64,
    version: u64,
}

impl Account {
    fn balance(&self) -> i128 {
        (i128::from(self.balance_high) << 64) | i128::from(self.balance_low)
    }

    /// Applies one entry.
    fn apply(&mut self, delta: i64) {
        let balance = self.balance() + i128::from(delta);
        // Splitting into halves: the truncations are the point.
        self.balance_low = balance as u64;
        self.balance_high = (balance >> 64) as i64;
        self.version += 1;
    }
}

/// What `balance` emits: a line of one of the two outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    Balance(Balance),
    DeadLetter(DeadLetter),
}

/// The names of the job's operators, for failure injection.
pub const OPERATORS: [&str; 4] = ["read", "dedup", "balance", "write"];

/// The ledger job, writing balances under `output` and dead letters under `dead_letter`
/// (exactly-once file sinks).
pub fn build(input: &Path, output: &Path, dead_letter: &Path) -> Job {
    build_with(
        input,
        Outputs {
            balances: FileSink::with_format(output, |b: &Balance, buf: &mut Vec<u8>| b.format(buf)),
            dead_letters: FileSink::with_format(
                dead_letter,
                |d: &DeadLetter, buf: &mut Vec<u8>| d.format(buf),
            ),
        },
    )
}

/// The `balances` table in `schema`: the latest balance and version of each account.
pub fn balances_table(schema: &str) -> PgTable {
    PgTable::upsert(
        "balances",
        &[
            ("account", "TEXT NOT NULL"),
            ("balance", "BIGINT NOT NULL"),
            ("version", "BIGINT NOT NULL"),
        ],
        &["account"],
        "version",
    )
    .in_schema(schema)
}

/// The `dead_letters` table in `schema`: `reason` is `malformed` or `duplicate`.
pub fn dead_letters_table(schema: &str) -> PgTable {
    PgTable::insert(
        "dead_letters",
        &[("reason", "TEXT NOT NULL"), ("line", "TEXT NOT NULL")],
    )
    .in_schema(schema)
}

/// The ledger job writing into PostgreSQL at `url`: the latest balance of each account into
/// [`balances_table`] and dead letters into [`dead_letters_table`], both exactly once, in
/// `mode`.
pub fn build_postgres(input: &Path, url: &str, schema: &str, mode: PgMode) -> Job {
    build_with(input, postgres_outputs(url, schema, mode))
}

/// The two PostgreSQL sinks of [`build_postgres`], for tests that wrap them.
pub fn postgres_outputs(
    url: &str,
    schema: &str,
    mode: PgMode,
) -> Outputs<PostgresSink<Balance>, PostgresSink<DeadLetter>> {
    {
        Outputs {
            balances: PostgresSink::new(url, balances_table(schema), |b: &Balance, row| {
                row.text(&b.account).number(b.balance).number(b.version);
            })
            .with_mode(mode),
            dead_letters: PostgresSink::new(
                url,
                dead_letters_table(schema),
                |d: &DeadLetter, row| {
                    let (reason, line) = match d {
                        DeadLetter::Malformed(line) => ("malformed", line),
                        DeadLetter::Duplicate(line) => ("duplicate", line),
                    };
                    row.text(reason).text(line);
                },
            )
            .with_mode(mode),
        }
    }
}

/// Counters of the discarded outputs of [`build_discarding`].
pub struct Discarded {
    /// Balance lines: two per accepted transfer.
    pub balances: DiscardCounter,
    /// Dead letters, malformed and duplicate.
    pub dead_letters: DiscardCounter,
}

/// The ledger job with both outputs counted and dropped, for measuring the job itself.
pub fn build_discarding(input: &Path) -> (Job, Discarded) {
    let outputs = Outputs {
        balances: DiscardSink::new(),
        dead_letters: DiscardSink::new(),
    };
    let counters = Discarded {
        balances: outputs.balances.counter(),
        dead_letters: outputs.dead_letters.counter(),
    };
    (build_with(input, outputs), counters)
}

/// The ledger job with the given outputs.
pub fn build_with<B, D>(input: &Path, outputs: Outputs<B, D>) -> Job
where
    B: Sink<Balance>,
    D: Sink<DeadLetter>,
{
    let job = Job::new("ledger");
    let inputs = job
        .source(TransferSource(TextFileSource::new(input)))
        .name("read")
        .uid("read")
        .parallelism(READ_PARALLELISM);
    apply(inputs, outputs);
    job
}

/// The ledger from a Kafka topic of transfer lines (read to the end offsets it has at the
/// start) into two Kafka topics, exactly once:
/// balance lines keyed by account into `output_topic`, dead letters into `dead_letter_topic`
/// (transactional ids `ledger-TOPIC`). `faults` plants crashes in the commits of the balance
/// sink and of the dead-letter sink (tests).
pub fn build_kafka(
    config: &KafkaConfig,
    input_topic: &str,
    output_topic: &str,
    dead_letter_topic: &str,
    faults: [Option<Arc<snapflow::kafka::CommitFault>>; 2],
) -> Job {
    let [balances_fault, dead_letter_fault] = faults;
    let job = Job::new("ledger");
    let source = KafkaSource::new(config.clone(), input_topic, |record| {
        let line = std::str::from_utf8(record.value)
            .map_err(|_| "the value is not UTF-8 text".to_owned())?;
        Ok(Input::parse(line.to_owned()))
    })
    // Read to the end the topic has at the start, then finish (as the file source does).
    .bounded(true);
    let inputs = job
        .source(source)
        .name("read")
        .uid("read")
        .parallelism(READ_PARALLELISM)
        // Blank lines are dropped, as the file source's reader does.
        .flat_map_with(|input: Option<Input>, out: &mut Output<Input>| {
            if let Some(input) = input {
                out.push(input);
            }
        })
        .name("parse")
        .uid("parse")
        .parallelism(READ_PARALLELISM);
    let outputs = Outputs {
        balances: planted(
            KafkaSink::exactly_once(
                config.clone(),
                output_topic,
                format!("ledger-{output_topic}"),
                |b: &Balance, key: &mut Vec<u8>, value: &mut Vec<u8>| {
                    key.extend_from_slice(b.account.as_bytes());
                    b.format(value);
                },
            ),
            balances_fault,
        ),
        dead_letters: planted(
            KafkaSink::exactly_once(
                config.clone(),
                dead_letter_topic,
                format!("ledger-{dead_letter_topic}"),
                |d: &DeadLetter, _key: &mut Vec<u8>, value: &mut Vec<u8>| d.format(value),
            ),
            dead_letter_fault,
        ),
    };
    apply(inputs, outputs);
    job
}

/// `sink` with `fault` planted in its commits, if any.
fn planted<T>(
    sink: KafkaSink<T>,
    fault: Option<Arc<snapflow::kafka::CommitFault>>,
) -> KafkaSink<T> {
    match fault {
        Some(fault) => sink.commit_fault(fault),
        None => sink,
    }
}

/// The ledger's operators and sink, after its source.
fn apply<B, D>(inputs: Stream<Input>, outputs: Outputs<B, D>)
where
    B: Sink<Balance>,
    D: Sink<DeadLetter>,
{
    inputs
        .key_by(Input::block)
        .process(
            |_: &u64, input: Input, seen: &mut ValueState<u64>, out: &mut Output<Checked>| {
                match input {
                    Input::Malformed(line) => {
                        let dead = DeadLetter::Malformed(line);
                        out.push(Checked::DeadLetter(Box::new(dead)));
                    }
                    Input::Transfer(t) => {
                        let bit = 1 << (t.id % IDS_PER_BLOCK);
                        let bits = seen.get().copied().unwrap_or(0);
                        if bits & bit != 0 {
                            let dead = DeadLetter::Duplicate(t.into_line());
                            out.push(Checked::DeadLetter(Box::new(dead)));
                        } else {
                            seen.set(bits | bit);
                            // At most 10^12: no overflow.
                            let amount = t.amount as i64;
                            out.push(Checked::Entry(Entry {
                                account: t.from,
                                delta: -amount,
                            }));
                            out.push(Checked::Entry(Entry {
                                account: t.to,
                                delta: amount,
                            }));
                        }
                    }
                }
                Ok(())
            },
        )
        .name("dedup")
        .uid("dedup")
        .key_by(Checked::account)
        .process(
            |_: &CompactString,
             checked: Checked,
             state: &mut ValueState<Account>,
             out: &mut Output<Written>| {
                match checked {
                    Checked::Entry(e) => {
                        let mut account = state.get().copied().unwrap_or_default();
                        account.apply(e.delta);
                        state.set(account);
                        out.push(Written::Balance(Balance {
                            account: e.account,
                            balance: account.balance(),
                            version: account.version,
                        }));
                    }
                    Checked::DeadLetter(d) => out.push(Written::DeadLetter(*d)),
                }
                Ok(())
            },
        )
        .name("balance")
        .uid("balance")
        .sink(outputs)
        .name("write")
        .uid("write");
}

/// The lines of a text file, parsed on the reading task into [`Input`]s (blank lines
/// dropped). It wraps [`TextFileSource`], so it splits the file, records positions and
/// resumes exactly as that source does: a batch's lines are all parsed before the batch is
/// handed over, so the position after a batch is the position after its last line.
struct TransferSource(TextFileSource);

impl Source for TransferSource {
    type Out = Input;

    fn name(&self) -> String {
        "read-transfers".to_owned()
    }

    fn create_reader(&self, task: &TaskInfo) -> Result<Box<dyn SourceReader<Input>>, BoxError> {
        Ok(Box::new(TransferReader {
            lines: self.0.create_reader(task)?,
            line: Vec::with_capacity(1),
        }))
    }

    fn verify_restore(&self, positions: &[SourcePosition]) -> Result<(), BoxError> {
        self.0.verify_restore(positions)
    }
}

struct TransferReader {
    lines: Box<dyn SourceReader<String>>,
    /// The line being read, kept for its capacity.
    line: Vec<String>,
}

impl SourceReader<Input> for TransferReader {
    fn read_batch(&mut self, batch: &mut Vec<Input>, max: usize) -> Result<ReadStatus, BoxError> {
        // One line at a time: its `String` is freed before the next one is allocated, so the
        // allocator hands the same block back (from its thread cache) instead of taking its
        // slow path for a whole batch of live lines.
        // At most `max` lines per call, blank ones included: a long run of blank lines then
        // still lets barriers and the rate limit in between calls.
        for _ in 0..max {
            let status = self.lines.read_batch(&mut self.line, 1)?;
            let Some(line) = self.line.pop() else {
                return Ok(status);
            };
            batch.extend(Input::parse(line));
            if status == ReadStatus::Exhausted {
                return Ok(status);
            }
        }
        Ok(ReadStatus::More)
    }

    fn position(&self) -> Option<SourcePosition> {
        self.lines.position()
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        self.lines.seek(position)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.lines.notify_checkpoint_complete(checkpoint)
    }
}

/// The `write` sink: balances to one sink, dead letters to another. Each writer task runs a
/// writer of both, and the job's commits go to the committers of both, so each output keeps
/// its sink's guarantees (for [`FileSink`]: exactly once, published per checkpoint).
pub struct Outputs<B, D> {
    pub balances: B,
    pub dead_letters: D,
}

impl<B: Sink<Balance>, D: Sink<DeadLetter>> Sink<Written> for Outputs<B, D> {
    fn name(&self) -> String {
        "write-outputs".to_owned()
    }

    fn create_writer(&self, task: &TaskInfo) -> Result<Box<dyn SinkWriter<Written>>, BoxError> {
        Ok(Box::new(OutputsWriter {
            balances: self.balances.create_writer(task)?,
            dead_letters: self.dead_letters.create_writer(task)?,
        }))
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        // Each with the index of its sink's part in the writer's combined state.
        let committers: Vec<_> = (self.balances.committer().map(|c| (0, c)).into_iter())
            .chain(self.dead_letters.committer().map(|c| (1, c)))
            .collect();
        (!committers.is_empty()).then(|| Arc::new(Committers(committers)) as Arc<dyn Committer>)
    }
}

struct OutputsWriter {
    balances: Box<dyn SinkWriter<Balance>>,
    dead_letters: Box<dyn SinkWriter<DeadLetter>>,
}

impl SinkWriter<Written> for OutputsWriter {
    fn write_batch(&mut self, batch: Vec<Written>) -> Result<(), BoxError> {
        let mut balances = Vec::with_capacity(batch.len());
        let mut dead_letters = Vec::new();
        for record in batch {
            match record {
                Written::Balance(b) => balances.push(b),
                Written::DeadLetter(d) => dead_letters.push(d),
            }
        }
        if !balances.is_empty() {
            self.balances.write_batch(balances)?;
        }
        if !dead_letters.is_empty() {
            self.dead_letters.write_batch(dead_letters)?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.balances.pre_commit(checkpoint)?;
        self.dead_letters.pre_commit(checkpoint)
    }

    fn snapshot(&mut self, checkpoint: CheckpointId) -> Result<Option<Vec<u8>>, BoxError> {
        // One state per task: both file sinks' records of what they pre-committed.
        Ok(Some(sink_state::combine(&[
            self.balances.snapshot(checkpoint)?,
            self.dead_letters.snapshot(checkpoint)?,
        ])))
    }

    fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.balances.notify_checkpoint_complete(checkpoint)?;
        self.dead_letters.notify_checkpoint_complete(checkpoint)
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.balances.finish()?;
        self.dead_letters.finish()
    }
}

/// The committers of both outputs, called in turn.
struct Committers(Vec<(usize, Arc<dyn Committer>)>);

impl Committer for Committers {
    fn directories(&self) -> Vec<std::path::PathBuf> {
        self.0.iter().flat_map(|(_, c)| c.directories()).collect()
    }

    fn open(&self, restored: Option<&RestoredState>) -> Result<(), BoxError> {
        for (index, committer) in &self.0 {
            match restored {
                None => committer.open(None)?,
                Some(state) => committer.open(Some(&sink_state::split_restored(state, *index)?))?,
            }
        }
        Ok(())
    }

    fn commit(&self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        self.0.iter().try_for_each(|(_, c)| c.commit(checkpoint))
    }

    fn close(&self, interrupted: bool) {
        for (_, committer) in &self.0 {
            committer.close(interrupted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(line: &str) -> Transfer {
        match Input::parse(line.to_owned()) {
            Some(Input::Transfer(t)) => t,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn a_transfer_gives_its_line_back() {
        for (line, odd) in [
            ("7,a,b,5", false),
            ("0,acct1,acct2,10000", false),
            ("18446744073709551615,a,a,1000000000000", false),
            ("007,a,b,5", true),
            ("7,a,b,+5", true),
            ("+7,a,b,05", true),
            ("0,a,b,01", true),
        ] {
            let t = transfer(line);
            assert_eq!(t.odd_line.is_some(), odd, "{line}");
            assert_eq!(t.into_line(), line);
        }
    }

    #[test]
    fn an_account_keeps_an_i128_balance_in_halves() {
        let mut account = Account::default();
        for delta in [-5, i64::MAX, i64::MAX, 7, i64::MIN, i64::MIN, i64::MIN, -1] {
            let before = account.balance();
            account.apply(delta);
            assert_eq!(account.balance(), before + i128::from(delta));
        }
        assert_eq!(account.version, 8);
    }

    #[test]
    fn blank_lines_are_dropped_and_malformed_ones_kept() {
        assert_eq!(Input::parse("  ".to_owned()), None);
        assert_eq!(Input::parse(String::new()), None);
        assert_eq!(
            Input::parse("7,a b,c,5".to_owned()),
            Some(Input::Malformed("7,a b,c,5".to_owned()))
        );
    }
}
