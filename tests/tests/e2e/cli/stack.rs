//! Smoke tests of the local stack that `make test` brings up (`apex up`): everything is
//! reachable, `doctor` is green and names the piece that is missing, `up` is idempotent, and
//! the hello-world workflow runs end to end through the stack's own worker.
//!
//! One test function on purpose: it stops and restarts a component, which must not race
//! with other checks of the same stack.

use std::process::Command;

use super::{apex, text};

#[test]
fn the_local_stack_is_healthy_self_diagnosing_and_restartable() {
    let Some(_stack) = apex_e2e::stack_exclusive() else {
        return;
    };
    let up = apex(&["up"]);
    assert!(up.status.success(), "apex up failed:\n{}", text(&up));

    // Running `up` again changes nothing.
    let again = apex(&["up"]);
    let again_text = text(&again);
    assert!(again.status.success(), "{again_text}");
    for name in [
        "postgres",
        "redis",
        "graph",
        "vectors",
        "temporal",
        "parser",
        "extractor",
        "embedder",
        "writer",
        "worker",
        "gateway",
        "prometheus",
    ] {
        assert!(
            again_text
                .lines()
                .any(|l| l.contains(name) && l.contains("already running")),
            "{name} not reported as already running:\n{again_text}"
        );
    }

    let doctor = apex(&["doctor"]);
    let report = text(&doctor);
    assert!(doctor.status.success(), "{report}");
    assert!(!report.contains("[FAIL]"), "{report}");
    for line in [
        "temporal reachable",
        "postgres reachable",
        "redis reachable",
        "graph reachable",
        "vectors reachable",
        "temporal search attributes",
    ] {
        assert!(
            report.contains(&format!("[ok  ] {line}")),
            "{line} missing:\n{report}"
        );
    }

    let hello = apex(&["hello", "Smoke"]);
    let hello_text = text(&hello);
    assert!(hello.status.success(), "{hello_text}");
    assert!(hello_text.contains("Hello, Smoke!"), "{hello_text}");
    assert!(
        hello_text.contains("http://127.0.0.1:"),
        "UI link printed: {hello_text}"
    );

    // Stop one piece: doctor fails and says which, with the fix.
    let down = apex(&["down", "redis"]);
    assert!(down.status.success(), "{}", text(&down));
    let doctor = apex(&["doctor"]);
    let report = text(&doctor);
    assert!(
        !doctor.status.success(),
        "doctor must fail with redis stopped:\n{report}"
    );
    let failed: Vec<&str> = report.lines().filter(|l| l.contains("[FAIL]")).collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert!(failed[0].contains("redis reachable"), "{report}");
    assert!(report.contains("fix: run `apex up`"), "{report}");

    let status = apex(&["status"]);
    assert!(!status.status.success());
    assert!(
        text(&status)
            .lines()
            .any(|l| l.contains("redis") && l.contains("down"))
    );

    let up = apex(&["up", "redis"]);
    assert!(up.status.success(), "{}", text(&up));
    let doctor = apex(&["doctor"]);
    assert!(doctor.status.success(), "{}", text(&doctor));
}

#[test]
fn unknown_component_names_are_refused_with_the_known_ones() {
    let out = apex(&["logs", "mongodb"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("unknown component `mongodb`") && t.contains("temporal"),
        "{t}"
    );
}

#[test]
fn bad_stack_configuration_exits_64() {
    let out = Command::new(apex_e2e::bins::bin("apex"))
        .arg("status")
        .env("APEX_STACK__REDIS_PORT", "6380")
        .output()
        .expect("run apex");
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out).contains("graph_port and redis_port both use port 6380")
            || text(&out).contains("both use port 6380"),
        "{}",
        text(&out)
    );
}
