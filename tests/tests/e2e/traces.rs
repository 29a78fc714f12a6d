//! One trace from the HTTP request to the stores, read back from the stack's trace viewer
//! (Arize Phoenix, `apex up`'s `traces`): through the stack's gateway on the Temporal path
//! and on the legacy path, and for a workflow the Temporal CLI started with a
//! `_tracer-data` header. Each test opens the trace itself (a `traceparent` it made up, as
//! an upstream caller would send) and then asserts the tree the viewer holds under that
//! trace id: every span in it, each under the right parent.

use std::time::{Duration, Instant};

use apex_common::viewer::{SpanTree, Viewer};
use apex_e2e::{Names, Stack};
use apex_gateway::shared::Shared;
use reqwest::StatusCode;
use serde_json::Value;

/// The activities of an ingestion, with the stage span each runs and the service call it
/// makes (`None`: it makes none).
const ACTIVITIES: [(&str, &str, Option<&str>); 6] = [
    ("fetch_document", "fetch", None),
    (
        "check_document",
        "check",
        Some("apex.writer.v1.WriterService/InspectDocument"),
    ),
    (
        "parse_document",
        "parse",
        Some("apex.parser.v1.ParserService/ParseBlob"),
    ),
    (
        "extract_entities",
        "extract",
        Some("apex.extractor.v1.ExtractorService/ExtractBlob"),
    ),
    (
        "generate_embeddings",
        "embed",
        Some("apex.embedder.v1.EmbedderService/EmbedBlob"),
    ),
    (
        "write_to_databases",
        "write",
        Some("apex.writer.v1.WriterService/WriteDocument"),
    ),
];

/// A made-up caller's trace: `(trace id, span id, traceparent)`.
pub(crate) fn caller_trace() -> (String, String, String) {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let header = format!("00-{trace}-{span}-01");
    (trace, span, header)
}

/// A document of its own for each test.
fn note(names: &Names) -> Vec<u8> {
    format!(
        "Trace note {}: container MSCU4417820 discharged at the Port of Genoa on 2026-03-05; \
         Keystone Interstate Freight hauls it to Milan for Harbor Point Beverages.",
        names.source("doc")
    )
    .into_bytes()
}

/// Uploads through the stack's gateway inside the caller's trace; returns the answer.
pub(crate) async fn upload(stack: &Stack, names: &Names, source: &str, traceparent: &str) -> Value {
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(note(names))
                .file_name("trace-note.txt")
                .mime_str("text/plain")
                .expect("mime"),
        )
        .text("source", source.to_owned());
    let response = stack
        .gateway_http()
        .build()
        .expect("client")
        .post(format!("{}/v1/documents", stack.gateway_url()))
        .header("traceparent", traceparent)
        .multipart(form)
        .send()
        .await
        .expect("the stack's gateway answers");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json().await.expect("json")
}

