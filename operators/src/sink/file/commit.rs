//! The file sink's committer: lists the output directory, checks it against the checkpoint,
//! and publishes staged checkpoint directories by renaming them.

use super::check::{check_staged, checkpoint_path, decide_open, is_part_name, Listing, Parts};
use super::record::records_of;
use super::{resolve_dir, OutputInconsistency, STAGING};
use crate::error::SinkError;
use snapflow_checkpoint::{fsync_dir, CheckpointId, CheckpointLayout};
use snapflow_engine::ownership::{LOCK_FILE, MARK_FILE};
use snapflow_engine::{BoxError, Committer, RestoredState};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// What the writers of a sink pre-committed in this process and the committer has not yet
/// published: checkpoint to part file name to length. Written once per task and checkpoint.
#[derive(Debug, Default)]
pub(crate) struct Registry(Mutex<BTreeMap<CheckpointId, Parts>>);

impl Registry {
    /// A writer pre-committed `name` for `checkpoint`.
    pub(crate) fn pre_committed(&self, checkpoint: CheckpointId, name: String, bytes: u64) {
        self.lock()
            .entry(checkpoint)
            .or_default()
            .insert(name, bytes);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<CheckpointId, Parts>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Publishes staged checkpoint directories by renaming them into the output directory.
pub(crate) struct FileCommitter {
    pub dir: PathBuf,
    pub registry: std::sync::Arc<Registry>,
}

impl Committer for FileCommitter {
    fn directories(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn open(&self, restored: Option<&RestoredState>) -> Result<(), BoxError> {
        self.registry.lock().clear();
        let payloads: Vec<&[u8]> = restored.iter().flat_map(|s| s.payloads()).collect();
        let (plan, listing) = plan_open(
            &self.dir,
            restored.map(|state| (state.checkpoint(), payloads.as_slice())),
        )?;
        for &id in &plan.publish {
            self.publish(id)?;
        }
        if !plan.publish.is_empty() {
            fsync_dir(&self.dir)?;
        }
        // Staged output of checkpoints that never completed: only part files are removed
        // (the listing holds nothing else), so a foreign file would make `remove_dir` fail.
        for &id in &plan.discard {
            let staged = self.dir.join(checkpoint_path(id, true));
            for name in listing.staged.get(&id).into_iter().flat_map(|p| p.keys()) {
                let path = staged.join(name);
                fs::remove_file(&path).map_err(|source| SinkError::Write { path, source })?;
            }
            fs::remove_dir(&staged).map_err(|source| SinkError::Write {
                path: staged.clone(),
                source,
            })?;
        }
        if !plan.discard.is_empty() {
            fsync_dir(&self.dir.join(STAGING))?;
        }
        Ok(())
    }

    fn commit(&self, checkpoint: CheckpointId) -> Result<(), BoxError> {
        let staged = list_staged(&self.dir)?;
        let mut registry = self.registry.lock();
        let mut ids: Vec<CheckpointId> = staged
            .keys()
            .chain(registry.keys())
            .copied()
            .filter(|&id| id <= checkpoint)
            .collect();
        ids.sort();
        ids.dedup();
        let empty = Parts::new();
        for &id in &ids {
            check_staged(
                &self.dir,
                id,
                staged.get(&id),
                registry.get(&id).unwrap_or(&empty),
            )?;
        }
        for &id in &ids {
            if staged.contains_key(&id) {
                self.publish(id)?;
            }
        }
        if !ids.is_empty() {
            fsync_dir(&self.dir)?;
        }
        registry.retain(|&id, _| id > checkpoint);
        Ok(())
    }
}

/// What resuming would do to a file sink's output directory, found without changing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputCheck {
    /// Checkpoint directories already published.
    pub published: Vec<CheckpointId>,
    /// Staged checkpoint directories that resuming publishes.
    pub to_publish: Vec<CheckpointId>,
    /// Staged checkpoint directories of incomplete checkpoints that resuming discards.
    pub to_discard: Vec<CheckpointId>,
}

/// Checks the output directory `dir` of a file sink against a checkpoint, changing nothing:
/// `restored` is the checkpoint and its sink state (every task's payload of the sink's
/// operator, or of every operator: payloads of other directories and operators are skipped
/// only if they are file sink records), `None` for a fresh start.
///
/// # Errors
/// An [`OutputInconsistency`] saying how the directory disagrees with the checkpoint, or an
/// I/O error naming the file.
pub fn check_output(
    dir: &Path,
    restored: Option<(CheckpointId, &[&[u8]])>,
) -> Result<OutputCheck, BoxError> {
    let (plan, listing) = plan_open(dir, restored)?;
    Ok(OutputCheck {
        published: listing.published.keys().copied().collect(),
        to_publish: plan.publish,
        to_discard: plan.discard,
    })
}

/// Lists `dir`, decides how to open it, and checks the CRC-32 of each staged file to publish.
fn plan_open(
    dir: &Path,
    restored: Option<(CheckpointId, &[&[u8]])>,
) -> Result<(super::check::OpenPlan, Listing), BoxError> {
    let resolved = resolve_dir(dir)?;
    let listing = list(dir)?;
    let records = match restored {
        None => None,
        Some((checkpoint, payloads)) => {
            let (mine, others) = records_of(payloads, &resolved)
                .map_err(|e| format!("checkpoint {checkpoint}: {e}"))?;
            if let (true, Some(recorded)) = (mine.is_empty(), others.first()) {
                return Err(OutputInconsistency::Moved {
                    dir: dir.to_path_buf(),
                    restored: checkpoint,
                    recorded: recorded.clone(),
                }
                .into());
            }
            Some((checkpoint, mine))
        }
    };
    let plan = decide_open(
        dir,
        &listing,
        records.as_ref().map(|(id, r)| (*id, r.as_slice())),
    )?;
    for (id, name, crc) in &plan.check {
        let relative = checkpoint_path(*id, true).join(name);
        let found = crc_of(&dir.join(&relative))?;
        if found != *crc {
            return Err(OutputInconsistency::Damaged {
                dir: dir.to_path_buf(),
                restored: records.as_ref().map_or(*id, |(r, _)| *r),
                file: relative,
                expected: format!("CRC-32 {crc:08x}, found {found:08x}"),
            }
            .into());
        }
    }
    Ok((plan, listing))
}

impl FileCommitter {
    /// Renames `_staging/chk-<id>` to `chk-<id>`.
    fn publish(&self, id: CheckpointId) -> Result<(), BoxError> {
        let from = self.dir.join(checkpoint_path(id, true));
        let to = self.dir.join(checkpoint_path(id, false));
        if to.exists() {
            return Err(format!(
                "{} is already published; it is never written twice",
                to.display()
            )
            .into());
        }
        fs::rename(&from, &to).map_err(|source| SinkError::Write { path: from, source })?;
        Ok(())
    }
}

/// CRC-32 of a file's content.
fn crc_of(path: &Path) -> Result<u32, SinkError> {
    let read_error = |source| SinkError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::open(path).map_err(read_error)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(read_error)?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

fn entries(dir: &Path) -> Result<Vec<(String, fs::FileType)>, SinkError> {
    let list_error = |source| SinkError::Create {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    match fs::read_dir(dir) {
        Ok(read) => {
            for entry in read {
                let entry = entry.map_err(list_error)?;
                let kind = entry.file_type().map_err(list_error)?;
                out.push((entry.file_name().to_string_lossy().into_owned(), kind));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(list_error(e)),
    }
    Ok(out)
}

/// The part files of one checkpoint directory, and its entries that are not part files.
fn parts_of(dir: &Path, relative: &Path, foreign: &mut Vec<PathBuf>) -> Result<Parts, SinkError> {
    let mut parts = Parts::new();
    for (name, kind) in entries(dir)? {
        if kind.is_file() && is_part_name(&name) {
            let path = dir.join(&name);
            let bytes = fs::metadata(&path)
                .map_err(|source| SinkError::Create { path, source })?
                .len();
            parts.insert(name, bytes);
        } else {
            foreign.push(relative.join(name));
        }
    }
    Ok(parts)
}

/// The staged checkpoint directories under `dir`.
fn list_staged(dir: &Path) -> Result<BTreeMap<CheckpointId, Parts>, SinkError> {
    let mut foreign = Vec::new();
    let staged = staged_into(dir, &mut foreign)?;
    Ok(staged)
}

fn staged_into(
    dir: &Path,
    foreign: &mut Vec<PathBuf>,
) -> Result<BTreeMap<CheckpointId, Parts>, SinkError> {
    let staging = dir.join(STAGING);
    let mut staged = BTreeMap::new();
    for (name, kind) in entries(&staging)? {
        let relative = Path::new(STAGING).join(&name);
        match CheckpointLayout::parse_checkpoint_dir_name(&name).filter(|_| kind.is_dir()) {
            Some(id) => {
                staged.insert(id, parts_of(&staging.join(&name), &relative, foreign)?);
            }
            None => foreign.push(relative),
        }
    }
    Ok(staged)
}

/// Lists an output directory: published and staged checkpoint directories, and anything else.
pub(crate) fn list(dir: &Path) -> Result<Listing, SinkError> {
    let mut listing = Listing::default();
    for (name, kind) in entries(dir)? {
        if name == MARK_FILE || name == LOCK_FILE || name.starts_with(&format!(".{MARK_FILE}.")) {
            continue;
        }
        if name == STAGING && kind.is_dir() {
            listing.staged = staged_into(dir, &mut listing.foreign)?;
            continue;
        }
        match CheckpointLayout::parse_checkpoint_dir_name(&name).filter(|_| kind.is_dir()) {
            Some(id) => {
                let parts = parts_of(&dir.join(&name), Path::new(&name), &mut listing.foreign)?;
                listing.published.insert(id, parts);
            }
            None => listing.foreign.push(PathBuf::from(name)),
        }
    }
    listing.foreign.sort();
    Ok(listing)
}
