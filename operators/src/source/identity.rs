//! What a text file source records about its input in every checkpoint, so that a rerun can
//! tell whether the file is still the one it read: its length, and CRC-32s of its first bytes,
//! of the bytes around the task's split point and of the bytes just before its position.
//!
//! Checksums of a few windows, not of the whole file: resuming stays independent of the
//! input's size, and a replaced or rewritten file is caught at the places where a mix-up
//! would show (the start, the split boundaries, and where reading resumes).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Starts every text file position, so that a foreign or older position is recognised.
const MAGIC: &[u8; 8] = b"SFTXT001";
/// Bytes of the file's start that the prefix checksum covers.
pub(crate) const PREFIX: u64 = 64 * 1024;
/// Bytes on each side of a split point, and before a position, that the windows cover.
pub(crate) const WINDOW: u64 = 4 * 1024;

/// A byte range of the input and the CRC-32 of its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub start: u64,
    pub end: u64,
    pub crc: u32,
}

/// A text file reader's position with the identity of the file it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FilePosition {
    /// The byte offset of the next line to read.
    pub pos: u64,
    /// The file's length when the job first started: the one its splits are computed from.
    pub len: u64,
    /// The file's first bytes.
    pub prefix: Window,
    /// The bytes around this task's split point.
    pub split: Window,
    /// The bytes just before `pos`.
    pub before: Window,
}

impl FilePosition {
    /// The windows this position records, for checking against the file.
    pub(crate) fn windows(&self) -> [Window; 3] {
        [self.prefix, self.split, self.before]
    }

    /// Encodes the position for a checkpoint.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for n in [self.pos, self.len] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for w in self.windows() {
            out.extend_from_slice(&w.start.to_le_bytes());
            out.extend_from_slice(&w.end.to_le_bytes());
            out.extend_from_slice(&w.crc.to_le_bytes());
        }
        out
    }

    /// Decodes a position; `None` when `bytes` is not one.
    pub(crate) fn decode(bytes: &[u8]) -> Option<FilePosition> {
        let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            rest = tail;
            Some(head)
        };
        let mut u64_ = || Some(u64::from_le_bytes(take(8)?.try_into().ok()?));
        let (pos, len) = (u64_()?, u64_()?);
        let mut window = || -> Option<Window> {
            let start = u64::from_le_bytes(take(8)?.try_into().ok()?);
            let end = u64::from_le_bytes(take(8)?.try_into().ok()?);
            let crc = u32::from_le_bytes(take(4)?.try_into().ok()?);
            Some(Window { start, end, crc })
        };
        let (prefix, split, before) = (window()?, window()?, window()?);
        let position = FilePosition {
            pos,
            len,
            prefix,
            split,
            before,
        };
        let valid = rest.is_empty()
            && pos <= len
            && position
                .windows()
                .iter()
                .all(|w| w.start <= w.end && w.end <= len);
        valid.then_some(position)
    }
}

