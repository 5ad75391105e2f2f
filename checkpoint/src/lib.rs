//! Checkpoint identifiers and the key-group layout of keyed state.
//!
//! snapflow partitions keyed state Flink-style: every key hashes into one of a fixed number of
//! *key groups* (the job's max parallelism), and each parallel task owns a contiguous range of
//! key groups. Because the number of key groups never changes for a job, state written by a job
//! at one parallelism can later be split or merged by key group for another parallelism.
//!
//! This crate sits at the bottom of the dependency chain
//! (`checkpoint` <- `engine` <- `operators` <- `snapflow`) so that the runtime's hash
//! partitioner and the state backend agree on one definition of "which task owns this key".

mod id;
mod key_group;

pub use id::CheckpointId;
pub use key_group::{
    key_group_of_hash, key_hash, task_for_key_group, KeyGroup, KeyGroupRange,
    DEFAULT_MAX_PARALLELISM,
};
