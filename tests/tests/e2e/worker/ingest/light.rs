//! An ingestion's round trips through the server: an uploaded document's fetch and check run
//! as local activities inside the first workflow task, and the status the gateway reads is
//! the memo the workflow keeps (no query to the worker).

use apex_common::blob::BlobStore;
use apex_ingestion::workflows::STATUS_MEMO;

use super::*;

/// The history's events of one kind.
fn count(events: &[Attributes], kind: fn(&Attributes) -> bool) -> usize {
    events.iter().filter(|a| kind(a)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_fetched_and_checked_in_the_first_task_and_its_memo_is_its_result() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let env = env(&stack).await;
    // What the gateway does with an upload: the bytes into the blob store, `blob:<key>`.
    let blobs = BlobStore::open(&env.services.blob_url()).expect("blob store");
    let blob = blobs
        .put(
            "uploads",
            "text/plain",
            bytes::Bytes::from_static(TEXT.as_bytes()),
        )
        .await
        .expect("put");
    let mut input = env.input("note.txt", TEXT.as_bytes());
    input.location = format!("blob:{}", blob.key);
    let handle = env.start(input).await;
    let s = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("ingestion result");
    assert_eq!(s.status, COMPLETED, "{s:?}");
    let steps: Vec<&str> = s.steps.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(
        steps[..2],
        ["fetch", "check"],
        "both first steps recorded: {steps:?}"
    );

    let events = history(&handle).await;
    assert_eq!(scheduled(&events, "fetch_document"), 0, "fetched locally");
    assert_eq!(scheduled(&events, "check_document"), 0, "checked locally");
    assert_eq!(scheduled(&events, "parse_document"), 1);
    let markers = count(&events, |a| {
        matches!(a, Attributes::MarkerRecordedEventAttributes(_))
    });
    assert!(
        markers >= 3,
        "two local activity markers and the patch: {markers}"
    );
    // Started (fetch, check, schedule the parse), parsed, extracted, embedded (the two may
    // land in one task), written.
    let tasks = count(&events, |a| {
        matches!(a, Attributes::WorkflowTaskCompletedEventAttributes(_))
    });
    assert!((4..=5).contains(&tasks), "{tasks} workflow tasks");

    // The memo the gateway reads holds the result, to the step.
    let description = handle
        .describe(WorkflowDescribeOptions::default())
        .await
        .expect("describe");
    let memo = description
        .memo()
        .get::<IngestStatus>(STATUS_MEMO)
        .expect("memo decodes")
        .expect("memo present");
    assert_eq!(memo, s);
    env.stop().await;
}
