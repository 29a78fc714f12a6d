//! What the CLI test binaries share: running `apex` and reading what it printed.

use std::process::{Command, Output};

pub(crate) fn apex(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apex"))
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
