//! A job resumed from a checkpoint written by a changed job graph: state is matched to
//! operators by uid. A new stateless operator starts empty and the output stays the
//! sequential result; dropping a stateful operator is refused, naming it, unless
//! `with_allow_non_restored_state(true)`, and then the job resumes without that state.

#[path = "support/changed_wordcount.rs"]
mod changed;
mod common;
#[path = "../examples/support/corpus.rs"]
mod corpus;
#[path = "support/killed_wordcount.rs"]
mod fixture;
#[path = "../examples/support/output.rs"]
mod output;
#[path = "../examples/support/rng.rs"]
mod rng;
#[path = "../examples/support/wordcount_job.rs"]
mod wordcount_job;

use changed::{with_a_new_filter, with_counts_as_text, without_count};
use common::bounded;
use fixture::{committed_sorted, config, dirs, killed_run, text};
use snapflow::prelude::*;

#[test]
fn a_new_stateless_operator_starts_empty_and_the_output_is_exact() {
    let original = text(5);
    let d = dirs(&original);
    killed_run(&d, 2);
    let (input, out, config) = (d.input.clone(), d.out.clone(), config(&d));
    let report = bounded("word count with a filter", move || {
        with_a_new_filter(&input, &out, &config)
    })
    .expect("the changed job resumes");
    assert!(report.restored_from.is_some(), "it resumed");
    assert!(
        committed_sorted(&d.out) == wordcount_job::expected_output(&original),
        "the output differs from the sequential count"
    );
}

#[test]
fn dropping_a_stateful_operator_needs_permission() {
    let original = text(5);
    let d = dirs(&original);
    killed_run(&d, 2);
    let before = committed_sorted(&d.out);

    let (input, out, plain) = (d.input.clone(), d.out.clone(), config(&d));
    let refused = bounded("word count without count", move || {
        without_count(&input, &out, &plain)
    });
    match refused {
        Err(e @ JobError::GraphMismatch { .. }) => {
            let message = e.to_string();
            assert!(message.contains("count"), "{message}");
            let JobError::GraphMismatch { added, removed, .. } = e else {
                unreachable!()
            };
            assert_eq!(added, ["uncounted"]);
            assert_eq!(removed, ["count"]);
        }
        other => panic!("expected a refusal naming count, got {other:?}"),
    }
    assert_eq!(
        committed_sorted(&d.out),
        before,
        "the refusal published nothing"
    );

    let (input, out) = (d.input.clone(), d.out.clone());
    let config = config(&d).with_allow_non_restored_state(true);
    let report = bounded("word count without count, allowed", move || {
        without_count(&input, &out, &config)
    })
    .expect("the changed job resumes when dropping state is allowed");
    assert!(report.restored_from.is_some(), "it resumed");

    changed::assert_counted_then_uncounted(&committed_sorted(&d.out), &original);
}

#[test]
fn keyed_state_of_a_changed_type_is_refused_at_start_naming_operator_and_types() {
    let original = text(5);
    let d = dirs(&original);
    killed_run(&d, 2);
    let before = committed_sorted(&d.out);
    let (input, out, config) = (d.input.clone(), d.out.clone(), config(&d));
    let refused = bounded("word count with counts as text", move || {
        with_counts_as_text(&input, &out, &config)
    });
    match refused {
        Err(JobError::TaskFailed { uid, source, .. }) => {
            assert_eq!(uid, "count");
            let message = snapflow::engine::ErrorChain(&source).to_string();
            assert!(message.contains("ValueState<u64>"), "{message}");
            assert!(
                message.contains("ValueState<alloc::string::String>"),
                "{message}"
            );
        }
        other => panic!("expected the count task to refuse its state, got {other:?}"),
    }
    assert_eq!(
        committed_sorted(&d.out),
        before,
        "the refusal published nothing"
    );
}
