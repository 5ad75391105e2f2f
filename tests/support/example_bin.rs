//! Finding an example binary from an integration test, for tests that run the examples the
//! way a user does.

use std::path::{Path, PathBuf};

/// The example `name` that `cargo test` built next to this test (target/<profile>/examples).
///
/// # Panics
/// The binary is missing: the test was not run through `cargo test`, which builds the
/// examples.
pub(crate) fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run this test through `cargo test`, which builds the examples",
        bin.display()
    );
    bin
}