/// Polls the document's status at the gateway until it has ended.
pub(crate) async fn wait_done(stack: &Stack, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    let http = stack.gateway_http().build().expect("client");
    loop {
        let body: Value = http
            .get(format!("{}/v1/documents/{id}", stack.gateway_url()))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .unwrap_or(Value::Null);
        if matches!(
            body["status"].as_str(),
            Some("completed" | "unchanged" | "failed")
        ) {
            return body;
        }
        assert!(Instant::now() < deadline, "not done in time: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The trace as the viewer holds it once `complete` says every expected span is there
/// (spans arrive in batches from six processes, and the viewer digests them behind the
/// exporters: under a busy test run, tens of seconds), or the reason it is not after three
/// minutes.
async fn trace_when(
    stack: &Stack,
    trace_id: &str,
    complete: impl Fn(&SpanTree) -> Result<(), String>,
) -> SpanTree {
    let viewer = Viewer::new(&stack.traces_url()).expect("viewer");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let tree = SpanTree::new(viewer.trace(trace_id).await.expect("the viewer answers"));
        match complete(&tree) {
            Ok(()) => return tree,
            Err(why) => assert!(
                Instant::now() < deadline,
                "trace {trace_id} incomplete: {why}\n{}",
                tree.render()
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The one span named `name` whose parent is `parent` (or, for `None`, one whose parent
/// was not exported: the caller's).
fn child(tree: &SpanTree, parent: Option<usize>, name: &str) -> Result<usize, String> {
    let found: Vec<usize> = tree
        .named(name)
        .filter(|i| tree.parent_of(*i) == parent)
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!(
            "no `{name}` under {}",
            parent.map_or("the caller".to_owned(), |p| format!(
                "`{}`",
                tree.spans[p].name
            ))
        )),
        many => Err(format!("{} `{name}` spans, one expected", many.len())),
    }
}

fn expect_service(tree: &SpanTree, i: usize, service: &str) -> Result<(), String> {
    let got = tree.spans[i].service();
    if got == service {
        Ok(())
    } else {
        Err(format!(
            "`{}` came from {got}, not {service}",
            tree.spans[i].name
        ))
    }
}

/// A stage span, its client call and the service's handler, and (for the writer's
/// `WriteDocument`) the four stores' spans under the handler, (for the embedder's) the
/// batch inference.
fn stage_tree(
    tree: &SpanTree,
    parent: usize,
    stage: &str,
    call: Option<&str>,
    caller: &str,
    document_id: &str,
) -> Result<(), String> {
    let s = child(tree, Some(parent), stage)?;
    expect_service(tree, s, caller)?;
    let Some(call) = call else { return Ok(()) };
    if stage != "check" && tree.spans[s].attr("apex.document_id").as_deref() != Some(document_id) {
        return Err(format!("`{stage}` does not name document {document_id}"));
    }
    let client = child(tree, Some(s), call)?;
    expect_service(tree, client, caller)?;
    let server = child(tree, Some(client), call)?;
    let service = match call.split('.').nth(1) {
        Some(name) => format!("apex-{name}"),
        None => return Err(format!("unexpected call {call}")),
    };
    expect_service(tree, server, &service)?;
    if tree.spans[server].attr("rpc.grpc.status_code").as_deref() != Some("0") {
        return Err(format!("`{call}` did not end OK"));
    }
    if call.ends_with("/WriteDocument") {
        let stores: Vec<String> = tree.children.get(&server).map_or_else(Vec::new, |c| {
            c.iter()
                .filter_map(|i| tree.spans[*i].attr("db.system.name"))
                .collect()
        });
        for system in ["postgresql", "redis", "qdrant"] {
            if !stores.iter().any(|s| s == system) {
                return Err(format!("no {system} span under WriteDocument: {stores:?}"));
            }
        }
        if !stores.iter().any(|s| s == "falkordb" || s == "neo4j") {
            return Err(format!("no graph span under WriteDocument: {stores:?}"));
        }
    }
    if call.ends_with("/EmbedBlob") {
        let wait = child(tree, Some(server), "wait for batches")?;
        child(tree, Some(wait), "inference")?;
        child(tree, Some(server), "tokenize")?;
    }
    Ok(())
}

/// The workflow's part: RunWorkflow under `start`, each activity's StartActivity and
/// RunActivity under it, and each activity's stage under its RunActivity.
fn workflow_tree(tree: &SpanTree, start: Option<usize>, document_id: &str) -> Result<(), String> {
    let run = child(tree, start, "RunWorkflow:DocumentIngestionWorkflow")?;
    expect_service(tree, run, "apex-worker")?;
    for (activity, stage, call) in ACTIVITIES {
        let scheduled = child(
            tree,
            Some(run),
            &format!("StartActivity:IngestActivities::{activity}"),
        )?;
        let ran = child(
            tree,
            Some(scheduled),
            &format!("RunActivity:IngestActivities::{activity}"),
        )?;
        stage_tree(tree, ran, stage, call, "apex-worker", document_id)?;
    }
    Ok(())
}

/// The gateway's request span, under the caller's span.
fn request_span(tree: &SpanTree, caller_span: &str) -> Result<usize, String> {
    let http = child(tree, None, "POST /v1/documents")?;
    expect_service(tree, http, "apex-gateway")?;
    if tree.spans[http].parent_id.as_deref() != Some(caller_span) {
        return Err("the request span is not the caller's child".to_owned());
    }
    if tree.trace_ids().len() != 1 {
        return Err(format!("several trace ids: {:?}", tree.trace_ids()));
    }
    Ok(http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_on_the_temporal_path_is_one_trace_from_the_request_to_the_stores() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let names = Names::new();
    let (trace_id, caller_span, traceparent) = caller_trace();
    let accepted = upload(&stack, &names, &names.source("trace"), &traceparent).await;
    let id = accepted["document_id"].as_str().expect("id").to_owned();
    if accepted["path"] != "temporal" {
        // The stack's rollout sends this document to the legacy path; the legacy test
        // covers that tree.
        eprintln!("the stack's rollout sent {id} to the legacy path: {accepted}");
        return;
    }
    assert_eq!(wait_done(&stack, &id).await["status"], "completed");
    let tree = trace_when(&stack, &trace_id, |tree| {
        let http = request_span(tree, &caller_span)?;
        if tree.spans[http].attr("apex.document_id").as_deref() != Some(id.as_str()) {
            return Err("the request span does not name the document".to_owned());
        }
        let start = child(tree, Some(http), "StartWorkflow:DocumentIngestionWorkflow")?;
        workflow_tree(tree, Some(start), &id)
    })
    .await;
    println!("{}", tree.render());
    // The processes' log lines about this document carry its trace and their span.
    for (component, message) in [
        ("gateway", "upload accepted"),
        ("writer", "document written"),
    ] {
        let line = logged(&stack, component, &trace_id, message);
        let span = line["span_id"].as_str().unwrap_or_default();
        assert!(
            tree.spans.iter().any(|s| s.context.span_id == span),
            "the {component}'s line names span {span}, not one of the trace: {line}"
        );
    }
}

/// The JSON line of `component`'s log written in trace `trace_id` with `message`.
fn logged(stack: &Stack, component: &str, trace_id: &str, message: &str) -> Value {
    let path = stack
        .settings
        .state()
        .join("logs")
        .join(format!("{component}.log"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["trace_id"] == trace_id && l["message"] == message)
        .unwrap_or_else(|| {
            panic!(
                "no `{message}` line of trace {trace_id} in {}",
                path.display()
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_on_the_legacy_path_is_the_same_tree_without_temporal() {
    // It moves the stack's rollout to 0 % for its upload: no other test may run meanwhile.
    let Some(stack) = apex_e2e::stack_exclusive() else {
        return;
    };
    let rollout = Shared::connect(
        &stack.redis_url(),
        apex_ingestion::rollout::ROLLOUT_KEY,
        Duration::from_secs(600),
    )
    .await
    .expect("redis");
    let before = rollout.rollout().await.expect("rollout");
    rollout.set_rollout(0).await.expect("set");
    let names = Names::new();
    let (trace_id, caller_span, traceparent) = caller_trace();
    let accepted = upload(&stack, &names, &names.source("trace"), &traceparent).await;
    match before {
        Some(p) => rollout.set_rollout(p).await.expect("restore"),
        None => rollout.clear_rollout().await.expect("restore"),
    }
    assert_eq!(accepted["path"], "legacy", "{accepted}");
    let id = accepted["document_id"].as_str().expect("id").to_owned();
    assert_eq!(wait_done(&stack, &id).await["status"], "completed");
    let tree = trace_when(&stack, &trace_id, |tree| {
        let http = request_span(tree, &caller_span)?;
        let ingestion = child(tree, Some(http), "ingest (legacy path)")?;
        expect_service(tree, ingestion, "apex-gateway")?;
        for (_, stage, call) in ACTIVITIES {
            stage_tree(tree, ingestion, stage, call, "apex-gateway", &id)?;
        }
        if tree.spans.iter().any(|s| s.name.contains("Workflow")) {
            return Err("a Temporal span on the legacy path".to_owned());
        }
        Ok(())
    })
    .await;
    println!("{}", tree.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_started_by_the_temporal_cli_with_a_tracer_header_continues_that_trace() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let names = Names::new();
    let (trace_id, caller_span, traceparent) = caller_trace();
    let files = tempfile::tempdir().expect("dir");
    let path = files.path().join("cli-note.txt");
    std::fs::write(&path, note(&names)).expect("write");
    let input = apex_ingestion::IngestInput {
        source: names.source("trace"),
        external_id: names.source("cli"),
        location: path.display().to_string(),
        ..Default::default()
    };
    let id = input.resolved_document_id();
    // The header as every SDK writes it: a JSON map of the W3C fields.
    let header = format!(
        "_tracer-data={}",
        serde_json::json!({ "traceparent": traceparent, "tracestate": "" })
    );
    let out = std::process::Command::new(stack.temporal_cli())
        .args(["workflow", "execute", "--address"])
        .arg(format!("127.0.0.1:{}", stack.settings.temporal_port))
        .args(["--type", "DocumentIngestionWorkflow"])
        .args(["--task-queue", "apex-ingest"])
        .arg("--workflow-id")
        .arg(apex_ingestion::input::ingestion_workflow_id(&id))
        .arg("--input")
        .arg(serde_json::to_string(&input).expect("json"))
        .arg("--headers")
        .arg(&header)
        .output()
        .expect("the temporal CLI runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && printed.to_lowercase().contains("completed"),
        "temporal workflow execute: {printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = trace_when(&stack, &trace_id, |tree| {
        let run = child(tree, None, "RunWorkflow:DocumentIngestionWorkflow")?;
        if tree.spans[run].parent_id.as_deref() != Some(caller_span.as_str()) {
            return Err("RunWorkflow is not the header's span's child".to_owned());
        }
        workflow_tree(tree, None, &id)
    })
    .await;
    println!("{}", tree.render());
}
