//! Printing an error with all its causes, each once.
//!
//! Every error type of snapflow displays only its own level (what failed, naming the file,
//! option or operator) and returns its cause from [`source`](std::error::Error::source), so a
//! cause is never printed twice by a formatter that walks the chain (anyhow's `{:#}` or its
//! `Caused by:` list). Where an error is turned into a string that stands alone — a log field,
//! the reason of an aborted checkpoint, a test message — [`ErrorChain`] prints the whole chain.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its causes, separated by `": "`, as anyhow's `{:#}`
/// does: `cannot read/write /ckpt/chk-7/count-0.snap: No space left on device (os error 28)`.
///
/// ```
/// use snapflow_engine::ErrorChain;
/// let error = std::io::Error::other("disk on fire");
/// assert_eq!(ErrorChain(&error).to_string(), "disk on fire");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{JobError, TaskError};
    use std::io;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write /out/part-0")]
    struct WriteFailed {
        source: io::Error,
    }

    #[test]
    fn prints_every_level_once() {
        let error = JobError::TaskFailed {
            operator: "write".into(),
            uid: "3-write".into(),
            index: 1,
            parallelism: 2,
            source: TaskError::Failed(Box::new(WriteFailed {
                source: io::Error::from_raw_os_error(28),
            })),
        };
        let text = ErrorChain(&error).to_string();
        let os = io::Error::from_raw_os_error(28).to_string();
        assert_eq!(
            text,
            format!("operator 'write' (uid '3-write') task 1 of 2 failed: cannot write /out/part-0: {os}")
        );
        assert_eq!(text.matches(&os).count(), 1, "{text}");
    }

    #[test]
    fn an_error_without_source_is_its_display() {
        let error = TaskError::Panicked("boom".into());
        assert_eq!(ErrorChain(&error).to_string(), "panicked: boom");
    }
}
