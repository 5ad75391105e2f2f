//! The directories a job owns: its checkpoint directory and each sink's output directory.
//!
//! Before a job starts, it claims every one of them:
//!
//! 1. **No overlap.** No directory may lie inside another (or be the same): retention would
//!    delete a sink's published `chk-*` output as checkpoint debris, and snapshot files would
//!    become "output". Refused before anything is created.
//! 2. **A lock** (`_snapflow.lock`, an exclusive `flock` held while the job runs, with the
//!    holder's pid written in it): a second process on the same directory gets an error naming
//!    that pid and touches nothing. The kernel drops the lock with the process, so `kill -9`
//!    leaves nothing stale.
//! 3. **A mark** (`_snapflow`, a small text file written when the directory is first used):
//!    what the directory is (checkpoints or output) and which job owns it. A directory marked
//!    as something else, or owned by another job, or unmarked but holding files (which
//!    snapflow did not write), is refused.
//!
//! Both file names start with `_`, so they are not part of a file sink's committed output.
//! The decisions here are pure; the `claim` module does the I/O.

pub(crate) mod claim;
mod error;

pub use error::OwnershipError;

use std::path::{Path, PathBuf};

/// The lock file in every owned directory.
pub const LOCK_FILE: &str = "_snapflow.lock";
/// The mark in every owned directory.
pub const MARK_FILE: &str = "_snapflow";

/// What a job uses a directory for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirRole {
    /// The job's checkpoint directory.
    Checkpoints,
    /// The output directory of a sink operator.
    Output {
        /// The sink operator's name.
        operator: String,
    },
}

impl DirRole {
    /// The word the mark records for this role.
    fn kind(&self) -> &'static str {
        match self {
            DirRole::Checkpoints => "checkpoints",
            DirRole::Output { .. } => "output",
        }
    }
}

impl std::fmt::Display for DirRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirRole::Checkpoints => f.write_str("checkpoint directory"),
            DirRole::Output { operator } => write!(f, "output directory of sink '{operator}'"),
        }
    }
}

/// The first pair of directories (by index into `resolved`) of which one is inside the other
/// or both are the same. `resolved` are absolute paths with symbolic links resolved.
pub(crate) fn find_overlap(resolved: &[PathBuf]) -> Option<(usize, usize)> {
    for (i, a) in resolved.iter().enumerate() {
        for (j, b) in resolved.iter().enumerate().skip(i + 1) {
            if a.starts_with(b) || b.starts_with(a) {
                return Some((i, j));
            }
        }
    }
    None
}

/// A directory's mark: what it is and which job owns it. Public so that a directory can be
/// prepared for a job ahead of time (the tests that fill a disk before a job starts do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// `checkpoints` or `output`.
    pub kind: String,
    /// The owning job's name.
    pub job: String,
}

impl Mark {
    /// The mark a job writes into a directory it uses in `role`.
    pub fn new(role: &DirRole, job: &str) -> Mark {
        Mark {
            kind: role.kind().to_owned(),
            job: job.to_owned(),
        }
    }

    /// The mark's file content.
    pub fn encode(&self) -> String {
        format!(
            "snapflow directory\nkind: {}\njob: {}\n",
            self.kind, self.job
        )
    }

    /// Parses a mark file's content; `None` when it is not one.
    pub fn decode(text: &str) -> Option<Mark> {
        let mut lines = text.lines();
        if lines.next()? != "snapflow directory" {
            return None;
        }
        let kind = lines.next()?.strip_prefix("kind: ")?.to_owned();
        let job = lines.next()?.strip_prefix("job: ")?.to_owned();
        Some(Mark { kind, job })
    }
}

/// What a claim finds in a directory it has locked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A mark that decoded.
    Marked(Mark),
    /// A mark file that is not one (damaged).
    BadMark,
    /// No mark; the names of the other entries (the lock file excluded).
    Unmarked(Vec<String>),
}

