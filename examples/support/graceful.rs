#![allow(dead_code)] // Shared by the examples.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! Ctrl-C / SIGTERM stops a job gracefully: a last checkpoint, its output published, then exit
//! with a message saying how to resume.

use snapflow::engine::JobStopper;

/// Makes Ctrl-C and SIGTERM ask `stopper` for a graceful stop. A second signal while the stop
/// is under way exits at once (the checkpoints already taken still allow a resume).
pub fn stop_on_signal(stopper: JobStopper) {
    let mut asked = false;
    let installed = ctrlc::set_handler(move || {
        if asked {
            eprintln!("second signal: exiting now; rerun the same command to resume");
            std::process::exit(130);
        }
        asked = true;
        eprintln!("stopping: taking a last checkpoint and publishing the output ...");
        stopper.stop();
    });
    if let Err(e) = installed {
        eprintln!("note: Ctrl-C will not stop the job gracefully: {e}");
    }
}
