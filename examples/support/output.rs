#![allow(dead_code)] // Shared by the examples; each uses part of it.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! Reading an exactly-once file sink's committed output, by its reader contract.

use std::io;
use std::path::{Path, PathBuf};

/// Every regular file under `dir` whose relative path has no component starting with `.` or
/// `_`: the committed output of a `FileSink`. A missing directory has no output.
pub fn committed_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files.extend(committed_files(&entry.path())?);
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Every line of the committed output.
pub fn committed_lines(dir: &Path) -> io::Result<Vec<String>> {
    let mut lines = Vec::new();
    for file in committed_files(dir)? {
        lines.extend(std::fs::read_to_string(file)?.lines().map(str::to_owned));
    }
    Ok(lines)
}
