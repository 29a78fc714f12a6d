//! `apex up --tls` on the running stack: the mesh restarts under mutual TLS with the local
//! CA, `apex status` shows and probes it over TLS, a plaintext client gets nothing, a
//! document goes through the gateway, Temporal, the worker and the services and is found;
//! `apex up --no-tls` puts the stack back as the other tests expect it.

use super::{apex, text};

/// Switches the stack back to plaintext however the test ends.
struct Plaintext;

impl Drop for Plaintext {
    fn drop(&mut self) {
        let back = apex(&["up", "--no-tls"]);
        if !back.status.success() {
            // No panic in a drop: the tests after this one will fail on the stack instead.
            eprintln!("apex up --no-tls failed: {}", text(&back));
        }
    }
}

#[test]
fn apex_up_tls_runs_the_mesh_under_mutual_tls_and_no_tls_switches_back() {
    let Some(stack) = apex_e2e::stack_exclusive() else {
        return;
    };
    let _back = Plaintext;
    let up = apex(&["up", "--tls"]);
    assert!(up.status.success(), "{}", text(&up));

    let status = apex(&["status"]);
    let report = text(&status);
    assert!(status.status.success(), "{report}");
    for stage in ["parser", "extractor", "embedder", "writer"] {
        let line = report
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{stage} ")))
            .unwrap_or_else(|| panic!("no line for {stage}:\n{report}"));
        assert!(
            line.contains("https://127.0.0.1:")
                && line.contains("mutual TLS")
                && line.contains("SERVING"),
            "{line}"
        );
    }

    let parser = stack.settings.parser_port;
    let plain = apex(&[
        "health",
        &format!("http://127.0.0.1:{parser}"),
        "--service",
        "apex.parser.v1.ParserService",
    ]);
    assert!(
        !plain.status.success(),
        "plaintext answered: {}",
        text(&plain)
    );
    let tls = apex(&[
        "health",
        &format!("https://127.0.0.1:{parser}"),
        "--service",
        "apex.parser.v1.ParserService",
    ]);
    assert!(tls.status.success(), "{}", text(&tls));

    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("reefer.txt"),
        "The reefer container TGHU7712345 was plugged in at the Rotterdam terminal by \
         Maasvlakte Cold Logistics.",
    )
    .expect("write");
    let source = apex_e2e::Names::new().source("tls");
    let ingest = apex(&[
        "ingest",
        &dir.path().display().to_string(),
        "--source",
        &source,
        "--wait",
    ]);
    let report = text(&ingest);
    assert!(ingest.status.success(), "{report}");
    assert!(
        report.contains("1 documents: 1 ingested, 0 failed"),
        "{report}"
    );
    let found = apex(&[
        "search",
        "reefer plugged in at Rotterdam",
        "--source",
        &source,
    ]);
    let hits = text(&found);
    assert!(
        found.status.success() && hits.contains("TGHU7712345"),
        "{hits}"
    );
}
