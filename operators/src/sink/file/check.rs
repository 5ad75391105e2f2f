//! Whether a file sink's output directory agrees with the checkpoint a job resumes from: a
//! pure decision over a listing of the directory and the checkpoint's records.

use super::record::{part_name, TaskRecord};
use snapflow_checkpoint::CheckpointId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The files of one checkpoint directory (published or staged): name to length.
pub(crate) type Parts = BTreeMap<String, u64>;

/// What a file sink's output directory holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Listing {
    /// Published checkpoint directories `chk-<id>`.
    pub published: BTreeMap<CheckpointId, Parts>,
    /// Staged checkpoint directories `_staging/chk-<id>`.
    pub staged: BTreeMap<CheckpointId, Parts>,
    /// Entries snapflow does not write (relative paths).
    pub foreign: Vec<PathBuf>,
}

/// What opening the output directory does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OpenPlan {
    /// Staged checkpoints to publish, oldest first: all pre-committed for the restored
    /// checkpoint or before (the output of an aborted checkpoint belongs to the next one).
    pub publish: Vec<CheckpointId>,
    /// Staged checkpoints to discard: never completed.
    pub discard: Vec<CheckpointId>,
    /// Staged files to check against their recorded CRC-32 before publishing them.
    pub check: Vec<(CheckpointId, String, u32)>,
}

/// How an output directory disagrees with the checkpoint a job resumes from.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputInconsistency {
    /// A file or directory that snapflow did not write.
    #[error("{} holds {}, which snapflow did not write; snapflow never publishes or deletes files it did not write: move it away", dir.display(), entry.display())]
    Foreign {
        /// The output directory.
        dir: PathBuf,
        /// The entry, relative to it.
        entry: PathBuf,
    },
    /// A fresh start into a directory holding published output.
    #[error("{} already holds published output ({}) of an earlier run, and the checkpoint directory has no checkpoint of it; use an empty output directory, or the checkpoint directory of that run", dir.display(), first.display())]
    EarlierRun {
        /// The output directory.
        dir: PathBuf,
        /// A published checkpoint directory.
        first: PathBuf,
    },
    /// Output was published for a checkpoint newer than the restored one: its manifest is
    /// lost, and resuming would publish that output again.
    #[error("{} holds output published for checkpoint {published}, newer than checkpoint {restored} that the job would resume from: checkpoint {published}'s manifest is missing from the checkpoint directory, and resuming would write that output twice; restore the checkpoint directory from a backup, or start over with empty checkpoint and output directories", dir.display())]
    NewerPublished {
        /// The output directory.
        dir: PathBuf,
        /// The newest published checkpoint.
        published: CheckpointId,
        /// The checkpoint being restored.
        restored: CheckpointId,
    },
    /// Output that the restored checkpoint pre-committed is neither staged nor published:
    /// the state of that checkpoint already counts it, so it can never be written again.
    #[error("{} lacks output that checkpoint {restored} pre-committed: {} ({bytes} bytes) is neither staged nor published (was the `_staging` directory removed?); that output cannot be recomputed from the checkpoint, which already counts it; restore the directory from a backup, or start over with empty checkpoint and output directories", dir.display(), missing.display())]
    Missing {
        /// The output directory.
        dir: PathBuf,
        /// The checkpoint being restored.
        restored: CheckpointId,
        /// The missing file, relative to `dir`.
        missing: PathBuf,
        /// Its recorded length.
        bytes: u64,
    },
    /// A staged or published file differs from what the checkpoint recorded.
    #[error("{} differs from what checkpoint {restored} recorded ({expected}); it was changed after it was written; restore the directory from a backup, or start over with empty checkpoint and output directories", dir.join(file).display())]
    Damaged {
        /// The output directory.
        dir: PathBuf,
        /// The checkpoint being restored.
        restored: CheckpointId,
        /// The file, relative to `dir`.
        file: PathBuf,
        /// What was recorded, for people.
        expected: String,
    },
    /// The checkpoint recorded this sink's output in another directory.
    #[error("checkpoint {restored} recorded this sink's output in {}, not {}; an output directory cannot be moved or renamed between runs", recorded.display(), dir.display())]
    Moved {
        /// The output directory given now.
        dir: PathBuf,
        /// The checkpoint being restored.
        restored: CheckpointId,
        /// Where the checkpoint says the output went.
        recorded: PathBuf,
    },
}

/// The relative path of checkpoint `id`'s directory, published or staged.
pub(crate) fn checkpoint_path(id: CheckpointId, staged: bool) -> PathBuf {
    let name = snapflow_checkpoint::checkpoint_dir_name(id);
    if staged {
        Path::new(super::STAGING).join(name)
    } else {
        PathBuf::from(name)
    }
}

