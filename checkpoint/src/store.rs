//! The checkpoint store: a directory of checkpoints, each begun, filled by tasks, then
//! committed by its manifest or aborted.
//!
//! Protocol for checkpoint `n`: the coordinator calls [`CheckpointStore::begin`]; every task
//! writes its snapshot to [`CheckpointLayout::snapshot_file`] with
//! [`write_snapshot`](crate::write_snapshot) and acks with the returned
//! [`SnapshotInfo`](crate::SnapshotInfo); once all have acked, the coordinator calls
//! [`CheckpointStore::commit`], whose atomic manifest write is the commit point. On recovery,
//! [`CheckpointStore::latest`] finds what to restore.

use crate::error::{CheckpointError, Result};
use crate::fs::{fsync_dir, parent_dir, write_atomic};
use crate::layout::CheckpointLayout;
use crate::manifest::{ChainLink, Manifest, SnapshotEntry};
use crate::recovery::{
    decide_latest, retention_plan, CheckpointState, CheckpointStatus, LatestDecision,
};
use crate::snapshot::{ExpectedSnapshot, Snapshot};
use crate::CheckpointId;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How many complete checkpoints a job keeps unless configured otherwise.
pub const DEFAULT_RETAINED: usize = 3;

/// The checkpoints of one job, in one root directory.
///
/// The store assumes one writer: a single coordinator per root calls `begin`, `commit`,
/// `abort` and `retain`. Scanning while another process deletes checkpoints may report a
/// checkpoint being deleted as corrupt.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    layout: CheckpointLayout,
    /// Checkpoints whose files `retain` has verified in full already.
    verified: Arc<Mutex<HashSet<CheckpointId>>>,
}

impl CheckpointStore {
    /// Opens the store rooted at `root`, creating the directory if needed.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] if the directory cannot be created or synced.
    pub fn open(root: impl Into<PathBuf>) -> Result<CheckpointStore> {
        let layout = CheckpointLayout::new(root);
        let root = layout.root();
        if !root.is_dir() {
            fs::create_dir_all(root).map_err(|e| CheckpointError::io(root, e))?;
            fsync_dir(parent_dir(root))?;
        }
        Ok(CheckpointStore {
            layout,
            verified: Arc::default(),
        })
    }

    /// The paths of this store.
    pub fn layout(&self) -> &CheckpointLayout {
        &self.layout
    }

    /// Creates checkpoint `id`'s directory, empty, and returns it.
    ///
    /// A directory left by an earlier, uncommitted attempt at the same id (a crash before its
    /// manifest) is removed first: its files were never part of a complete checkpoint.
    ///
    /// # Errors
    /// [`CheckpointError::AlreadyCommitted`] if `id` has a manifest (ids must be fresh: see
    /// [`CheckpointStore::next_id`]); [`CheckpointError::Io`] if the directory cannot be
    /// replaced or created.
    pub fn begin(&self, id: CheckpointId) -> Result<PathBuf> {
        self.refuse_if_committed(id)?;
        let dir = self.layout.checkpoint_dir(id);
        remove_dir_if_present(&dir)?;
        fs::create_dir(&dir).map_err(|e| CheckpointError::io(&dir, e))?;
        fsync_dir(self.layout.root())?;
        Ok(dir)
    }

    /// Commits `manifest.checkpoint` by writing its manifest atomically, last. When this
    /// returns `Ok`, the checkpoint is durable and complete: its snapshot files must already be
    /// synced (the writers did), and the directory sync here also makes their names durable.
    ///
    /// # Errors
    /// [`CheckpointError::AlreadyCommitted`] if the checkpoint has a manifest;
    /// [`CheckpointError::InvalidArgument`] or [`CheckpointError::Encode`] from
    /// [`Manifest::encode`]; [`CheckpointError::Io`] if the directory is missing (never begun,
    /// or aborted) or the write fails, in which case the checkpoint is not committed.
    pub fn commit(&self, manifest: &Manifest) -> Result<()> {
        let id = manifest.checkpoint;
        self.refuse_if_committed(id)?;
        let dir = self.layout.checkpoint_dir(id);
        fs::metadata(&dir).map_err(|e| CheckpointError::io(&dir, e))?;
        // The snapshot files' names must be durable before the manifest that lists them is:
        // otherwise a crash could leave a manifest naming files that are gone.
        fsync_dir(&dir)?;
        write_atomic(&self.layout.manifest_file(id), &manifest.encode()?)
    }

