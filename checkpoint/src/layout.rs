//! Every path of the checkpoint store is built here, and nowhere else.
//!
//! ```text
//! <root>/
//!   chk-00000000000000000007/            one directory per checkpoint, id padded to 20 digits
//!     <escaped operator uid>-00000.snap  one snapshot file per task, index padded to 5 digits
//!     MANIFEST                           written last: its presence is the commit
//! ```
//!
//! Zero padding makes a plain directory listing sort by id. Anything in the root that does not
//! parse as a checkpoint directory name is not the store's and is left alone.

use crate::{key_hash, CheckpointId};
use std::path::{Path, PathBuf};

const CHECKPOINT_DIR_PREFIX: &str = "chk-";
const CHECKPOINT_ID_DIGITS: usize = 20;
const MANIFEST_FILE_NAME: &str = "MANIFEST";
const SNAPSHOT_SUFFIX: &str = ".snap";

/// Escaped uids longer than this are shortened and made unique with a hash, so that a file name
/// stays well under the 255-byte limit of common file systems even for a 1024-byte uid.
const MAX_ESCAPED_UID_LEN: usize = 200;
const SHORTENED_UID_KEEP: usize = 180;

/// Builds the paths of one checkpoint store rooted at a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointLayout {
    root: PathBuf,
}

