//! `apex top --once` against the stack: one frame with every section, a row per service.

use super::{apex, text};

#[test]
fn apex_top_prints_a_frame_with_every_section_and_service() {
    let Some(_stack) = apex_e2e::stack() else {
        return;
    };
    // Rows appear once a service has answered a call within the rate window; the other
    // tests' ingestions see to that, and the sections are there regardless.
    let out = apex(&["top", "--once"]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    for section in [
        "documents  in flight",
        "ended ",
        "temporal   backlog",
        "service            calls/s",
        "embedder queue",
        "store ",
        "alerts firing",
    ] {
        assert!(printed.contains(section), "no `{section}`:\n{printed}");
    }
    let bad = apex(&["top", "--once", "--prometheus", "http://127.0.0.1:1"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("cannot reach Prometheus at http://127.0.0.1:1"),
        "{}",
        text(&bad)
    );
}