    /// Removes the directory of uncommitted checkpoint `id`; `Ok` if it does not exist.
    ///
    /// # Errors
    /// [`CheckpointError::AlreadyCommitted`] if the checkpoint has a manifest: a committed
    /// checkpoint may already have released sink output and is only deleted by
    /// [`CheckpointStore::retain`]. [`CheckpointError::Io`] if removal fails.
    pub fn abort(&self, id: CheckpointId) -> Result<()> {
        self.refuse_if_committed(id)?;
        remove_dir_if_present(&self.layout.checkpoint_dir(id))?;
        fsync_dir(self.layout.root())
    }

    /// Reads and verifies checkpoint `id`'s manifest (not its snapshot files).
    ///
    /// # Errors
    /// [`CheckpointError::Io`] (`NotFound` if the checkpoint has no manifest);
    /// [`CheckpointError::Corrupt`] if it fails a check or names another checkpoint.
    pub fn load_manifest(&self, id: CheckpointId) -> Result<Manifest> {
        let path = self.layout.manifest_file(id);
        let manifest = Manifest::read(&path)?;
        if manifest.checkpoint != id {
            return Err(CheckpointError::corrupt(
                &path,
                format!(
                    "manifest is for checkpoint {}, but lies in the directory of checkpoint {id}",
                    manifest.checkpoint
                ),
            ));
        }
        Ok(manifest)
    }

    /// Opens and verifies the snapshot file of `entry` in `manifest`'s checkpoint.
    ///
    /// # Errors
    /// As [`Snapshot::open`], and [`CheckpointError::Corrupt`] if the file's size differs from
    /// the one the manifest recorded.
    pub fn open_snapshot(&self, manifest: &Manifest, entry: &SnapshotEntry) -> Result<Snapshot> {
        let id = manifest.checkpoint;
        let path = self.layout.listed_file(id, &entry.file);
        let snapshot = Snapshot::open(&path, &entry.expected(id))?;
        if snapshot.file_len() != entry.bytes {
            return Err(CheckpointError::corrupt(
                &path,
                format!(
                    "file is {} bytes, the manifest recorded {}",
                    snapshot.file_len(),
                    entry.bytes
                ),
            ));
        }
        Ok(snapshot)
    }

    /// Opens and verifies one file of `entry`'s chain: `link` (a snapshot of
    /// `link.checkpoint` by the same operator and task).
    ///
    /// # Errors
    /// As [`CheckpointStore::open_snapshot`].
    pub fn open_link(&self, entry: &SnapshotEntry, link: &ChainLink) -> Result<Snapshot> {
        let path = self.layout.listed_file(link.checkpoint, &link.file);
        let expected = ExpectedSnapshot {
            operator_uid: &entry.operator_uid,
            task: entry.task,
            checkpoint: link.checkpoint,
            checksum: Some(link.checksum),
        };
        let snapshot = Snapshot::open(&path, &expected)?;
        if snapshot.file_len() != link.bytes {
            return Err(CheckpointError::corrupt(
                &path,
                format!(
                    "file is {} bytes, the manifest recorded {}",
                    snapshot.file_len(),
                    link.bytes
                ),
            ));
        }
        Ok(snapshot)
    }

    /// The newest complete checkpoint, with every file its snapshots read (their chains
    /// included) opened and verified once, for restoring: checkpoints are checked from the
    /// newest down and the scan stops at the first complete one, so older checkpoints are not
    /// read at all, and every restoring task shares the opened files.
    ///
    /// # Errors
    /// As [`CheckpointStore::scan`].
    pub fn latest_opened(&self) -> Result<(LatestDecision, Option<OpenedCheckpoint>)> {
        let mut statuses = Vec::new();
        let mut found = None;
        for id in self.checkpoint_ids()?.into_iter().rev() {
            let (state, opened) = self.check_opened(id)?;
            let complete = state == CheckpointState::Complete;
            statuses.push(CheckpointStatus { id, state });
            if complete {
                found = opened;
                break;
            }
        }
        statuses.reverse();
        Ok((decide_latest(&statuses), found))
    }

