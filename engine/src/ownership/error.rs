//! Why a job cannot take one of its directories.

use super::DirRole;
use std::path::PathBuf;

/// A directory the job needs is not its to use; nothing ran and nothing in it was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnershipError {
    /// One directory lies inside another, or two are the same.
    #[error("the {first_role} {} and the {second_role} {} overlap; each must be a separate directory, neither inside the other", first.display(), second.display())]
    Overlap {
        /// The first directory.
        first: PathBuf,
        /// What it is for.
        first_role: DirRole,
        /// The second directory.
        second: PathBuf,
        /// What it is for.
        second_role: DirRole,
    },
    /// Another process (or another job in this one) is using the directory.
    #[error("the {role} {} is in use by {}; two jobs must not share a directory", dir.display(), holder.map_or_else(|| "another process".to_owned(), |pid| format!("process {pid}")))]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// What this job wanted it for.
        role: DirRole,
        /// The pid the lock holder wrote into the lock file, if it could be read.
        holder: Option<u32>,
    },
    /// The directory is marked as a different kind of snapflow directory.
    #[error("the {role} {} is the {marked} directory of job '{job}'; use another directory", dir.display())]
    WrongKind {
        /// The directory.
        dir: PathBuf,
        /// What this job wanted it for.
        role: DirRole,
        /// The kind its mark records.
        marked: String,
        /// The job its mark names.
        job: String,
    },
    /// The directory belongs to a job of another name.
    #[error("the {role} {} belongs to job '{owner}', not '{job}'; use another directory", dir.display())]
    OtherJob {
        /// The directory.
        dir: PathBuf,
        /// What this job wanted it for.
        role: DirRole,
        /// The job its mark names.
        owner: String,
        /// This job.
        job: String,
    },
    /// An unmarked directory holds files that snapflow did not write.
    #[error("the {role} {} holds files snapflow did not write (such as {}); snapflow never publishes or deletes files it did not write: use an empty or new directory", dir.display(), entry.display())]
    Foreign {
        /// The directory.
        dir: PathBuf,
        /// What this job wanted it for.
        role: DirRole,
        /// One such file or directory.
        entry: PathBuf,
    },
    /// The mark file is damaged.
    #[error("{} is not a snapflow directory mark (damaged?); restore it or use another directory", path.display())]
    BadMark {
        /// The mark file.
        path: PathBuf,
    },
    /// Creating, locking, reading or marking the directory failed.
    #[error("cannot use {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
