//! Errors of the built-in sources and sinks. Each names the file it concerns.

use std::io;
use std::path::PathBuf;

/// A source could not read its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The input file could not be opened.
    #[error("cannot open input file {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Reading the input file failed.
    #[error("cannot read input file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A line of a text file is not valid UTF-8.
    #[error("{}:{line}: invalid UTF-8 at byte {column} of the line", path.display())]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// The line number, counting from 1.
        line: u64,
        /// The first bad byte's position in the line, counting from 1.
        column: usize,
    },
    /// The input is not a regular file, or not the file a checkpoint read.
    #[error(transparent)]
    Input(#[from] crate::source::InputError),
}

/// A sink could not write its output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The output directory or file could not be created.
    #[error("cannot create output {}", path.display())]
    Create {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing an output file failed.
    #[error("cannot write output file {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}
