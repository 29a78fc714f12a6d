//! Workflow replay: every recorded history in `tests/histories/` (one or more per workflow
//! type, recorded from the integration tests with `APEX_RECORD_HISTORIES=1`) replays
//! against today's workflow code without non-determinism. A change that reorders, adds or
//! renames a step in a workflow breaks this test, so it must be made version-safe first.

use std::path::PathBuf;

use apex_worker::greeting::GreetingWorkflow;
use apex_worker::ingest::{DocumentDeletionWorkflow, DocumentIngestionWorkflow};
use apex_worker::poll::PollingWorkflow;
use temporalio_client::WorkflowHistory;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_sdk::workflow_replayer::{
    WorkflowReplayError, WorkflowReplayFailure, WorkflowReplayer, WorkflowReplayerOptions,
};

fn replayer() -> WorkflowReplayer {
    let options = WorkflowReplayerOptions::new()
        .register_workflow::<GreetingWorkflow>()
        .expect("greeting")
        .register_workflow::<DocumentIngestionWorkflow>()
        .expect("ingestion")
        .register_workflow::<DocumentDeletionWorkflow>()
        .expect("deletion")
        .register_workflow::<PollingWorkflow>()
        .expect("polling")
        .build();
    WorkflowReplayer::new(options).expect("replayer")
}

fn histories() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/histories");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("tests/histories")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, std::fs::read(&p).expect("read history"))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn every_recorded_history_replays_without_nondeterminism() {
    let all = histories();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "greeting",
        "ingestion-completed",
        "ingestion-unchanged",
        "ingestion-failed-invalid-document",
        "ingestion-embedder-retried",
        "ingestion-before-patches-completed",
        "ingestion-before-patches-unchanged",
        "ingestion-before-patches-failed-invalid-document",
        "ingestion-before-patches-embedder-retried",
        "deletion",
        "polling-plaid",
    ] {
        assert!(
            names.contains(&expected),
            "no recorded history {expected}: {names:?}"
        );
    }
    let replayer = replayer();
    for (name, bytes) in all {
        let history = WorkflowHistory::from_json(&bytes).expect("history JSON");
        if let Err(e) = replayer.replay_workflow(history).await {
            panic!("{name} does not replay: {e:?}");
        }
    }
}

/// The check can fail: an ingestion's history with its first server-side activity renamed
/// (as if the workflow now scheduled a different step) is reported as non-determinism. (The
/// embedding that waited for its embedder is the one server-side activity of a current
/// history; the others run as local activities.)
#[tokio::test]
async fn a_changed_step_order_is_caught_as_nondeterminism() {
    let (_, bytes) = histories()
        .into_iter()
        .find(|(n, _)| n == "ingestion-embedder-retried")
        .expect("ingestion-embedder-retried history");
    let history = WorkflowHistory::from_json(&bytes).expect("history JSON");
    let mut events = history.into_events().await.expect("events");
    let scheduled = events
        .iter_mut()
        .find_map(|e| match e.attributes.as_mut() {
            Some(Attributes::ActivityTaskScheduledEventAttributes(a)) => Some(a),
            _ => None,
        })
        .expect("a scheduled activity");
    if let Some(t) = scheduled.activity_type.as_mut() {
        t.name = "IngestActivities::parse_document".to_owned();
    }
    let tampered: WorkflowHistory =
        temporalio_common::protos::temporal::api::history::v1::History { events }.into();
    match replayer().replay_workflow(tampered).await {
        Err(WorkflowReplayError::Replay(WorkflowReplayFailure::Nondeterminism { .. })) => {}
        other => panic!("expected non-determinism, got {other:?}"),
    }
}
