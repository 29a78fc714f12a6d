//! Worker versions against a real dev server with two worker builds (`build-a`, `build-b`)
//! of one Worker Deployment: a new version runs next to the old one, `apex worker promote`
//! sends new workflows to it while a running workflow stays on the version it started on,
//! and `apex worker rollback` makes the old version current again without interrupting the
//! workflows still running on the new one.

use std::time::Duration;

use super::{DevServer, WorkerProc, start, unique_queue, wait_activity_started};
use apex_e2e::scale::apex;
use apex_worker::greeting::GreetingInput;
use temporalio_client::{WorkflowDescribeOptions, WorkflowGetResultOptions};

/// The build id of the worker version a workflow runs on.
async fn version_of(handle: &apex_worker::greeting::GreetingHandle) -> String {
    let d = handle
        .describe(WorkflowDescribeOptions::default())
        .await
        .expect("describe");
    d.raw()
        .workflow_execution_info
        .as_ref()
        .and_then(|i| i.versioning_info.as_ref())
        .and_then(|v| v.deployment_version.as_ref())
        .map(|v| v.build_id.clone())
        .unwrap_or_default()
}

fn slow(name: &str) -> GreetingInput {
    GreetingInput {
        name: name.into(),
        delay_ms: 8_000,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_worker_version_runs_beside_the_old_and_a_rollback_interrupts_nothing() {
    let Some(_tools) = apex_e2e::tools() else {
        return;
    };
    let server = DevServer::start();
    let client = server.client().await;
    let queue = unique_queue("versions");
    let deployment = queue.replace('.', "-");
    let worker = |build: &str| {
        WorkerProc::spawn_with(
            &server.address(),
            &queue,
            &[
                ("APEX_WORKER__VERSIONING", "pinned"),
                ("APEX_WORKER__DEPLOYMENT_NAME", &deployment),
                ("APEX_WORKER__TEMPORAL__BUILD_ID", build),
            ],
        )
    };
    let address = server.address();
    let cli = |args: &[&str]| {
        let mut all = vec!["worker"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--temporal", &address, "--deployment", &deployment]);
        apex(&all).unwrap_or_else(|e| panic!("{e}"))
    };

    // The first build: no version is current, so it makes itself current.
    let a = worker("build-a");
    a.wait_for_line("made it the current version", Duration::from_secs(60));
    let one = start(&client, &queue, slow("one")).await;
    wait_activity_started(&one).await;
    assert_eq!(version_of(&one).await, "build-a");

    // The second build beside it: not current until promoted.
    let b = worker("build-b");
    b.wait_for_line("is not the current version", Duration::from_secs(60));
    let promoted = cli(&["promote", "build-b"]);
    assert!(promoted.contains("build-a → build-b"), "{promoted}");
    let two = start(&client, &queue, slow("two")).await;
    wait_activity_started(&two).await;
    assert_eq!(version_of(&two).await, "build-b");
    assert_eq!(version_of(&one).await, "build-a", "pinned: it stays");

    // Rollback: build-a current again; the workflow on build-b goes on there.
    let rolled = cli(&["rollback"]);
    assert!(rolled.contains("build-b → build-a"), "{rolled}");
    let status = cli(&["status"]);
    assert!(
        status
            .lines()
            .any(|l| l.contains("build-a") && l.contains("current")),
        "{status}"
    );
    let three = start(&client, &queue, GreetingInput::named("three")).await;
    for (h, name, build) in [
        (&one, "one", "build-a"),
        (&two, "two", "build-b"),
        (&three, "three", "build-a"),
    ] {
        let greeting = h
            .get_result(WorkflowGetResultOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(greeting.contains(name), "{greeting}");
        assert_eq!(version_of(h).await, build, "{name}");
    }

    // Bad requests say why.
    let err = apex(&[
        "worker",
        "promote",
        "build-z",
        "--temporal",
        &server.address(),
        "--deployment",
        &deployment,
    ])
    .expect_err("unknown build");
    assert!(err.to_string().contains("is not a version of"), "{err}");
    drop((a, b));
}
