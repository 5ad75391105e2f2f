//! The manifest: the record that makes a checkpoint complete.
//!
//! A manifest names every snapshot file of its checkpoint with the file's size and payload
//! checksum, the offsets every source task had reached, and the fingerprint of the job graph.
//! It is written last, atomically ([`CheckpointStore::commit`](crate::CheckpointStore::commit));
//! a checkpoint directory without one was never completed.
//!
//! File format (little-endian): magic `SNAPMAN\0` (8 bytes), format version u32, payload length
//! u64, CRC-32 of the payload u32, CRC-32 of the preceding 24 header bytes u32, then the
//! bincode-encoded [`Manifest`]. The checks mirror snapshot files: magic, version, header
//! checksum, exact length, payload checksum, then the manifest's own invariants.

use crate::error::{CheckpointError, Result};
use crate::format::{
    bincode_options, decode_exact, expect_file_len, expect_payload_checksum, Fields,
    MANIFEST_FORMAT_VERSION, MANIFEST_MAGIC, MAX_OPERATOR_UID_LEN,
};
use crate::layout::is_plain_file_name;
use crate::snapshot::{ExpectedSnapshot, SnapshotInfo};
use crate::CheckpointId;
use bincode::Options;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// Magic 8 + version 4 + payload length 8 + payload CRC 4 + header CRC 4.
const MANIFEST_HEADER_LEN: usize = 28;

/// Everything needed to restore a job from one completed checkpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The checkpoint this manifest completes; must match its directory.
    pub checkpoint: CheckpointId,
    /// The job's name, for humans and tools.
    pub job: String,
    /// Fingerprint of the job graph that wrote the checkpoint, for information: the engine
    /// matches state to operators by uid, not by this.
    pub graph_fingerprint: u64,
    /// When the coordinator triggered the checkpoint, in milliseconds since the Unix epoch.
    pub triggered_at_ms: u64,
    /// When the last task acknowledged it, in milliseconds since the Unix epoch.
    pub completed_at_ms: u64,
    /// One entry per snapshot file of the checkpoint. Unique by (operator uid, task) and by file.
    pub snapshots: Vec<SnapshotEntry>,
    /// The position every source task had reached when it emitted the checkpoint's barrier.
    pub source_offsets: Vec<SourceOffset>,
    /// The uid of every operator of the job graph, stateful or not, in graph order: lets a
    /// refused restore say which operators were added or removed.
    pub operators: Vec<String>,
    /// The job's final checkpoint, taken after every source was exhausted: a job restored
    /// from it has nothing left to do.
    pub is_final: bool,
}

/// One snapshot file of a checkpoint, as the manifest records it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The stable uid of the operator.
    pub operator_uid: String,
    /// The task index.
    pub task: u32,
    /// The file's name inside the checkpoint directory (a plain name, no directories).
    pub file: String,
    /// Size of the whole file in bytes.
    pub bytes: u64,
    /// CRC-32 of the payload; the file must still have it when it is restored.
    pub checksum: u32,
    /// For an incremental snapshot (a delta), the earlier files of the same task it applies
    /// over, oldest (a full snapshot) first; empty for a full snapshot. Restoring reads the
    /// chain then this file; retention keeps every checkpoint a retained one links to.
    pub base: Vec<ChainLink>,
}

/// An earlier snapshot file that an incremental snapshot builds on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ChainLink {
    /// The checkpoint whose directory holds the file.
    pub checkpoint: CheckpointId,
    /// The file's name inside that checkpoint's directory.
    pub file: String,
    /// Size of the whole file in bytes.
    pub bytes: u64,
    /// CRC-32 of the payload.
    pub checksum: u32,
}

impl ChainLink {
    /// The link to `entry`, a snapshot of `checkpoint`.
    pub fn to_entry(checkpoint: CheckpointId, entry: &SnapshotEntry) -> ChainLink {
        ChainLink {
            checkpoint,
            file: entry.file.clone(),
            bytes: entry.bytes,
            checksum: entry.checksum,
        }
    }
}

/// Where one source task was when it emitted a checkpoint's barrier: the point to resume from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SourceOffset {
    /// The stable uid of the source operator.
    pub operator_uid: String,
    /// The task index.
    pub task: u32,
    /// Opaque, source-defined position (e.g. an encoded byte offset).
    pub offset: Vec<u8>,
    /// The same position for humans, e.g. "byte 1234 of input.txt".
    pub description: String,
}

