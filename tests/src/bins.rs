//! The workspace's binaries (`apex`, `apex-worker`, …) for tests that run them as processes.
//!
//! A test crate cannot name another package's binary at compile time, so the sandbox builds
//! the ones it needs with cargo, once per test run, into the target directory this test binary
//! was built in. That keeps them as fresh as the test itself: a binary left over from an
//! older build is never what a test runs. When everything is built already (as under
//! `make test`) this takes a second or two.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

/// The path of the workspace binary `name`, built from the current sources.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let dir = profile_dir();
    build(name, &dir);
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "cargo built {name} but {} is missing",
        path.display()
    );
    built.insert(name.to_owned(), path.clone());
    path
}

/// `<target>/debug` (or the profile this was built in): a test binary is
/// `<target>/<profile>/deps/e2e-<hash>`, a binary of this crate (`apex-bench-scale`)
/// `<target>/<profile>/<name>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running binary's path");
    let dir = exe
        .parent()
        .unwrap_or_else(|| panic!("{} is not in a cargo target directory", exe.display()));
    if dir.file_name().is_some_and(|d| d == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

fn build(name: &str, profile_dir: &Path) {
    let target = profile_dir
        .parent()
        .expect("the target directory above the profile directory");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    cmd.current_dir(root)
        .args(["build", "--locked", "--bin", name, "--target-dir"])
        .arg(target);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build --bin {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
