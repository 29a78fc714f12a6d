//! Hello world through a real Temporal dev server and a real worker process.

use std::time::Duration;

use super::{DevServer, WorkerProc, history, start, status, unique_queue, wait_activity_started};
use apex_worker::greeting::{GREET_MAX_ATTEMPTS, GreetingInput, VALIDATION_ERROR};
use temporalio_client::{Client, WorkflowGetResultOptions};
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;

struct Env {
    _server: DevServer,
    _worker: WorkerProc,
    client: Client,
    queue: String,
}

async fn env() -> Env {
    let server = DevServer::start();
    let client = server.client().await;
    let queue = unique_queue("hello");
    let worker = WorkerProc::spawn(&server.address(), &queue);
    worker.wait_for_line("worker polling", Duration::from_secs(60));
    Env {
        _server: server,
        _worker: worker,
        client,
        queue,
    }
}

fn started_attempts(events: &[Attributes]) -> Vec<i32> {
    events
        .iter()
        .filter_map(|a| match a {
            Attributes::ActivityTaskStartedEventAttributes(s) => Some(s.attempt),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn greeting_returns_hello_name_and_its_history_holds_the_activity() {
    let Some(_tools) = apex_e2e::tools() else {
        return;
    };
    let env = env().await;
    let handle = start(&env.client, &env.queue, GreetingInput::named("Ada")).await;
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("result");
    assert_eq!(result, "Hello, Ada!");
    super::record_history(&handle, "greeting").await;

    let events = history(&handle).await;
    let scheduled: Vec<String> = events
        .iter()
        .filter_map(|a| match a {
            Attributes::ActivityTaskScheduledEventAttributes(s) => Some(
                s.activity_type
                    .as_ref()
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    assert!(scheduled[0].contains("greet"), "{scheduled:?}");
    assert!(
        events
            .iter()
            .any(|a| matches!(a, Attributes::ActivityTaskCompletedEventAttributes(_)))
    );
    assert_eq!(started_attempts(&events), vec![1]);

    let status = status(&handle).await;
    assert_eq!(status.status, "completed");
    assert_eq!(status.greeting.as_deref(), Some("Hello, Ada!"));
}

#[tokio::test]
async fn empty_name_fails_with_the_validation_error_after_exactly_one_attempt() {
    let Some(_tools) = apex_e2e::tools() else {
        return;
    };
    let env = env().await;
    for name in ["", "   "] {
        let handle = start(&env.client, &env.queue, GreetingInput::named(name)).await;
        let err = handle
            .get_result(WorkflowGetResultOptions::default())
            .await
            .expect_err("empty name must fail");
        let chain = apex_worker::error_chain(&err);
        assert!(chain.contains("name must not be empty"), "{chain}");

        let events = history(&handle).await;
        assert_eq!(
            started_attempts(&events),
            vec![1],
            "no retry of a validation error"
        );
        let failure = events
            .iter()
            .find_map(|a| match a {
                Attributes::ActivityTaskFailedEventAttributes(f) => f.failure.clone(),
                _ => None,
            })
            .expect("activity failure event");
        assert_eq!(failure.message, "name must not be empty");
        let info = format!("{:?}", failure.failure_info);
        assert!(
            info.contains(VALIDATION_ERROR) && info.contains("non_retryable: true"),
            "{info}"
        );

        let status = status(&handle).await;
        assert_eq!(status.status, "failed");
        assert!(
            status
                .error
                .unwrap_or_default()
                .contains("name must not be empty")
        );
    }
}

#[tokio::test]
async fn transient_failures_are_retried_by_the_policy() {
    let Some(_tools) = apex_e2e::tools() else {
        return;
    };
    let env = env().await;
    let input = GreetingInput {
        name: "Retry".into(),
        fail_first_attempts: 2,
        delay_ms: 0,
    };
    let handle = start(&env.client, &env.queue, input).await;
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("result");
    assert_eq!(result, "Hello, Retry!");
    // Only the last attempt's start is written to history, with its attempt number.
    assert_eq!(started_attempts(&history(&handle).await), vec![3]);

    let input = GreetingInput {
        name: "Never".into(),
        fail_first_attempts: 99,
        delay_ms: 0,
    };
    let handle = start(&env.client, &env.queue, input).await;
    handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect_err("gives up after the maximum attempts");
    assert_eq!(
        started_attempts(&history(&handle).await),
        vec![GREET_MAX_ATTEMPTS as i32]
    );
}

#[tokio::test]
async fn get_status_answers_while_the_activity_runs() {
    let Some(_tools) = apex_e2e::tools() else {
        return;
    };
    let env = env().await;
    let input = GreetingInput {
        name: "Slow".into(),
        fail_first_attempts: 0,
        delay_ms: 3_000,
    };
    let handle = start(&env.client, &env.queue, input).await;
    wait_activity_started(&handle).await;
    let running = status(&handle).await;
    assert_eq!(running.status, "running");
    assert_eq!(running.name, "Slow");
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("result");
    assert_eq!(result, "Hello, Slow!");
}

/// Runs `temporal` against the env's server; returns (success, stdout + stderr).
fn temporal(env: &Env, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(super::temporal_cli())
        .args(args)
        .args([
            "--address",
            env._server.address().trim_start_matches("http://"),
        ])
        .output()
        .expect("the temporal CLI runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn an_input_no_workflow_can_decode_fails_the_workflow_at_once_with_the_reason() {
    let Some(_tools) = apex_e2e::tools() else {
        return;
    };
    let env = env().await;
    // What another Temporal client might send: a string, a list or a number where an
    // object belongs, and bytes that are not JSON at all.
    let cases: [(&str, &str, &[&str], &str); 4] = [
        ("GreetingWorkflow", r#""Ada""#, &[], "invalid type: string"),
        (
            "DocumentIngestionWorkflow",
            "[1, 2]",
            &[],
            "does not decode as IngestInput",
        ),
        (
            "DocumentDeletionWorkflow",
            "42",
            &[],
            "invalid type: integer",
        ),
        (
            "GreetingWorkflow",
            "Ada",
            &["--input-meta", "encoding=binary/plain"],
            "`binary/plain`",
        ),
    ];
    for (workflow, input, extra, expected) in cases {
        let id = format!("bad-input-{}", uuid::Uuid::new_v4().simple());
        let mut args = vec![
            "workflow",
            "execute",
            "--type",
            workflow,
            "--task-queue",
            &env.queue,
            "--workflow-id",
            &id,
            "--input",
            input,
            // A bound for the test only: a workflow task retried forever would end here,
            // as a timeout, instead of failing with the reason.
            "--execution-timeout",
            "90s",
        ];
        args.extend_from_slice(extra);
        let (ok, printed) = temporal(&env, &args);
        assert!(!ok, "{workflow} {input}: {printed}");
        assert!(
            printed.contains("invalid workflow input") && printed.contains(expected),
            "{workflow} {input}: {printed}"
        );
        assert!(
            printed.contains("expected one JSON object like {"),
            "the expected shape: {printed}"
        );
        let (shown, history) = temporal(
            &env,
            &["workflow", "show", "--workflow-id", &id, "-o", "json"],
        );
        assert!(shown, "{history}");
        let flat = history.to_lowercase().replace('_', "");
        assert!(flat.contains("workflowexecutionfailed"), "{history}");
        assert!(
            !flat.contains("workflowtaskfailed") && !flat.contains("timedout"),
            "the first task does not fail: {history}"
        );
        assert!(
            history.contains("\"nonRetryable\": true") || history.contains("\"nonRetryable\":true"),
            "{history}"
        );
    }
}