/// Why a text file source cannot read, or resume reading, its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The input is not a regular file.
    #[error("{} is {kind}, not a regular file; the text file source reads regular files only", path.display())]
    NotRegular {
        /// The input.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The input is shorter than the checkpoint recorded.
    #[error("{} was truncated: it has {now} bytes, but the checkpoint read it at {recorded} bytes; resuming would skip lines; restore the file, or start a new job with new checkpoint and output directories", path.display())]
    Truncated {
        /// The input.
        path: PathBuf,
        /// The length the job split it at.
        recorded: u64,
        /// Its length now.
        now: u64,
    },
    /// The input is longer than the checkpoint recorded.
    #[error("{} grew from {recorded} to {now} bytes since the job first started; a job reads its input as it was then, so the appended part would never be read; start a new job with new checkpoint and output directories for the new input, or restore the file", path.display())]
    Grew {
        /// The input.
        path: PathBuf,
        /// The length the job split it at.
        recorded: u64,
        /// Its length now.
        now: u64,
    },
    /// The input's content differs from what the job read.
    #[error("{} was replaced or rewritten: bytes {start}..{end} differ from what the job read; resuming would mix two files; restore the file, or start a new job with new checkpoint and output directories", path.display())]
    Replaced {
        /// The input.
        path: PathBuf,
        /// The first byte of the differing window.
        start: u64,
        /// The end of the differing window.
        end: u64,
    },
    /// The file shrank while the job read it.
    #[error("{} shrank to {now} bytes while it was being read (at byte {at}); lines would be lost", path.display())]
    ShrankWhileReading {
        /// The input.
        path: PathBuf,
        /// Where the reader stood.
        at: u64,
        /// The end of the file it found.
        now: u64,
    },
    /// The recorded position is not a text file position.
    #[error("the checkpoint's position for {} ({description}) is not a text file source position (written by another source, or an older snapflow)", path.display())]
    NotAPosition {
        /// The input.
        path: PathBuf,
        /// The recorded position, for people.
        description: String,
    },
    /// Reading the input failed.
    #[error("cannot read input file {}", path.display())]
    Io {
        /// The input.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// What kind of file `path` is, or an error for anything but a regular file. Checked before
/// opening: opening a FIFO blocks until a writer appears.
pub(crate) fn require_regular(path: &Path) -> Result<(), InputError> {
    let meta = std::fs::metadata(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(());
    }
    #[cfg(unix)]
    let special = {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device"
        } else {
            "not a file"
        }
    };
    #[cfg(not(unix))]
    let special = "not a file";
    Err(InputError::NotRegular {
        path: path.to_path_buf(),
        kind: if kind.is_dir() {
            "a directory"
        } else {
            special
        },
    })
}

/// The window `start..end` of `file` (clamped to `len`) with its CRC-32.
pub(crate) fn window(file: &File, start: u64, end: u64, len: u64) -> io::Result<Window> {
    let (start, end) = (start.min(len), end.min(len));
    let mut buf = vec![0u8; (end - start) as usize];
    read_exact_at(file, &mut buf, start)?;
    Ok(Window {
        start,
        end,
        crc: crc32fast::hash(&buf),
    })
}

/// Checks `recorded` against the file as it is now (`now` bytes long).
pub(crate) fn check(
    path: &Path,
    file: &File,
    now: u64,
    recorded: &FilePosition,
) -> Result<(), InputError> {
    if now < recorded.len {
        return Err(InputError::Truncated {
            path: path.to_path_buf(),
            recorded: recorded.len,
            now,
        });
    }
    for w in recorded.windows() {
        let found = window(file, w.start, w.end, now).map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if found != w {
            return Err(InputError::Replaced {
                path: path.to_path_buf(),
                start: w.start,
                end: w.end,
            });
        }
    }
    if now > recorded.len {
        return Err(InputError::Grew {
            path: path.to_path_buf(),
            recorded: recorded.len,
            now,
        });
    }
    Ok(())
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut file = file.try_clone()?;
    use std::io::{Read, Seek};
    file.seek(io::SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> FilePosition {
        FilePosition {
            pos: 100,
            len: 5000,
            prefix: Window {
                start: 0,
                end: 5000,
                crc: 1,
            },
            split: Window {
                start: 10,
                end: 20,
                crc: 2,
            },
            before: Window {
                start: 0,
                end: 100,
                crc: 3,
            },
        }
    }

    #[test]
    fn positions_round_trip_and_every_truncation_is_refused() {
        let bytes = position().encode();
        assert_eq!(FilePosition::decode(&bytes), Some(position()));
        for n in 0..bytes.len() {
            assert_eq!(FilePosition::decode(&bytes[..n]), None, "cut at {n}");
        }
        assert_eq!(FilePosition::decode(&7u64.to_le_bytes()), None);
    }

    #[test]
    fn a_window_past_the_length_is_refused() {
        let mut p = position();
        p.split.end = 6000;
        assert_eq!(FilePosition::decode(&p.encode()), None);
    }
}