impl SnapshotEntry {
    /// The entry for the file a task reported after [`write_snapshot`](crate::write_snapshot).
    pub fn new(operator_uid: impl Into<String>, task: u32, info: SnapshotInfo) -> SnapshotEntry {
        SnapshotEntry {
            operator_uid: operator_uid.into(),
            task,
            file: info.file,
            bytes: info.bytes,
            checksum: info.checksum,
            base: Vec::new(),
        }
    }

    /// The files restoring this entry reads, oldest first, as `(checkpoint, link)`: its base
    /// chain, then its own file (of `checkpoint`).
    pub fn chain(&self, checkpoint: CheckpointId) -> Vec<ChainLink> {
        let mut chain = self.base.clone();
        chain.push(ChainLink::to_entry(checkpoint, self));
        chain
    }

    /// Bytes of this entry's own file and of every file it builds on.
    pub fn chain_bytes(&self) -> u64 {
        self.base
            .iter()
            .fold(self.bytes, |sum, link| sum.saturating_add(link.bytes))
    }

    /// What the entry's file must contain, as a snapshot of `checkpoint`, for
    /// [`Snapshot::open`](crate::Snapshot::open).
    pub fn expected(&self, checkpoint: CheckpointId) -> ExpectedSnapshot<'_> {
        ExpectedSnapshot {
            operator_uid: &self.operator_uid,
            task: self.task,
            checkpoint,
            checksum: Some(self.checksum),
        }
    }
}

impl Manifest {
    /// The earlier checkpoints whose files this one's incremental snapshots build on,
    /// ascending: retention keeps them while this checkpoint is retained.
    pub fn referenced_checkpoints(&self) -> Vec<CheckpointId> {
        let mut ids: Vec<CheckpointId> = self
            .snapshots
            .iter()
            .flat_map(|e| e.base.iter().map(|link| link.checkpoint))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Total size of the checkpoint's snapshot files in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.snapshots
            .iter()
            .fold(0u64, |sum, entry| sum.saturating_add(entry.bytes))
    }

    /// The snapshot of task `task` of operator `operator_uid`, if it wrote one.
    pub fn snapshot(&self, operator_uid: &str, task: u32) -> Option<&SnapshotEntry> {
        self.snapshots
            .iter()
            .find(|e| e.operator_uid == operator_uid && e.task == task)
    }

