//! Snapshot files: one per task per checkpoint, a checked header followed by the task's state.
//!
//! The writer ([`write_snapshot`]) creates the file at its final size and fills it through a
//! writable memory map; the reader ([`Snapshot::open`]) maps it read-only, verifies everything
//! the header promises, and lends out the payload without copying it. The byte layout is
//! documented on [`SnapshotHeader`](crate::SnapshotHeader).

mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use reader::{verify_snapshot_file, ExpectedSnapshot, Snapshot};
pub use writer::{write_snapshot, write_snapshot_serialized, SnapshotInfo};
