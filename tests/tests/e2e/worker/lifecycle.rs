//! The worker process: shutdown on SIGTERM with in-flight work finished, reconnection after
//! a server restart, metrics, and refusal of bad configuration.

use std::time::{Duration, Instant};

use super::{DevServer, WorkerProc, history, start, unique_queue, wait_activity_started};
use apex_worker::greeting::GreetingInput;
use temporalio_client::{WorkflowDescribeOptions, WorkflowGetResultOptions};
use temporalio_common::protos::temporal::api::{
    enums::v1::WorkflowExecutionStatus, history::v1::history_event::Attributes,
};

#[tokio::test]
async fn sigterm_lets_the_in_flight_activity_finish_then_exits_cleanly() {
    let Some(_tools) = apex_e2e::tools() else {
        return;
    };
    let server = DevServer::start();
    let client = server.client().await;
    let queue = unique_queue("drain");
    let mut worker = WorkerProc::spawn(&server.address(), &queue);
    worker.wait_for_line("worker polling", Duration::from_secs(60));

    let input = GreetingInput {
        name: "Drain".into(),
        fail_first_attempts: 0,
        delay_ms: 2_000,
    };
    let handle = start(&client, &queue, input).await;
    wait_activity_started(&handle).await;

    worker.sigterm();
    worker.wait_for_line("worker draining", Duration::from_secs(10));
    let status = worker.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "worker exit status {status:?}");

    let events = history(&handle).await;
    assert!(
        events
            .iter()
            .any(|a| matches!(a, Attributes::ActivityTaskCompletedEventAttributes(_))),
        "the in-flight activity completed before the worker exited"
    );
    assert!(!events.iter().any(|a| matches!(
        a,
        Attributes::ActivityTaskFailedEventAttributes(_)
            | Attributes::ActivityTaskTimedOutEventAttributes(_)
    )));

    // The workflow resumes on the next worker.
    let _next = WorkerProc::spawn(&server.address(), &queue);
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("result");
    assert_eq!(result, "Hello, Drain!");
}

#[tokio::test]
async fn worker_reconnects_when_the_server_comes_back_after_a_restart() {
    let Some(_tools) = apex_e2e::tools() else {
        return;
    };
    let mut server = DevServer::start();
    let client = server.client().await;
    let queue = unique_queue("restart");
    let worker = WorkerProc::spawn(&server.address(), &queue);
    worker.wait_for_line("worker polling", Duration::from_secs(60));
    let before = start(&client, &queue, GreetingInput::named("Before")).await;
    assert_eq!(
        before
            .get_result(WorkflowGetResultOptions::default())
            .await
            .expect("result"),
        "Hello, Before!"
    );

    server.restart();
    let client = server.client().await;
    let after = start(&client, &queue, GreetingInput::named("After")).await;
    let result = tokio::time::timeout(
        Duration::from_secs(120),
        after.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("worker resumed polling after the restart")
    .expect("result");
    assert_eq!(result, "Hello, After!");
    let desc = after
        .describe(WorkflowDescribeOptions::default())
        .await
        .expect("describe");
    assert_eq!(
        desc.raw()
            .workflow_execution_info
            .as_ref()
            .map(|i| i.status),
        Some(WorkflowExecutionStatus::Completed as i32)
    );
}

#[tokio::test]
async fn worker_waits_for_a_server_that_is_not_up_yet() {
    let Some(_tools) = apex_e2e::tools() else {
        return;
    };
    // Nothing listens on this port until the server starts.
    let mut server = DevServer::start();
    server.stop();
    let queue = unique_queue("late");
    let worker = WorkerProc::spawn(&server.address(), &queue);
    worker.wait_for_line("temporal unreachable", Duration::from_secs(30));
    server.restart();
    worker.wait_for_line("worker polling", Duration::from_secs(90));
    let client = server.client().await;
    let handle = start(&client, &queue, GreetingInput::named("Late")).await;
    assert_eq!(
        handle
            .get_result(WorkflowGetResultOptions::default())
            .await
            .expect("result"),
        "Hello, Late!"
    );
}

#[tokio::test]
async fn worker_serves_the_sdk_metrics_and_its_own() {
    let Some(_tools) = apex_e2e::tools() else {
        return;
    };
    let server = DevServer::start();
    let client = server.client().await;
    let queue = unique_queue("metrics");
    let worker = WorkerProc::spawn(&server.address(), &queue);
    worker.wait_for_line("worker polling", Duration::from_secs(60));
    let handle = start(&client, &queue, GreetingInput::named("Metrics")).await;
    handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("result");

    let url = format!("http://127.0.0.1:{}/metrics", worker.metrics_port);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = reqwest::get(&url)
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body");
        // The SDK's metrics and the worker's own, on one port.
        let own = body.lines().any(|l| {
            l.starts_with("apex_workflow_ended_total{")
                && l.contains(r#"status="completed""#)
                && l.contains(r#"workflow="GreetingWorkflow""#)
        });
        if body.contains("temporal_activity_execution_latency") && body.contains(&queue) && own {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no activity metrics for {queue}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn bad_configuration_exits_64_listing_every_problem() {
    let out = std::process::Command::new(apex_e2e::bins::bin("apex-worker"))
        .env("TEMPORAL_ROLLOUT", "150")
        .env("APEX_WORKER__TEMPORAL__ADDRESS", "nowhere")
        .env("APEX_WORKER__NO_SUCH_KEY", "1")
        .output()
        .expect("run apex-worker");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("between 0 and 100"), "{stderr}");
    assert!(stderr.contains("temporal.address"), "{stderr}");
    assert!(stderr.contains("no_such_key"), "{stderr}");
}
