//! The documentation's map of the code stays true: every workspace crate has one row in
//! `docs/architecture.md`'s crate table (with its path and a known kind) and one entry in the
//! README's layout, and neither names a crate that is gone. Hermetic: it reads files only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Workspace member path → package name, from the root `Cargo.toml`'s `members` list.
fn workspace_crates() -> BTreeMap<String, String> {
    let manifest = read(&root().join("Cargo.toml"));
    let members = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("a members list in Cargo.toml");
    members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .map(|path| {
            let package = read(&root().join(path).join("Cargo.toml"));
            let name = package
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .and_then(|rest| rest.strip_suffix('"'))
                .unwrap_or_else(|| panic!("{path}/Cargo.toml has no package name"));
            (path.to_owned(), name.to_owned())
        })
        .collect()
}

/// Rows of the crate table: name → (path, kind).
fn documented_crates() -> BTreeMap<String, (String, String)> {
    let doc = read(&root().join("docs/architecture.md"));
    let table = doc
        .split_once("| crate | path | kind | role |")
        .map(|(_, rest)| rest)
        .expect("a crate table with the columns crate, path, kind, role");
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let unquote = |c: &str| c.trim_matches('`').to_owned();
            (unquote(cells[1]), (unquote(cells[2]), cells[3].to_owned()))
        })
        .collect()
}

#[test]
fn the_crate_table_lists_every_workspace_crate_and_nothing_else() {
    let crates = workspace_crates();
    assert!(crates.len() >= 10, "members parsed: {crates:?}");
    let documented = documented_crates();
    for (path, name) in &crates {
        let Some((doc_path, kind)) = documented.get(name) else {
            panic!("docs/architecture.md's crate table has no row for `{name}` ({path})");
        };
        assert_eq!(doc_path, path, "the path of `{name}` in the crate table");
        assert!(
            ["deployable", "library", "dev tool"].contains(&kind.as_str()),
            "`{name}`: kind `{kind}` is not deployable, library or dev tool"
        );
    }
    let names: Vec<&String> = crates.values().collect();
    for name in documented.keys() {
        assert!(
            names.contains(&name),
            "the crate table names `{name}`, which is not a workspace member"
        );
    }
}

#[test]
fn the_readme_layout_names_every_crate() {
    let readme = read(&root().join("README.md"));
    let layout = readme
        .split_once("## Layout")
        .map(|(_, rest)| rest)
        .expect("a Layout section in the README");
    for (path, name) in workspace_crates() {
        assert!(
            layout.contains(&format!("`{path}`")),
            "README's layout does not name `{path}` ({name})"
        );
    }
}

/// Deployables, and the dev tools that talk to them (the CLI, the load test), link libraries
/// only: what two of them share lives in a library. Only the end-to-end tests (which test
/// across crates) and `apex-tools` (whose benchmarks and fuzzer drive services' internals)
/// may link a deployable; a dev-only or feature-gated dependency is not a link.
#[test]
fn only_the_tests_and_the_tools_depend_on_a_deployable() {
    const MAY_LINK_DEPLOYABLES: [&str; 2] = ["apex-e2e", "apex-tools"];
    let crates = workspace_crates();
    let documented = documented_crates();
    let deployables: Vec<&String> = documented
        .iter()
        .filter(|(_, (_, kind))| kind == "deployable")
        .map(|(name, _)| name)
        .collect();
    for (path, name) in &crates {
        if MAY_LINK_DEPLOYABLES.contains(&name.as_str()) {
            continue;
        }
        let manifest = read(&root().join(path).join("Cargo.toml"));
        let dependencies = manifest
            .split_once("[dependencies]")
            .map(|(_, rest)| rest.split("\n[").next().unwrap_or_default())
            .unwrap_or_default();
        for other in &deployables {
            if *other == name {
                continue;
            }
            let linked = dependencies.lines().any(|l| {
                let key = l.split(['=', '.']).next().unwrap_or_default().trim();
                key == other.as_str() && !l.contains("optional = true")
            });
            assert!(
                !linked,
                "{name} depends on the deployable {other}: move what they share into a library"
            );
        }
    }
}
