//! An ingestion's round trips through the server: every step of a document that meets no
//! failure but the write runs as a local activity inside the first workflow task, the write
//! as a server-side activity (its completion in the history before anything could check the
//! document again), and the status the gateway reads is the memo the workflow keeps (no
//! query to the worker).

use apex_common::blob::BlobStore;
use apex_ingestion::workflows::STATUS_MEMO;

use super::*;

/// The history's events of one kind.
fn count(events: &[Attributes], kind: fn(&Attributes) -> bool) -> usize {
    events.iter().filter(|a| kind(a)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_runs_its_steps_in_the_first_task_its_write_in_a_second_and_its_memo_is_its_result()
 {
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
    let mut steps: Vec<&str> = s.steps.iter().map(|r| r.step.as_str()).collect();
    // Extraction and embedding run side by side: either may be recorded first.
    steps[3..5].sort_unstable();
    assert_eq!(
        steps,
        ["fetch", "check", "parse", "embed", "extract", "write"],
        "every step recorded"
    );
    assert!(
        s.steps.iter().all(|r| r.attempts == 1),
        "each step answered at its first attempt: {:?}",
        s.steps
    );

    let events = history(&handle).await;
    for activity in [
        "fetch_document",
        "check_document",
        "parse_document",
        "extract_entities",
        "generate_embeddings",
    ] {
        assert_eq!(scheduled(&events, activity), 0, "{activity} ran locally");
    }
    assert_eq!(
        scheduled(&events, "write_to_databases"),
        1,
        "written server-side"
    );
    let markers = count(&events, |a| {
        matches!(a, Attributes::MarkerRecordedEventAttributes(_))
    });
    assert_eq!(markers, 6, "five local activities and one patch");
    let tasks = count(&events, |a| {
        matches!(a, Attributes::WorkflowTaskCompletedEventAttributes(_))
    });
    assert_eq!(
        tasks, 2,
        "the steps to the write, then the write's completion"
    );
    // `Status` is written as the ingestion starts and as it ends, not at each step.
    let status_writes = count(&events, |a| {
        matches!(a, Attributes::UpsertWorkflowSearchAttributesEventAttributes(u)
            if u.search_attributes.as_ref().is_some_and(|s| s.indexed_fields.contains_key("Status")))
    });
    assert_eq!(status_writes, 2);

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
