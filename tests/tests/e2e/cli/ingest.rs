//! `apex ingest`, `status`, `search` and `rollout` against the stack `make test` brings up
//! (`apex up`: services, worker, gateway). Each run uses its own source, so it only sees its
//! own documents.

use super::{apex, text};

const NOTE: &str = "Keystone Interstate Freight picked up load L-771204 in Toledo, Ohio on \
March 9, 2026 for delivery to Great Lakes Industrial Supply in Nashville, Tennessee.";

#[test]
fn ingest_waits_reports_each_file_and_names_the_refused_ones() {
    let Some(_stack) = apex_e2e::stack() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("load.txt"), NOTE).expect("write");
    std::fs::write(
        dir.path().join("notes.md"),
        "# Dock notes\n\nThe reefer trailer arrived at dock 4 two hours late.\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("empty.txt"), "").expect("write");
    std::fs::write(dir.path().join("photo.png"), [0x89, b'P', b'N', b'G']).expect("write");
    std::fs::create_dir(dir.path().join(".hidden")).expect("mkdir");
    std::fs::write(dir.path().join(".hidden/skip.txt"), "skipped").expect("write");
    let source = apex_e2e::Names::new().source("cli");
    let dir_arg = dir.path().display().to_string();

    let out = apex(&["ingest", &dir_arg, "--source", &source, "--wait"]);
    let report = text(&out);
    // Two files were refused, so the command fails, and says which and why.
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("4 documents: 2 ingested, 2 failed"),
        "{report}"
    );
    assert!(
        report.contains("empty.txt: 400 (invalid_argument)"),
        "{report}"
    );
    assert!(
        report.contains("photo.png: 415 (unsupported_type)"),
        "{report}"
    );
    assert!(
        !report.contains("skip.txt"),
        "hidden entries are skipped:\n{report}"
    );
    let row = report
        .lines()
        .find(|l| l.starts_with("load.txt"))
        .expect("a row for load.txt");
    assert!(row.contains("completed"), "{row}");
    let id = row
        .split_whitespace()
        .nth(1)
        .expect("document id")
        .to_owned();

    let status = apex(&["status", &id]);
    assert!(status.status.success(), "{}", text(&status));
    let body: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status is JSON");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["source"], source.as_str());

    let found = apex(&["search", "freight picked up in Toledo", "--source", &source]);
    let found_text = text(&found);
    assert!(found.status.success(), "{found_text}");
    assert!(found_text.contains(&id), "{found_text}");

    // Unchanged bytes: the second run ingests nothing new.
    let again = apex(&[
        "ingest",
        &dir.path().join("load.txt").display().to_string(),
        "--source",
        &source,
        "--wait",
    ]);
    let again_text = text(&again);
    assert!(again.status.success(), "{again_text}");
    assert!(again_text.contains("unchanged"), "{again_text}");

    let missing = apex(&["ingest", "/nonexistent/apex-file.pdf"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("no such file"),
        "{}",
        text(&missing)
    );
    let nowhere = apex(&[
        "ingest",
        &dir.path().join("load.txt").display().to_string(),
        "--gateway",
        "http://127.0.0.1:9",
    ]);
    assert!(!nowhere.status.success());
    assert!(
        text(&nowhere).contains("no gateway answers at http://127.0.0.1:9"),
        "{}",
        text(&nowhere)
    );
    let bad = apex(&["status", "not-an-id"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("400 (invalid_argument)"),
        "{}",
        text(&bad)
    );
}

#[test]
fn rollout_is_set_and_read_back_and_bad_percentages_are_refused() {
    let Some(_stack) = apex_e2e::stack() else {
        return;
    };
    let key = format!("apex:test:cli-rollout:{}", std::process::id());
    let set = apex(&["rollout", "--key", &key, "set", "7"]);
    assert!(set.status.success(), "{}", text(&set));
    assert!(text(&set).contains("unset -> 7%"), "{}", text(&set));
    let get = apex(&["rollout", "--key", &key, "get"]);
    assert!(
        text(&get).contains("temporal rollout: 7%"),
        "{}",
        text(&get)
    );
    let zero = apex(&["rollout", "--key", &key, "set", "0"]);
    assert!(
        text(&zero).contains("emergency rollback"),
        "{}",
        text(&zero)
    );
    for bad in ["101", "-3", "half"] {
        let out = apex(&["rollout", "--key", &key, "set", bad]);
        assert!(!out.status.success(), "{bad}");
        assert!(
            text(&out).contains("not a percentage between 0 and 100"),
            "{}",
            text(&out)
        );
    }
    let get = apex(&["rollout", "--key", &key, "get"]);
    assert!(
        text(&get).contains("temporal rollout: 0%"),
        "{}",
        text(&get)
    );
}