impl CheckpointLayout {
    /// A layout rooted at `root` (usually one directory per job). Touches no file.
    pub fn new(root: impl Into<PathBuf>) -> CheckpointLayout {
        CheckpointLayout { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/chk-<id padded to 20 digits>`.
    pub fn checkpoint_dir(&self, id: CheckpointId) -> PathBuf {
        self.root.join(checkpoint_dir_name(id))
    }

    /// `<escaped uid>-<task padded to 5 digits>.snap`.
    ///
    /// The uid is escaped so that any string is a safe, portable file name: `[A-Za-z0-9_-]` are
    /// kept and every other byte of its UTF-8 is written as `%XX` (so `.`, `/` and `%` never
    /// appear raw, and distinct uids give distinct names). An escaped uid longer than 200 bytes
    /// is cut and followed by `~` and a 64-bit hash of the uid; `~` never occurs in an escaped
    /// uid, so shortened names cannot collide with unshortened ones.
    pub fn snapshot_file_name(uid: &str, task: u32) -> String {
        format!("{}-{task:05}{SNAPSHOT_SUFFIX}", escape_uid(uid))
    }

    /// The snapshot file of task `task` of operator `uid` in checkpoint `id`.
    pub fn snapshot_file(&self, id: CheckpointId, uid: &str, task: u32) -> PathBuf {
        self.checkpoint_dir(id)
            .join(Self::snapshot_file_name(uid, task))
    }

    /// A file that a manifest lists by name inside checkpoint `id`'s directory.
    ///
    /// Manifests are validated on decode to name plain files only (see [`is_plain_file_name`]),
    /// so the result never leaves the checkpoint directory.
    pub fn listed_file(&self, id: CheckpointId, file: &str) -> PathBuf {
        self.checkpoint_dir(id).join(file)
    }

    /// `checkpoint_dir/MANIFEST`.
    pub fn manifest_file(&self, id: CheckpointId) -> PathBuf {
        self.checkpoint_dir(id).join(MANIFEST_FILE_NAME)
    }

    /// Whether `name` is a file the store writes in a checkpoint directory: a snapshot file,
    /// the manifest, or a temp file of an interrupted write. Only such files are deleted.
    pub fn is_store_file_name(name: &str) -> bool {
        is_plain_file_name(name)
            && (name == MANIFEST_FILE_NAME
                || name.ends_with(SNAPSHOT_SUFFIX)
                || (name.starts_with('.') && name.ends_with(".tmp")))
    }

    /// The id of a checkpoint directory named `name`, or `None` if `name` is not exactly
    /// `chk-` followed by 20 digits (anything else in the root is not the store's).
    pub fn parse_checkpoint_dir_name(name: &str) -> Option<CheckpointId> {
        let digits = name.strip_prefix(CHECKPOINT_DIR_PREFIX)?;
        if digits.len() != CHECKPOINT_ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(CheckpointId)
    }
}

/// `chk-<id padded to 20 digits>`: the name of checkpoint `id`'s directory.
pub fn checkpoint_dir_name(id: CheckpointId) -> String {
    format!(
        "{CHECKPOINT_DIR_PREFIX}{:0width$}",
        id.0,
        width = CHECKPOINT_ID_DIGITS
    )
}

/// Whether `name` is a single, ordinary file name: not empty, not `.` or `..`, and free of path
/// separators and NUL. Names read from a manifest must pass this before they are joined to a
/// directory, so a corrupt or hostile manifest cannot point outside its checkpoint.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// A unique temporary sibling of `path`, for writing a file that is then renamed over `path`.
/// It starts with `.` and ends in `.tmp` so that it is recognisable as debris after a crash.
pub(crate) fn temp_sibling(path: &Path, unique: u64) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}-{unique}.tmp", std::process::id()))
}

fn escape_uid(uid: &str) -> String {
    let mut escaped = String::with_capacity(uid.len());
    for byte in uid.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    if escaped.len() <= MAX_ESCAPED_UID_LEN {
        return escaped;
    }
    // Cut before a `%XX` that would otherwise be split; the escaped text is ASCII, so any byte
    // index is a char boundary.
    let mut cut = SHORTENED_UID_KEEP;
    if let Some(percent) = escaped[cut - 2..cut].find('%') {
        cut = cut - 2 + percent;
    }
    format!("{}~{:016x}", &escaped[..cut], key_hash(uid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_zero_padded_and_nested_under_root() {
        let layout = CheckpointLayout::new("/jobs/wc");
        assert_eq!(
            layout.checkpoint_dir(CheckpointId(7)),
            Path::new("/jobs/wc/chk-00000000000000000007")
        );
        assert_eq!(
            layout.manifest_file(CheckpointId(7)),
            Path::new("/jobs/wc/chk-00000000000000000007/MANIFEST")
        );
        assert_eq!(
            layout.snapshot_file(CheckpointId(7), "count", 3),
            Path::new("/jobs/wc/chk-00000000000000000007/count-00003.snap")
        );
        assert_eq!(
            checkpoint_dir_name(CheckpointId(u64::MAX)),
            "chk-18446744073709551615"
        );
    }

    #[test]
    fn uids_are_escaped() {
        assert_eq!(
            CheckpointLayout::snapshot_file_name("a_B-9", 0),
            "a_B-9-00000.snap"
        );
        assert_eq!(
            CheckpointLayout::snapshot_file_name("../x.y%", 12),
            "%2E%2E%2Fx%2Ey%25-00012.snap"
        );
        assert_eq!(
            CheckpointLayout::snapshot_file_name("é", 1),
            "%C3%A9-00001.snap"
        );
    }

    #[test]
    fn long_uids_are_shortened_with_a_hash() {
        for prefix in ["", "a", "ab"] {
            let a = format!("{prefix}{}", "%".repeat(1024));
            let b = format!("{a}x");
            let name_a = CheckpointLayout::snapshot_file_name(&a, 0);
            let name_b = CheckpointLayout::snapshot_file_name(&b, 0);
            assert!(name_a.len() < 255, "{}", name_a.len());
            assert_ne!(name_a, name_b);
            // The cut never splits an escape sequence: the last `%` has both hex digits.
            let stem = name_a.split('~').next().unwrap_or_default();
            assert!(stem.len() <= SHORTENED_UID_KEEP, "{stem}");
            assert_eq!(stem.rfind('%'), Some(stem.len() - 3), "{stem}");
        }
    }

    #[test]
    fn dir_names_parse_strictly() {
        let parse = CheckpointLayout::parse_checkpoint_dir_name;
        assert_eq!(parse("chk-00000000000000000042"), Some(CheckpointId(42)));
        assert_eq!(parse("chk-42"), None);
        assert_eq!(parse("chk-0000000000000000004x"), None);
        assert_eq!(parse("chk-+0000000000000000042"), None);
        assert_eq!(parse("chk-99999999999999999999"), None);
        assert_eq!(parse("CHK-00000000000000000042"), None);
        assert_eq!(parse("chk-00000000000000000042.tmp"), None);
        assert_eq!(parse("MANIFEST"), None);
    }

    #[test]
    fn plain_file_names() {
        assert!(is_plain_file_name("a-00000.snap"));
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "a\0b", "/abs"] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn dir_names_round_trip(id in any::<u64>()) {
            let name = checkpoint_dir_name(CheckpointId(id));
            prop_assert_eq!(CheckpointLayout::parse_checkpoint_dir_name(&name), Some(CheckpointId(id)));
        }

        #[test]
        fn snapshot_names_are_safe_and_distinct(a in ".{0,40}", b in ".{0,40}", task in any::<u32>()) {
            let name_a = CheckpointLayout::snapshot_file_name(&a, task);
            let name_b = CheckpointLayout::snapshot_file_name(&b, task);
            prop_assert!(is_plain_file_name(&name_a));
            prop_assert!(name_a.bytes().all(|c| c.is_ascii_alphanumeric() || b"_-%.~".contains(&c)));
            prop_assert_eq!(name_a == name_b, a == b);
        }
    }
}
