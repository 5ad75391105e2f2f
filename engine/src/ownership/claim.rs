//! Takes a job's directories: resolves them, refuses overlaps, locks and marks each one.

use super::{decide_claim, find_overlap, ClaimAction, DirRole, Found, Mark, OwnershipError};
use super::{LOCK_FILE, MARK_FILE};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

/// How long a claim waits for a lock that is taken before it refuses.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The directories a job holds while it runs; dropping this releases their locks.
#[derive(Debug, Default)]
pub(crate) struct ClaimedDirs {
    /// The open lock files: the `flock` lasts as long as the file stays open.
    _locks: Vec<File>,
}

/// Claims every directory in `dirs` for `job`, or none: refuses overlapping directories before
/// creating anything, then creates, locks and checks (or marks) each one.
pub(crate) fn claim_all(
    job: &str,
    dirs: &[(PathBuf, DirRole)],
) -> Result<ClaimedDirs, OwnershipError> {
    let resolved = dirs
        .iter()
        .map(|(dir, _)| resolve(dir))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((i, j)) = find_overlap(&resolved) {
        return Err(OwnershipError::Overlap {
            first: dirs[i].0.clone(),
            first_role: dirs[i].1.clone(),
            second: dirs[j].0.clone(),
            second_role: dirs[j].1.clone(),
        });
    }
    // A directory holding someone else's files, or another job's, is refused before anything
    // is added to any of the directories. (Checked again once locked: that check decides.)
    for (dir, role) in dirs {
        if dir.exists() {
            decide_claim(dir, role, job, inspect(dir)?)?;
        }
    }
    let mut locks = Vec::with_capacity(dirs.len());
    for (dir, role) in dirs {
        locks.push(claim(job, dir, role)?);
    }
    Ok(ClaimedDirs { _locks: locks })
}

/// Locks `dir` and checks that `job` may use it in `role`, marking it on first use.
fn claim(job: &str, dir: &Path, role: &DirRole) -> Result<File, OwnershipError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OwnershipError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    // A lock held a moment longer than its job: a child process forked by this process (to
    // run a command) holds copies of its descriptors until it execs, so a restart in this
    // process can find its previous attempt's lock still taken for a moment.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut locked = lock.try_lock();
    while matches!(locked, Err(TryLockError::WouldBlock)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        locked = lock.try_lock();
    }
    match locked {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let holder = lock
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(OwnershipError::Locked {
                dir: dir.to_path_buf(),
                role: role.clone(),
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
    }
    // The pid is only for the error message of whoever comes second: the lock itself is the
    // flock, so a pid that cannot be written (a full disk) does not stop the job.
    let _ = lock
        .set_len(0)
        .and_then(|()| lock.rewind())
        .and_then(|()| writeln!(lock, "{}", std::process::id()));

    let mark_path = dir.join(MARK_FILE);
    let found = inspect(dir)?;
    match decide_claim(dir, role, job, found)? {
        ClaimAction::Keep => {}
        ClaimAction::WriteMark => {
            snapflow_checkpoint::write_atomic(&mark_path, Mark::new(role, job).encode().as_bytes())
                .map_err(|e| OwnershipError::Io {
                    path: mark_path.clone(),
                    source: std::io::Error::other(e),
                })?;
        }
    }
    Ok(lock)
}

/// What is in `dir`: its mark, or the entries other than the lock file.
fn inspect(dir: &Path) -> Result<Found, OwnershipError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OwnershipError::Io { path, source }
    };
    let mark_path = dir.join(MARK_FILE);
    Ok(match fs::read(&mark_path) {
        Ok(bytes) => match std::str::from_utf8(&bytes).ok().and_then(Mark::decode) {
            Some(mark) => Found::Marked(mark),
            None => Found::BadMark,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut others = Vec::new();
            for entry in fs::read_dir(dir).map_err(io(dir))? {
                let name = entry.map_err(io(dir))?.file_name();
                let name = name.to_string_lossy();
                // The lock file, and a temp file of a mark write that a crash interrupted.
                if name != LOCK_FILE && !name.starts_with(&format!(".{MARK_FILE}.")) {
                    others.push(name.into_owned());
                }
            }
            Found::Unmarked(others)
        }
        Err(e) => return Err(io(&mark_path)(e)),
    })
}

/// `dir` as an absolute path with symbolic links resolved, as far as it exists: the deepest
/// existing ancestor is canonicalized and the rest appended with `.` and `..` applied, so
/// that two spellings of one directory compare equal before either is created.
fn resolve(dir: &Path) -> Result<PathBuf, OwnershipError> {
    let absolute = std::path::absolute(dir).map_err(|source| OwnershipError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let components: Vec<Component<'_>> = absolute.components().collect();
    // The longest prefix that exists, canonicalized; the root always does.
    let (mut resolved, rest) = (1..=components.len())
        .rev()
        .find_map(|k| {
            let prefix: PathBuf = components[..k].iter().collect();
            prefix
                .canonicalize()
                .ok()
                .map(|base| (base, &components[k..]))
        })
        .unwrap_or_else(|| (absolute.clone(), &[]));
    for part in rest {
        match part {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::CurDir => {}
            other => resolved.push(other),
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_spells_one_directory_one_way() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().canonicalize().unwrap();
        let a = resolve(&tmp.path().join("x/./y/../z")).unwrap();
        assert_eq!(a, real.join("x/z"));
        std::fs::create_dir(real.join("x")).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(real.join("x"), real.join("link")).unwrap();
            assert_eq!(resolve(&real.join("link/z")).unwrap(), real.join("x/z"));
        }
    }

    #[test]
    fn a_second_claim_names_the_holder_and_the_first_release_frees_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = vec![(tmp.path().join("ck"), DirRole::Checkpoints)];
        let first = claim_all("job", &dirs).unwrap();
        match claim_all("job", &dirs) {
            Err(OwnershipError::Locked { holder, .. }) => {
                assert_eq!(holder, Some(std::process::id()))
            }
            other => panic!("unexpected {other:?}"),
        }
        drop(first);
        claim_all("job", &dirs).unwrap();
    }

    #[test]
    fn an_unmarked_directory_with_files_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
        let dirs = vec![(tmp.path().to_path_buf(), DirRole::Checkpoints)];
        assert!(matches!(
            claim_all("job", &dirs),
            Err(OwnershipError::Foreign { .. })
        ));
        assert!(!tmp.path().join(MARK_FILE).exists());
        assert!(!tmp.path().join(LOCK_FILE).exists());
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("notes.txt")).unwrap(),
            "mine"
        );
    }
}
