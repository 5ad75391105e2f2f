#![allow(dead_code)] // Shared by the examples.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! Ctrl-C / SIGTERM stops a job gracefully: a last checkpoint, its output published (and,
//! when asked, copied into a savepoint), then exit with a message saying how to resume.

use snapflow::engine::JobStopper;
use std::path::PathBuf;

/// Makes Ctrl-C and SIGTERM ask `stopper` for a graceful stop, with a savepoint into
/// `savepoint` if given. A second signal while the stop is under way exits at once (the
/// checkpoints already taken still allow a resume; a savepoint cut short is refused).
pub fn stop_on_signal(stopper: JobStopper, savepoint: Option<PathBuf>) {
    let mut asked = false;
    let installed = ctrlc::set_handler(move || {
        if asked {
            eprintln!("second signal: exiting now; rerun the same command to resume");
            std::process::exit(130);
        }
        asked = true;
        match &savepoint {
            Some(dir) => {
                eprintln!(
                    "stopping: taking a last checkpoint, publishing the output and writing a savepoint to {} ...",
                    dir.display()
                );
                stopper.stop_with_savepoint(dir);
            }
            None => {
                eprintln!("stopping: taking a last checkpoint and publishing the output ...");
                stopper.stop();
            }
        }
    });
    if let Err(e) = installed {
        eprintln!("note: Ctrl-C will not stop the job gracefully: {e}");
    }
}
