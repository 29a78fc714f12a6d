//! A workflow that moves to another worker mid-flight (the first one stopped) is replayed
//! there; its trace must stay one trace, with nothing exported twice: the OpenTelemetry
//! plugin starts no span while history replays, and the replay-safe id generator gives the
//! new worker's spans the trace (and parent ids) of the first run. (The first worker is
//! stopped with SIGTERM, which flushes its spans; a SIGKILLed process loses the spans still
//! in its export buffer, up to the batch interval of 5 s.)

use std::collections::BTreeMap;

use apex_common::viewer::{SpanTree, Viewer};

use super::*;

/// Each activity and how often the workflow calls it: once each, but the embedding twice,
/// its first attempt in the worker (a local activity, failing: no embedder), then as a
/// server-side activity, retried until the embedder is back.
const CALLS: [(&str, usize); 6] = [
    ("fetch_document", 1),
    ("check_document", 1),
    ("parse_document", 1),
    ("generate_embeddings", 2),
    ("extract_entities", 1),
    ("write_to_databases", 1),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_replayed_on_another_worker_stays_one_trace_with_no_span_twice() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let otlp = stack.settings.otlp_endpoint();
    let mut env = env_with(
        &stack,
        &[("APEX_WORKER__TELEMETRY__OTLP_ENDPOINT", otlp.as_str())],
    )
    .await;
    let addr = env.stop_embedder().await;
    let input = env.input("replayed.txt", TEXT.as_bytes());
    let workflow_id = apex_ingestion::input::ingestion_workflow_id(&input.resolved_document_id());
    let handle = env.start(input).await;
    // The first worker has scheduled the embedding (which fails: no embedder) ...
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let described = handle
            .describe(WorkflowDescribeOptions::default())
            .await
            .expect("describe");
        let embedding = described.raw().pending_activities.iter().any(|p| {
            p.activity_type
                .as_ref()
                .is_some_and(|t| t.name.ends_with("generate_embeddings"))
        });
        if embedding {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the embedding was never scheduled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... then stops; the second worker replays the history and finishes the ingestion.
    env.replace_worker();
    env.restart_embedder(addr).await;
    let s = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("completes on the second worker");
    assert_eq!(s.status, COMPLETED);

    let viewer = Viewer::new(&stack.traces_url()).expect("viewer");
    let deadline = Instant::now() + Duration::from_secs(180);
    let tree = loop {
        let spans = viewer
            .spans_with("temporalWorkflowID", &workflow_id)
            .await
            .expect("the viewer answers");
        let trace_ids: Vec<String> = spans.iter().map(|s| s.context.trace_id.clone()).collect();
        let tree = match trace_ids.first() {
            Some(t) => SpanTree::new(viewer.trace(t).await.expect("trace")),
            None => SpanTree::new(Vec::new()),
        };
        let written = tree
            .named("StartActivity:IngestActivities::write_to_databases")
            .count();
        if written > 0 {
            assert!(
                trace_ids.iter().all(|t| *t == trace_ids[0]),
                "the workflow's spans are in several traces: {trace_ids:?}"
            );
            break tree;
        }
        assert!(
            Instant::now() < deadline,
            "the second worker's spans never arrived:\n{}",
            tree.render()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut scheduled: BTreeMap<&str, usize> = BTreeMap::new();
    for span in &tree.spans {
        if let Some(activity) = span.name.strip_prefix("StartActivity:IngestActivities::") {
            *scheduled.entry(activity).or_default() += 1;
        }
    }
    for (activity, calls) in CALLS {
        assert_eq!(
            scheduled.get(activity),
            Some(&calls),
            "{activity} scheduled once, exported once: {scheduled:?}\n{}",
            tree.render()
        );
    }
    // The activities the second worker scheduled hang under the same workflow span as the
    // first worker's (its id replayed), even if that span itself was never exported.
    let parents: Vec<Option<String>> = tree
        .spans
        .iter()
        .filter(|s| s.name.starts_with("StartActivity:"))
        .map(|s| s.parent_id.clone())
        .collect();
    assert!(
        parents.iter().all(|p| *p == parents[0] && p.is_some()),
        "StartActivity spans under different parents: {parents:?}\n{}",
        tree.render()
    );
    env.stop().await;
}
