//! State backends: how operator state is laid out inside a snapshot payload.
//!
//! Keyed state is stored by key group ([`encode_keyed_state`]), so that a task restored at a
//! different parallelism can read every old task's snapshot and keep exactly the keys it owns
//! now ([`decode_keyed_state`]).

mod keyed;
mod sections;

pub use keyed::{
    decode_keyed_changes, decode_keyed_state, encode_keyed_changes, encode_keyed_state,
    keyed_state_types, KeyedChanges, StateTypes, KEYED_CHANGES_FORMAT, KEYED_STATE_FORMAT,
};
pub use sections::{
    decode_keyed_section, read_keyed_index, KeyedIndex, KeyedSection, KEYED_SECTIONS_FORMAT,
};