/// What to do with a locked directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ClaimAction {
    /// It is already this job's, in this role.
    Keep,
    /// It is empty: write the mark.
    WriteMark,
}

/// Decides whether a job may use the directory `dir`, in `role`, given what is in it.
pub(crate) fn decide_claim(
    dir: &Path,
    role: &DirRole,
    job: &str,
    found: Found,
) -> Result<ClaimAction, OwnershipError> {
    match found {
        Found::Marked(mark) if mark.kind != role.kind() => Err(OwnershipError::WrongKind {
            dir: dir.to_path_buf(),
            role: role.clone(),
            marked: mark.kind,
            job: mark.job,
        }),
        Found::Marked(mark) if mark.job != job => Err(OwnershipError::OtherJob {
            dir: dir.to_path_buf(),
            role: role.clone(),
            owner: mark.job,
            job: job.to_owned(),
        }),
        Found::Marked(_) => Ok(ClaimAction::Keep),
        Found::BadMark => Err(OwnershipError::BadMark {
            path: dir.join(MARK_FILE),
        }),
        Found::Unmarked(entries) => match entries.into_iter().min() {
            None => Ok(ClaimAction::WriteMark),
            Some(entry) => Err(OwnershipError::Foreign {
                dir: dir.to_path_buf(),
                role: role.clone(),
                entry: dir.join(entry),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn nested_or_equal_directories_overlap_and_siblings_do_not() {
        assert_eq!(find_overlap(&[p("/a/ck"), p("/a/out")]), None);
        assert_eq!(find_overlap(&[p("/a/ck"), p("/a/ck")]), Some((0, 1)));
        assert_eq!(find_overlap(&[p("/a/out"), p("/a/out/ck")]), Some((0, 1)));
        assert_eq!(
            find_overlap(&[p("/a/out/ck"), p("/b"), p("/a/out")]),
            Some((0, 2))
        );
        // A shared name prefix is not nesting.
        assert_eq!(find_overlap(&[p("/a/out"), p("/a/out2")]), None);
    }

    #[test]
    fn marks_round_trip_and_garbage_is_not_a_mark() {
        let mark = Mark::new(&DirRole::Checkpoints, "word count");
        assert_eq!(Mark::decode(&mark.encode()), Some(mark));
        assert_eq!(Mark::decode(""), None);
        assert_eq!(Mark::decode("snapflow directory\nkind: output\n"), None);
        assert_eq!(Mark::decode("hello\nkind: output\njob: x\n"), None);
    }

    fn output() -> DirRole {
        DirRole::Output {
            operator: "write".into(),
        }
    }

    #[test]
    fn a_claim_accepts_only_empty_or_own_directories() {
        let dir = Path::new("/d");
        let own = Mark::new(&output(), "job");
        assert!(matches!(
            decide_claim(dir, &output(), "job", Found::Marked(own.clone())),
            Ok(ClaimAction::Keep)
        ));
        assert!(matches!(
            decide_claim(dir, &output(), "job", Found::Unmarked(vec![])),
            Ok(ClaimAction::WriteMark)
        ));
        assert!(matches!(
            decide_claim(
                dir,
                &DirRole::Checkpoints,
                "job",
                Found::Marked(own.clone())
            ),
            Err(OwnershipError::WrongKind { .. })
        ));
        assert!(matches!(
            decide_claim(dir, &output(), "other", Found::Marked(own)),
            Err(OwnershipError::OtherJob { .. })
        ));
        assert!(matches!(
            decide_claim(dir, &output(), "job", Found::BadMark),
            Err(OwnershipError::BadMark { .. })
        ));
        match decide_claim(
            dir,
            &output(),
            "job",
            Found::Unmarked(vec!["z".into(), "a".into()]),
        ) {
            Err(OwnershipError::Foreign { entry, .. }) => assert_eq!(entry, p("/d/a")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