    /// Every snapshot of operator `operator_uid`, whatever the parallelism that wrote them:
    /// a task restored at another parallelism reads all of them and keeps its key groups.
    pub fn snapshots_of<'a>(
        &'a self,
        operator_uid: &'a str,
    ) -> impl Iterator<Item = &'a SnapshotEntry> + 'a {
        self.snapshots
            .iter()
            .filter(move |e| e.operator_uid == operator_uid)
    }

    /// The recorded offset of task `task` of source `operator_uid`.
    pub fn source_offset(&self, operator_uid: &str, task: u32) -> Option<&SourceOffset> {
        self.source_offsets
            .iter()
            .find(|o| o.operator_uid == operator_uid && o.task == task)
    }

    /// The manifest file's bytes: header and bincode payload.
    ///
    /// # Errors
    /// [`CheckpointError::InvalidArgument`] if the manifest breaks an invariant that
    /// [`Manifest::decode`] checks (a file name that is not plain, a duplicate entry, an
    /// overlong uid): such a manifest would make its checkpoint unreadable.
    /// [`CheckpointError::Encode`] if bincode fails.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.validate()
            .map_err(|what| CheckpointError::InvalidArgument { what })?;
        let payload =
            bincode_options()
                .serialize(self)
                .map_err(|source| CheckpointError::Encode {
                    what: format!("manifest of checkpoint {}", self.checkpoint),
                    source,
                })?;
        let mut out = Vec::with_capacity(MANIFEST_HEADER_LEN + payload.len());
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        let header_checksum = crc32fast::hash(&out);
        out.extend_from_slice(&header_checksum.to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Decodes and verifies the manifest file `path`, whose content is `bytes`.
    ///
    /// # Errors
    /// [`CheckpointError::Corrupt`] naming `path` and the failed check: magic, version,
    /// header checksum, length, payload checksum, payload decoding, or an invariant.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Manifest> {
        let mut fields = Fields::new(bytes, path);
        fields.expect_magic(&MANIFEST_MAGIC, "manifest")?;
        let version = fields.expect_version_in(&[1, MANIFEST_FORMAT_VERSION])?;
        fields.expect_header_checksum(MANIFEST_HEADER_LEN)?;
        let payload_len = fields.u64("payload length")?;
        let payload_checksum = fields.u32("payload checksum")?;
        expect_file_len(path, bytes.len(), MANIFEST_HEADER_LEN, payload_len)?;
        let payload = &bytes[MANIFEST_HEADER_LEN..];
        expect_payload_checksum(path, payload, payload_checksum)?;
        let decoded = if version == 1 {
            decode_exact::<v1::Manifest>(payload).map(Manifest::from)
        } else {
            decode_exact::<Manifest>(payload)
        };
        let manifest = decoded.map_err(|e| {
            CheckpointError::corrupt(path, format!("manifest payload does not decode: {e}"))
        })?;
        manifest
            .validate()
            .map_err(|reason| CheckpointError::corrupt(path, reason))?;
        Ok(manifest)
    }

    /// Reads and decodes the manifest file at `path`.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] if it cannot be read (`NotFound` if absent), otherwise as
    /// [`Manifest::decode`].
    pub fn read(path: &Path) -> Result<Manifest> {
        let bytes = std::fs::read(path).map_err(|e| CheckpointError::io(path, e))?;
        Manifest::decode(&bytes, path)
    }

    /// The invariants a reader relies on; `Err` says which one fails.
    fn validate(&self) -> std::result::Result<(), String> {
        let mut tasks = HashSet::new();
        let mut files = HashSet::new();
        for entry in &self.snapshots {
            if !is_plain_file_name(&entry.file) {
                return Err(format!(
                    "snapshot file name {:?} is not a plain file name",
                    entry.file
                ));
            }
            if entry.operator_uid.len() > MAX_OPERATOR_UID_LEN {
                return Err(format!(
                    "operator uid of {} bytes exceeds the maximum of {MAX_OPERATOR_UID_LEN}",
                    entry.operator_uid.len()
                ));
            }
            if !tasks.insert((entry.operator_uid.as_str(), entry.task)) {
                return Err(format!(
                    "two snapshots of operator '{}' task {}",
                    entry.operator_uid, entry.task
                ));
            }
            if !files.insert(entry.file.as_str()) {
                return Err(format!("two snapshots in file {:?}", entry.file));
            }
            for link in &entry.base {
                if !is_plain_file_name(&link.file) || link.checkpoint >= self.checkpoint {
                    return Err(format!(
                        "snapshot of operator '{}' task {} builds on file {:?} of checkpoint \
                         {}, which is not an earlier checkpoint's plain file",
                        entry.operator_uid, entry.task, link.file, link.checkpoint
                    ));
                }
            }
        }
        let mut sources = HashSet::new();
        for offset in &self.source_offsets {
            if !sources.insert((offset.operator_uid.as_str(), offset.task)) {
                return Err(format!(
                    "two offsets of source '{}' task {}",
                    offset.operator_uid, offset.task
                ));
            }
        }
        Ok(())
    }
}

/// Manifest format 1, before incremental snapshots: read and converted, never written.
mod v1 {
    use crate::CheckpointId;
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub(super) struct Manifest {
        checkpoint: CheckpointId,
        job: String,
        graph_fingerprint: u64,
        triggered_at_ms: u64,
        completed_at_ms: u64,
        snapshots: Vec<SnapshotEntry>,
        source_offsets: Vec<super::SourceOffset>,
        operators: Vec<String>,
        is_final: bool,
    }

    #[derive(Deserialize)]
    struct SnapshotEntry {
        operator_uid: String,
        task: u32,
        file: String,
        bytes: u64,
        checksum: u32,
    }

    impl From<Manifest> for super::Manifest {
        fn from(m: Manifest) -> Self {
            super::Manifest {
                checkpoint: m.checkpoint,
                job: m.job,
                graph_fingerprint: m.graph_fingerprint,
                triggered_at_ms: m.triggered_at_ms,
                completed_at_ms: m.completed_at_ms,
                snapshots: m
                    .snapshots
                    .into_iter()
                    .map(|e| super::SnapshotEntry {
                        operator_uid: e.operator_uid,
                        task: e.task,
                        file: e.file,
                        bytes: e.bytes,
                        checksum: e.checksum,
                        base: Vec::new(),
                    })
                    .collect(),
                source_offsets: m.source_offsets,
                operators: m.operators,
                is_final: m.is_final,
            }
        }
    }
}

#[cfg(test)]
mod tests;