    /// The state of every checkpoint directory, sorted by id.
    ///
    /// A checkpoint is [`Complete`](CheckpointState::Complete) only if its manifest decodes,
    /// names the directory's id, and every snapshot file it lists exists and verifies against
    /// the manifest's uid, task, checkpoint, size and checksum. This reads every listed file in
    /// full. A directory without a manifest is [`InProgress`](CheckpointState::InProgress);
    /// any failed check is [`Corrupt`](CheckpointState::Corrupt). Entries of the root that are
    /// not `chk-<20 digits>` directories are ignored.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] if the root cannot be listed, or a file cannot be read for a
    /// reason other than its absence (permissions, I/O errors): the store refuses to guess
    /// rather than fall back to an older checkpoint on a transient error.
    pub fn scan(&self) -> Result<Vec<CheckpointStatus>> {
        Ok(self
            .scan_with_manifests()?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    /// The newest complete checkpoint and its manifest, after a full [`scan`](Self::scan).
    ///
    /// # Errors
    /// As [`CheckpointStore::scan`].
    pub fn latest(&self) -> Result<(LatestDecision, Option<Manifest>)> {
        let scanned = self.scan_with_manifests()?;
        let statuses: Vec<CheckpointStatus> = scanned.iter().map(|(s, _)| s.clone()).collect();
        let decision = decide_latest(&statuses);
        let manifest = scanned
            .into_iter()
            .find(|(s, _)| Some(s.id) == decision.latest)
            .and_then(|(_, manifest)| manifest);
        Ok((decision, manifest))
    }

    /// Deletes what [`retention_plan`] selects when keeping the `keep` newest complete
    /// checkpoints, and returns the deleted ids, oldest first. Each checkpoint's files are
    /// verified in full the first time this store's `retain` sees it, not on every call.
    ///
    /// Each manifest is removed (and the removal synced) before the rest of its directory, so a
    /// crash mid-way leaves an in-progress directory that the next `retain` deletes, never a
    /// manifest whose files are gone (which would look corrupt).
    ///
    /// # Errors
    /// As [`CheckpointStore::scan`], and the first deletion that failed
    /// ([`CheckpointError::Io`], or [`CheckpointError::ForeignFile`] for a file the store did
    /// not write, which is left in place); every other selected checkpoint is still deleted.
    pub fn retain(&self, keep: usize) -> Result<Vec<CheckpointId>> {
        self.retain_with(keep, |_| {})
    }

    /// [`retain`](Self::retain), calling `deleting(id)` once checkpoint `id`'s manifest is
    /// removed and before its files are (a hook for crash tests).
    ///
    /// # Errors
    /// As [`retain`](Self::retain).
    pub fn retain_with(
        &self,
        keep: usize,
        mut deleting: impl FnMut(CheckpointId),
    ) -> Result<Vec<CheckpointId>> {
        // Every checkpoint is verified in full once, the first time retention sees it (just
        // after its commit, while its pages are still cached); re-reading all retained state
        // on every pass would cost I/O proportional to the state times the retained count.
        let statuses = self
            .checkpoint_ids()?
            .into_iter()
            .map(|id| {
                let state = if self.verified_lock().contains(&id) && self.load_manifest(id).is_ok()
                {
                    CheckpointState::Complete
                } else {
                    let (state, _) = self.check(id)?;
                    if state == CheckpointState::Complete {
                        self.verified_lock().insert(id);
                    }
                    state
                };
                Ok(CheckpointStatus { id, state })
            })
            .collect::<Result<Vec<_>>>()?;
        let plan = retention_plan(&statuses, keep);
        let plan = self.without_referenced(&statuses, plan)?;
        // A checkpoint that cannot be deleted (a foreign file in it, say) does not hold up the
        // others: every one is tried, and the first failure is returned after.
        let mut first_error = None;
        for &id in &plan {
            if let Err(e) = self.delete(id, &mut deleting) {
                first_error.get_or_insert(e);
            }
        }
        if !plan.is_empty() {
            fsync_dir(self.layout.root())?;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(plan),
        }
    }

    /// Deletes checkpoint `id`: its manifest first (synced), then `deleting(id)`, then the
    /// rest of its directory.
    fn delete(&self, id: CheckpointId, deleting: &mut impl FnMut(CheckpointId)) -> Result<()> {
        let manifest = self.layout.manifest_file(id);
        match fs::remove_file(&manifest) {
            Ok(()) => fsync_dir(&self.layout.checkpoint_dir(id))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(CheckpointError::io(&manifest, e)),
        }
        deleting(id);
        remove_dir_if_present(&self.layout.checkpoint_dir(id))
    }

    /// The id after the highest checkpoint directory of any state, or 1 for an empty store.
    /// A restarted job numbers on from here, so it never reuses the id of a checkpoint that
    /// was in flight, or corrupt, when the previous run died.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] if the root cannot be listed.
    pub fn next_id(&self) -> Result<CheckpointId> {
        Ok(self
            .checkpoint_ids()?
            .last()
            .map_or(CheckpointId(1), |id| id.next()))
    }

    fn scan_with_manifests(&self) -> Result<Vec<(CheckpointStatus, Option<Manifest>)>> {
        self.checkpoint_ids()?
            .into_iter()
            .map(|id| {
                let (state, manifest) = self.check(id)?;
                Ok((CheckpointStatus { id, state }, manifest))
            })
            .collect()
    }

    /// The state of checkpoint `id`, with its manifest when complete.
    fn check(&self, id: CheckpointId) -> Result<(CheckpointState, Option<Manifest>)> {
        let (state, opened) = self.check_opened(id)?;
        Ok((state, opened.map(|o| o.manifest)))
    }

    /// The state of checkpoint `id`, with its manifest and opened files when complete. A
    /// checkpoint is complete only if every file of every chain verifies.
    fn check_opened(
        &self,
        id: CheckpointId,
    ) -> Result<(CheckpointState, Option<OpenedCheckpoint>)> {
        let manifest = match self.load_manifest(id) {
            Ok(manifest) => manifest,
            Err(CheckpointError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok((CheckpointState::InProgress, None));
            }
            Err(e) => return corrupt_or_fail(e).map(|state| (state, None)),
        };
        let mut files = HashMap::new();
        for entry in &manifest.snapshots {
            for link in &entry.base {
                let key = (link.checkpoint, link.file.clone());
                if files.contains_key(&key) {
                    continue;
                }
                match self.open_link(entry, link) {
                    Ok(snapshot) => {
                        files.insert(key, Arc::new(snapshot));
                    }
                    Err(e) => return corrupt_or_fail(e).map(|state| (state, None)),
                }
            }
            match self.open_snapshot(&manifest, entry) {
                Ok(snapshot) => {
                    files.insert((id, entry.file.clone()), Arc::new(snapshot));
                }
                Err(e) => return corrupt_or_fail(e).map(|state| (state, None)),
            }
        }
        Ok((
            CheckpointState::Complete,
            Some(OpenedCheckpoint { manifest, files }),
        ))
    }

    /// Ids of every checkpoint directory, sorted.
    fn checkpoint_ids(&self) -> Result<Vec<CheckpointId>> {
        let root = self.layout.root();
        let mut ids = Vec::new();
        for entry in fs::read_dir(root).map_err(|e| CheckpointError::io(root, e))? {
            let entry = entry.map_err(|e| CheckpointError::io(root, e))?;
            let id = entry
                .file_name()
                .to_str()
                .and_then(CheckpointLayout::parse_checkpoint_dir_name);
            if let Some(id) = id.filter(|_| entry.path().is_dir()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// `plan` less every checkpoint that a kept complete checkpoint builds on (its
    /// incremental snapshots' chains name files there), transitively.
    fn without_referenced(
        &self,
        statuses: &[CheckpointStatus],
        plan: Vec<CheckpointId>,
    ) -> Result<Vec<CheckpointId>> {
        if plan.is_empty() {
            return Ok(plan);
        }
        let kept: Vec<CheckpointId> = statuses
            .iter()
            .filter(|s| s.state == CheckpointState::Complete && !plan.contains(&s.id))
            .map(|s| s.id)
            .collect();
        unreferenced(plan, &kept, |id| {
            Ok(self.load_manifest(id)?.referenced_checkpoints())
        })
    }

    fn verified_lock(&self) -> MutexGuard<'_, HashSet<CheckpointId>> {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refuse_if_committed(&self, id: CheckpointId) -> Result<()> {
        let path = self.layout.manifest_file(id);
        match fs::symlink_metadata(&path) {
            Ok(_) => Err(CheckpointError::AlreadyCommitted { id, path }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CheckpointError::io(&path, e)),
        }
    }
}

/// A complete checkpoint opened for restoring: its manifest and every snapshot file it reads,
/// each verified once.
#[derive(Debug)]
pub struct OpenedCheckpoint {
    /// The checkpoint's manifest.
    pub manifest: Manifest,
    files: HashMap<(CheckpointId, String), Arc<Snapshot>>,
}

impl OpenedCheckpoint {
    /// The opened files `entry` (one of the manifest's) reads, oldest first: its chain, then
    /// its own file. `None` if `entry` is not one of this checkpoint's.
    pub fn chain_of(&self, entry: &SnapshotEntry) -> Option<Vec<Arc<Snapshot>>> {
        entry
            .chain(self.manifest.checkpoint)
            .iter()
            .map(|link| {
                self.files
                    .get(&(link.checkpoint, link.file.clone()))
                    .cloned()
            })
            .collect()
    }

    /// How many distinct files were opened and verified.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// The checkpoints of `plan` that no kept checkpoint builds on, where `references(id)` lists
/// the checkpoints `id`'s chains name. A checkpoint of `plan` that a kept one references is
/// kept too, and so are the ones it references in turn: deleting a file that a kept
/// checkpoint's chain names would make that checkpoint unreadable.
///
/// # Errors
/// What `references` returns.
pub fn unreferenced(
    plan: Vec<CheckpointId>,
    kept: &[CheckpointId],
    mut references: impl FnMut(CheckpointId) -> Result<Vec<CheckpointId>>,
) -> Result<Vec<CheckpointId>> {
    let mut plan: BTreeSet<CheckpointId> = plan.into_iter().collect();
    let mut to_visit: Vec<CheckpointId> = kept.to_vec();
    while let Some(id) = to_visit.pop() {
        for referenced in references(id)? {
            if plan.remove(&referenced) {
                to_visit.push(referenced);
            }
        }
    }
    Ok(plan.into_iter().collect())
}

/// Maps an error met while checking a checkpoint to its state: corrupt data and missing files
/// make the checkpoint corrupt; any other failure is not evidence about the data, so it is
/// returned.
fn corrupt_or_fail(error: CheckpointError) -> Result<CheckpointState> {
    match error {
        CheckpointError::Corrupt { .. } => Ok(CheckpointState::Corrupt {
            reason: error.to_string(),
        }),
        CheckpointError::Io { path, source } if source.kind() == io::ErrorKind::NotFound => {
            Ok(CheckpointState::Corrupt {
                reason: format!("{} is missing", path.display()),
            })
        }
        other => Err(other),
    }
}

/// Removes a checkpoint directory that the store wrote, and only what the store writes in
/// one: snapshot files, the manifest and temp files. A file of any other name is not
/// snapflow's to delete, so it is reported and the directory left in place. `Ok` if the
/// directory does not exist.
fn remove_dir_if_present(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CheckpointError::io(dir, e)),
    };
    let mut ours = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CheckpointError::io(dir, e))?;
        let name = entry.file_name();
        let path = entry.path();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        match name.to_str() {
            Some(name) if is_file && CheckpointLayout::is_store_file_name(name) => ours.push(path),
            _ => {
                return Err(CheckpointError::ForeignFile {
                    dir: dir.to_path_buf(),
                    file: path,
                })
            }
        }
    }
    for path in ours {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(CheckpointError::io(&path, e))
            }
            _ => {}
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(CheckpointError::io(dir, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
