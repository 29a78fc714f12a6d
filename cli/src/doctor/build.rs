//! What `cargo build` needs from the machine, checked by doing a small piece of the real work:
//! protoc compiles a file that imports a well-known type (the Temporal SDK's protos import
//! `google/protobuf/field_mask.proto`, which Debian ships in `libprotobuf-dev`, not in
//! `protobuf-compiler`), and the C and C++ compilers compile and link a program (onig, zstd and
//! ring build C; the vector engine builds C++). A version string alone would not catch a
//! compiler without its headers or a protoc without its includes.

use std::{
    ffi::OsString,
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

/// The fix for anything the build needs from the system.
pub(crate) const BOOTSTRAP_BUILD: &str =
    "run `deploy/local/bootstrap` (apt: build-essential, protobuf-compiler, libprotobuf-dev)";

/// The protoc the build uses: `$PROTOC` (prost-build honours it), else `protoc` on the PATH.
pub(crate) fn protoc_program() -> OsString {
    std::env::var_os("PROTOC").unwrap_or_else(|| OsString::from("protoc"))
}

const PROBE_PROTO: &str = "syntax = \"proto3\";\n\
package apex.doctor;\n\
import \"google/protobuf/field_mask.proto\";\n\
import \"google/protobuf/duration.proto\";\n\
message Probe { google.protobuf.FieldMask mask = 1; google.protobuf.Duration wait = 2; }\n";

/// protoc runs and finds its well-known types. Ok: protoc's version; Err: what failed, in
/// protoc's own words.
pub(crate) fn protoc_well_known_types(protoc: &Path) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    std::fs::write(dir.path().join("probe.proto"), PROBE_PROTO)
        .map_err(|e| format!("writing the probe: {e}"))?;
    let version = run(Command::new(protoc).arg("--version"))
        .map_err(|e| format!("{}: {e}", protoc.display()))?;
    run(Command::new(protoc)
        .arg("-I")
        .arg(dir.path())
        .arg("--descriptor_set_out")
        .arg(dir.path().join("probe.pb"))
        .arg(dir.path().join("probe.proto")))
    .map(|_| format!("{version}, well-known types found"))
    .map_err(|e| format!("{version} cannot import google/protobuf/field_mask.proto: {e}"))
}

/// The compiler `cc` (or `$CC`) compiles and links a C program.
pub(crate) fn c_compiler() -> Result<String, String> {
    let cc = std::env::var_os("CC").unwrap_or_else(|| OsString::from("cc"));
    compiles(
        &cc,
        &["-x", "c"],
        "#include <stdio.h>\nint main(void) { return puts(\"\") < 0; }\n",
    )
}

/// The compiler `c++` (or `$CXX`) compiles and links a C++ program with the standard library.
pub(crate) fn cxx_compiler() -> Result<String, String> {
    let cxx = std::env::var_os("CXX").unwrap_or_else(|| OsString::from("c++"));
    compiles(
        &cxx,
        &["-x", "c++"],
        "#include <string>\n#include <vector>\nint main() { std::vector<std::string> v{\"a\"}; return v.size() != 1; }\n",
    )
}

fn compiles(compiler: &OsString, lang: &[&str], source: &str) -> Result<String, String> {
    let name = Path::new(compiler).display().to_string();
    let version =
        run(Command::new(compiler).arg("--version")).map_err(|e| format!("{name}: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut child = Command::new(compiler)
        .args(lang)
        .arg("-")
        .arg("-o")
        .arg(dir.path().join("probe"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(source.as_bytes())
            .map_err(|e| format!("{name}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{name}: {e}"))?;
    if out.status.success() {
        Ok(version)
    } else {
        Err(format!(
            "{version} cannot build a program: {}",
            first_line(&out.stderr)
        ))
    }
}

/// Runs a command; Ok: the first line it printed; Err: the first line of its complaint, or
/// why it could not start.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "not found".to_owned(),
        _ => e.to_string(),
    })?;
    if out.status.success() {
        Ok(first_line(&out.stdout))
    } else {
        let err = first_line(&out.stderr);
        Err(if err.is_empty() {
            first_line(&out.stdout)
        } else {
            err
        })
    }
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system_protoc() -> std::path::PathBuf {
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("protoc"))
                    .find(|p| p.is_file())
            })
            .expect("protoc on the PATH (deploy/local/bootstrap installs it)")
    }

    #[test]
    fn the_installed_protoc_finds_its_well_known_types() {
        let found = protoc_well_known_types(&system_protoc());
        assert!(
            found
                .as_deref()
                .is_ok_and(|v| v.starts_with("libprotoc") && v.ends_with("found")),
            "{found:?}"
        );
    }

    /// The newcomer's failure, reproduced with the real protoc: a copy of it in a directory
    /// with no `../include` has no well-known types, exactly like `protobuf-compiler` without
    /// `libprotobuf-dev`.
    #[test]
    fn a_protoc_without_well_known_types_is_reported_with_the_missing_import() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin dir");
        let copy = bin.join("protoc");
        // A hard link opens no file for writing. A copy does, and another test thread that
        // forks while the copy is open makes the exec fail with "Text file busy" (ETXTBSY)
        // until that child has exec'd in turn: retried a bounded number of times.
        let linked = std::fs::hard_link(system_protoc(), &copy).is_ok();
        if !linked {
            std::fs::copy(system_protoc(), &copy).expect("copy protoc");
        }
        let mut attempts = 0;
        let err = loop {
            let err = protoc_well_known_types(&copy).expect_err("no well-known types there");
            attempts += 1;
            if !err.contains("os error 26") || attempts == 50 {
                break err;
            }
            std::thread::yield_now();
        };
        assert!(
            err.contains("cannot import google/protobuf/field_mask.proto")
                && err.contains("File not found"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_protoc_says_not_found() {
        let err = protoc_well_known_types(Path::new("/nonexistent/protoc")).expect_err("absent");
        assert_eq!(err, "/nonexistent/protoc: not found");
    }

    #[test]
    fn the_c_and_cxx_compilers_build_a_program() {
        assert!(c_compiler().is_ok(), "{:?}", c_compiler());
        assert!(cxx_compiler().is_ok(), "{:?}", cxx_compiler());
    }

    #[test]
    fn a_compiler_that_cannot_build_is_reported_with_its_error() {
        // A real compiler, given a C++ program as C: it runs, but the build fails.
        let err = compiles(&OsString::from("cc"), &["-x", "c"], "#include <vector>\n")
            .expect_err("C has no <vector>");
        assert!(err.contains("cannot build a program"), "{err}");
        assert!(err.contains("vector"), "{err}");
    }
}
