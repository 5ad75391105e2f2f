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

/// Started every text file position before positions recorded their splits: one split,
/// the task's share of the file by task index.
const MAGIC_V1: &[u8; 8] = b"SFTXT001";
/// Starts every text file position: a list of splits, each with its own end, so that splits
/// can be reassigned to the tasks of another parallelism.
const MAGIC: &[u8; 8] = b"SFTXT002";
/// Bytes of the file's start that the prefix checksum covers.
pub(crate) const PREFIX: u64 = 64 * 1024;
/// Bytes on each side of a split point, and before a position, that the windows cover.
pub(crate) const WINDOW: u64 = 4 * 1024;
/// More splits than this in one position is not a position snapflow wrote.
const MAX_SPLITS: u32 = 1 << 16;

/// A byte range of the input and the CRC-32 of its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub start: u64,
    pub end: u64,
    pub crc: u32,
}

/// One split of the input (the lines that start in a byte range) and how far it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SplitPosition {
    /// The byte offset of the next line to read: a line start (or past `end`).
    pub pos: u64,
    /// Lines starting at or after this offset belong to the next split. `None` in positions
    /// of the first format: the end of the recording task's share by task index.
    pub end: Option<u64>,
    /// The bytes around the split's first byte.
    pub split: Window,
    /// The bytes just before `pos`.
    pub before: Window,
}

/// A text file reader's position with the identity of the file it reads: the splits it has
/// left to read, the one being read first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FilePosition {
    /// The file's length when the job first started: the one its splits are computed from.
    pub len: u64,
    /// The file's first bytes.
    pub prefix: Window,
    /// The splits, the one being read first; empty for a task left without any.
    pub splits: Vec<SplitPosition>,
}

fn put_window(out: &mut Vec<u8>, w: &Window) {
    out.extend_from_slice(&w.start.to_le_bytes());
    out.extend_from_slice(&w.end.to_le_bytes());
    out.extend_from_slice(&w.crc.to_le_bytes());
}

/// Reads fields off the front of a byte slice; `None` once it runs short.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn window(&mut self) -> Option<Window> {
        Some(Window {
            start: self.u64()?,
            end: self.u64()?,
            crc: self.u32()?,
        })
    }
}

impl FilePosition {
    /// The windows this position records, for checking against the file.
    pub(crate) fn windows(&self) -> Vec<Window> {
        let mut windows = vec![self.prefix];
        for s in &self.splits {
            windows.extend([s.split, s.before]);
        }
        windows
    }

    /// Encodes the position for a checkpoint (always in the current format).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&self.len.to_le_bytes());
        put_window(&mut out, &self.prefix);
        out.extend_from_slice(&(self.splits.len() as u32).to_le_bytes());
        for s in &self.splits {
            out.extend_from_slice(&s.pos.to_le_bytes());
            out.extend_from_slice(&s.end.unwrap_or(self.len).to_le_bytes());
            put_window(&mut out, &s.split);
            put_window(&mut out, &s.before);
        }
        out
    }

    /// Decodes a position of either format; `None` when `bytes` is not one.
    pub(crate) fn decode(bytes: &[u8]) -> Option<FilePosition> {
        let position = if let Some(rest) = bytes.strip_prefix(MAGIC_V1.as_slice()) {
            let mut c = Cursor(rest);
            let (pos, len) = (c.u64()?, c.u64()?);
            let (prefix, split, before) = (c.window()?, c.window()?, c.window()?);
            if !c.0.is_empty() || pos > len {
                return None;
            }
            FilePosition {
                len,
                prefix,
                splits: vec![SplitPosition {
                    pos,
                    end: None,
                    split,
                    before,
                }],
            }
        } else {
            let mut c = Cursor(bytes.strip_prefix(MAGIC.as_slice())?);
            let len = c.u64()?;
            let prefix = c.window()?;
            let count = c.u32()?;
            if count > MAX_SPLITS {
                return None;
            }
            let mut splits = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let (pos, end) = (c.u64()?, c.u64()?);
                let (split, before) = (c.window()?, c.window()?);
                if end > len {
                    return None;
                }
                splits.push(SplitPosition {
                    pos,
                    end: Some(end),
                    split,
                    before,
                });
            }
            if !c.0.is_empty() {
                return None;
            }
            FilePosition {
                len,
                prefix,
                splits,
            }
        };
        // A position may lie past its split's end (after a line that crosses it), never
        // past the file's.
        let valid = position.splits.iter().all(|s| s.pos <= position.len)
            && position
                .windows()
                .iter()
                .all(|w| w.start <= w.end && w.end <= position.len);
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

    fn w(start: u64, end: u64, crc: u32) -> Window {
        Window { start, end, crc }
    }

    fn position() -> FilePosition {
        FilePosition {
            len: 5000,
            prefix: w(0, 5000, 1),
            splits: vec![
                SplitPosition {
                    pos: 100,
                    end: Some(2500),
                    split: w(10, 20, 2),
                    before: w(0, 100, 3),
                },
                SplitPosition {
                    pos: 2600,
                    end: Some(5000),
                    split: w(2400, 2600, 4),
                    before: w(2500, 2600, 5),
                },
            ],
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
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(FilePosition::decode(&longer), None);
    }

    #[test]
    fn a_task_without_splits_round_trips() {
        let empty = FilePosition {
            splits: Vec::new(),
            ..position()
        };
        assert_eq!(FilePosition::decode(&empty.encode()), Some(empty));
    }

    #[test]
    fn positions_of_the_first_format_still_decode() {
        // pos, len, then prefix, split and before windows, as the first format wrote them.
        let mut v1 = MAGIC_V1.to_vec();
        for n in [100u64, 5000] {
            v1.extend_from_slice(&n.to_le_bytes());
        }
        for window in [w(0, 5000, 1), w(10, 20, 2), w(0, 100, 3)] {
            put_window(&mut v1, &window);
        }
        let decoded = FilePosition::decode(&v1).expect("decodes");
        assert_eq!(decoded.len, 5000);
        assert_eq!(
            decoded.splits,
            vec![SplitPosition {
                pos: 100,
                end: None,
                split: w(10, 20, 2),
                before: w(0, 100, 3),
            }]
        );
        for n in 0..v1.len() {
            assert_eq!(FilePosition::decode(&v1[..n]), None, "cut at {n}");
        }
    }

    #[test]
    fn a_split_past_the_length_is_refused() {
        let mut p = position();
        p.splits[1].end = Some(6000);
        assert_eq!(FilePosition::decode(&p.encode()), None);
        let mut p = position();
        p.splits[0].pos = 5001;
        assert_eq!(FilePosition::decode(&p.encode()), None);
    }

    #[test]
    fn a_window_past_the_length_is_refused() {
        let mut p = position();
        p.splits[0].split.end = 6000;
        assert_eq!(FilePosition::decode(&p.encode()), None);
    }
}
