//! `apex ingest` starts the document's trace and `apex trace` prints it from the viewer:
//! the CLI's own span at the root, the gateway's request under it, the workflow and every
//! stage below, and the link to the viewer's page.

use super::{apex, text};

#[test]
fn apex_ingest_starts_the_trace_and_apex_trace_prints_its_tree() {
    let Some(_stack) = apex_e2e::stack() else {
        return;
    };
    let names = apex_e2e::Names::new();
    let source = names.source("cli-trace");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("trace-note.txt");
    std::fs::write(
        &file,
        format!(
            "Trace check {source}: Great Lakes Industrial Supply received load L-771204 \
             from Keystone Interstate Freight in Nashville, Tennessee."
        ),
    )
    .expect("write");
    let out = apex(&[
        "ingest",
        &file.display().to_string(),
        "--source",
        &source,
        "--wait",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let id = text(&out)
        .lines()
        .find(|l| l.starts_with("trace-note.txt"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("a row with the document id")
        .to_owned();

    let printed = text(&apex(&["trace", &id, "--wait-secs", "180"]));
    let lines: Vec<&str> = printed.lines().collect();
    assert!(lines[0].starts_with("trace "), "{printed}");
    // The tree, by indentation: the CLI's span is the root, the request its child, and the
    // workflow's stages further down.
    let depth = |name: &str| {
        lines
            .iter()
            .find(|l| l.trim_start().starts_with(name))
            .map(|l| (l.len() - l.trim_start().len()) / 2)
            .unwrap_or_else(|| panic!("no `{name}` in:\n{printed}"))
    };
    assert_eq!(depth("apex ingest "), 0, "{printed}");
    assert_eq!(depth("POST /v1/documents"), 1, "{printed}");
    assert_eq!(
        depth("StartWorkflow:DocumentIngestionWorkflow"),
        2,
        "{printed}"
    );
    assert_eq!(
        depth("RunWorkflow:DocumentIngestionWorkflow"),
        3,
        "{printed}"
    );
    for stage in ["fetch ", "parse ", "extract ", "embed ", "write "] {
        assert_eq!(depth(stage), 6, "`{stage}`:\n{printed}");
    }
    assert!(printed.contains("write postgres"), "{printed}");
    assert!(
        printed.contains("view it: http://127.0.0.1:6006/redirects/traces/"),
        "{printed}"
    );

    // A document the viewer never saw: a clear answer, and a failure exit.
    let unknown = apex(&[
        "trace",
        "00000000-0000-5000-8000-000000000000",
        "--wait-secs",
        "1",
    ]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("no trace found"),
        "{}",
        text(&unknown)
    );
}
