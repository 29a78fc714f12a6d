//! The `apex` command line against the running stack: running `apex` and reading what it
//! printed.

mod ingest;
mod stack;
mod tls;
mod top;
mod trace;

use std::process::{Command, Output};

/// `apex <args>`, built from the current sources, with the test's environment (so the
/// stack's settings it finds are the sandbox's).
pub(crate) fn apex(args: &[&str]) -> Output {
    Command::new(apex_e2e::bins::bin("apex"))
        .args(args)
        .output()
        .expect("run apex")
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