/// Decides how to open the output directory `dir` (listed as `listing`) when the job starts
/// fresh (`restored` is `None`) or resumes from a checkpoint whose records for this directory
/// are given.
pub(crate) fn decide_open(
    dir: &Path,
    listing: &Listing,
    restored: Option<(CheckpointId, &[TaskRecord])>,
) -> Result<OpenPlan, OutputInconsistency> {
    if let Some(entry) = listing.foreign.first() {
        return Err(OutputInconsistency::Foreign {
            dir: dir.to_path_buf(),
            entry: entry.clone(),
        });
    }
    let Some((restored, records)) = restored else {
        if let Some(&first) = listing.published.keys().next() {
            return Err(OutputInconsistency::EarlierRun {
                dir: dir.to_path_buf(),
                first: checkpoint_path(first, false),
            });
        }
        return Ok(OpenPlan {
            discard: listing.staged.keys().copied().collect(),
            ..OpenPlan::default()
        });
    };
    if let Some(&newest) = listing.published.keys().next_back() {
        if newest > restored {
            return Err(OutputInconsistency::NewerPublished {
                dir: dir.to_path_buf(),
                published: newest,
                restored,
            });
        }
    }
    let mut plan = OpenPlan::default();
    // Every file the checkpoint records must be staged or published, with its length.
    let mut expected: BTreeMap<CheckpointId, Parts> = BTreeMap::new();
    for record in records {
        for part in record.parts_up_to(restored) {
            let id = CheckpointId(part.checkpoint);
            let name = record.part_name();
            expected
                .entry(id)
                .or_default()
                .insert(name.clone(), part.bytes);
            let found = match (listing.published.get(&id), listing.staged.get(&id)) {
                (Some(published), _) => published.get(&name).map(|&b| (b, false)),
                (None, Some(staged)) => staged.get(&name).map(|&b| (b, true)),
                (None, None) => None,
            };
            match found {
                None => {
                    return Err(OutputInconsistency::Missing {
                        dir: dir.to_path_buf(),
                        restored,
                        missing: checkpoint_path(id, true).join(&name),
                        bytes: part.bytes,
                    })
                }
                Some((bytes, staged)) if bytes != part.bytes => {
                    return Err(OutputInconsistency::Damaged {
                        dir: dir.to_path_buf(),
                        restored,
                        file: checkpoint_path(id, staged).join(&name),
                        expected: format!("{} bytes, found {bytes}", part.bytes),
                    })
                }
                Some((_, true)) => plan.check.push((id, name, part.crc32)),
                Some((_, false)) => {}
            }
        }
    }
    for (&id, parts) in &listing.staged {
        if id > restored {
            plan.discard.push(id);
            continue;
        }
        if listing.published.contains_key(&id) {
            return Err(OutputInconsistency::Foreign {
                dir: dir.to_path_buf(),
                entry: checkpoint_path(id, true),
            });
        }
        // Staged output of a checkpoint up to the restored one is published only if the
        // checkpoint recorded every file of it.
        let recorded = expected.get(&id);
        for name in parts.keys() {
            if recorded.is_none_or(|r| !r.contains_key(name)) {
                return Err(OutputInconsistency::Foreign {
                    dir: dir.to_path_buf(),
                    entry: checkpoint_path(id, true).join(name),
                });
            }
        }
        plan.publish.push(id);
    }
    Ok(plan)
}

/// Checks that a staged checkpoint directory holds exactly the files the sink's writers
/// pre-committed for it in this run, before the committer publishes it.
pub(crate) fn check_staged(
    dir: &Path,
    id: CheckpointId,
    staged: Option<&Parts>,
    pre_committed: &Parts,
) -> Result<(), OutputInconsistency> {
    let empty = Parts::new();
    let staged = staged.unwrap_or(&empty);
    for (name, &bytes) in pre_committed {
        match staged.get(name) {
            None => {
                return Err(OutputInconsistency::Missing {
                    dir: dir.to_path_buf(),
                    restored: id,
                    missing: checkpoint_path(id, true).join(name),
                    bytes,
                })
            }
            Some(&found) if found != bytes => {
                return Err(OutputInconsistency::Damaged {
                    dir: dir.to_path_buf(),
                    restored: id,
                    file: checkpoint_path(id, true).join(name),
                    expected: format!("{bytes} bytes, found {found}"),
                })
            }
            Some(_) => {}
        }
    }
    if let Some(name) = staged.keys().find(|n| !pre_committed.contains_key(*n)) {
        return Err(OutputInconsistency::Foreign {
            dir: dir.to_path_buf(),
            entry: checkpoint_path(id, true).join(name),
        });
    }
    Ok(())
}

/// Whether `name` is a part file name a sink task writes.
pub(crate) fn is_part_name(name: &str) -> bool {
    name.strip_prefix("part-")
        .and_then(|digits| digits.parse::<u32>().ok())
        .is_some_and(|task| part_name(task) == name)
}

#[cfg(test)]
mod tests;
