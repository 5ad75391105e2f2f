//! The ledger's result is a function of its input file alone: at any parallelism, of the lines
//! with the same id the first in file order is applied and every other one is a dead letter,
//! whatever the timing. Checked against the sequential model on an input whose repeated ids
//! have different content and straddle the places where a file would be split among parallel
//! readers (a half and the quarters).

mod common;
#[path = "../examples/support/ledger_job.rs"]
mod ledger_job;
#[path = "../examples/support/ledger_model.rs"]
mod ledger_model;
#[path = "../examples/support/output.rs"]
mod output;
#[path = "../examples/support/rng.rs"]
mod rng;

use common::bounded;
use rng::SplitMix64;
use snapflow::prelude::*;

/// Fresh transfers in the input: ids `0..TRANSFERS`, in order.
const TRANSFERS: u64 = 200_000;
/// The file is cut into this many regions; parallel readers at parallelism 2 and 4 would
/// split it at (about) region boundaries.
const REGIONS: u64 = 4;

/// A transfer line with id `id` and random accounts and amount.
fn transfer(rng: &mut SplitMix64, id: u64) -> String {
    let from = rng.next() % 500;
    let to = rng.next() % 500;
    let amount = 1 + rng.next() % 100_000;
    format!("{id},acct{from},acct{to},{amount}")
}

/// About `TRANSFERS` fresh transfers, and resubmissions of their ids with other accounts and
/// amounts. Ids first seen at the end of a region are resubmitted at the start of later
/// regions, where a reader of a later part of the file would reach them first; other ids are
/// resubmitted soon after, and a few lines are malformed.
fn input() -> String {
    let mut rng = SplitMix64(42);
    let region = TRANSFERS / REGIONS;
    let mut late: Vec<u64> = Vec::new();
    let mut text = String::new();
    let line = |text: &mut String, line: &str| {
        text.push_str(line);
        text.push('\n');
    };
    for id in 0..TRANSFERS {
        let offset = id % region;
        let roll = rng.next() % 100;
        if offset < region / 20 && !late.is_empty() && roll < 40 {
            // Early in a region: an id first seen late in an earlier region.
            let again = late[(rng.next() % late.len() as u64) as usize];
            line(&mut text, &transfer(&mut rng, again));
        } else if id > 0 && roll < 3 {
            // Anywhere: an id seen a little earlier.
            let again = id - 1 - rng.next() % id.min(1000);
            line(&mut text, &transfer(&mut rng, again));
        } else if roll == 3 {
            line(&mut text, "not,a,transfer");
        }
        line(&mut text, &transfer(&mut rng, id));
        if offset >= region - region / 20 {
            late.push(id);
        }
    }
    text
}

/// The sequential model keeps the first occurrence of an id in file order; the rest are
/// duplicates, whatever their content.
#[test]
fn the_model_applies_the_first_occurrence_in_file_order() {
    let reference = ledger_model::reference("7,a,b,5\n7,c,d,9\n8,b,a,1\n7,a,b,5\n");
    let balance = |account: &str| reference.balances.get(account).copied();
    assert_eq!(balance("a"), Some((-4, 2)));
    assert_eq!(balance("b"), Some((4, 2)));
    assert_eq!(balance("c"), None);
    assert_eq!(reference.duplicates, ["7,c,d,9", "7,a,b,5"]);
}

#[test]
fn the_ledger_result_depends_on_the_input_alone() {
    let text = input();
    let reference = ledger_model::reference(&text);
    // The input does what it is for: many resubmitted ids, with content of their own.
    assert!(reference.duplicates.len() > 5_000, "too few duplicates");
    let expected_dead = reference.dead_letters();
    for parallelism in [1, 2, 4] {
        let root = tempfile::tempdir().unwrap();
        let input = root.path().join("transfers.csv");
        std::fs::write(&input, &text).unwrap();
        let (out, dead) = (root.path().join("out"), root.path().join("dead"));
        let config = JobConfig::default().with_parallelism(parallelism);
        let (o, d) = (out.clone(), dead.clone());
        bounded("ledger", move || {
            ledger_job::build(&input, &o, &d).run(&config)
        })
        .unwrap_or_else(|e| panic!("parallelism {parallelism}: {e}"));
        let lines = output::committed_lines(&out).unwrap();
        let balances = ledger_model::latest_balances(&lines).unwrap();
        assert!(
            balances == reference.balances,
            "parallelism {parallelism}: the balances differ from the sequential ledger"
        );
        let mut dead_letters = output::committed_lines(&dead).unwrap();
        dead_letters.sort();
        let wrong = dead_letters
            .iter()
            .zip(&expected_dead)
            .filter(|(got, want)| got != want)
            .count();
        assert!(
            dead_letters == expected_dead,
            "parallelism {parallelism}: {} dead letters, {} expected, {wrong} differ in sorted order",
            dead_letters.len(),
            expected_dead.len()
        );
    }
}
