//! What an ingestion leaves: every fixture format in every store, an invalid document failing
//! once with the parser's reason, unchanged and changed re-ingests, deletion and search
//! attributes, a second start attaching, silent outcomes completing with warnings.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fixture_format_is_ingested_into_every_store() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let env = env(&stack).await;
    for (name, bytes) in fixtures() {
        let input = env.input(name, &bytes);
        let id = input.resolved_document_id();
        let s = env.ingest(input).await;
        assert_eq!(s.status, COMPLETED, "{name}: {s:?}");
        assert_eq!(s.version, 1, "{name}");
        assert!(s.chunk_count > 0, "{name}: {s:?}");
        assert_eq!(s.vector_count, s.chunk_count, "{name}");
        // The metadata names a customer, so every document has at least that entity.
        assert!(s.entity_count > 0, "{name}: {s:?}");
        let steps: Vec<&str> = s.steps.iter().map(|r| r.step.as_str()).collect();
        for step in ["fetch", "check", "parse", "extract", "embed", "write"] {
            assert!(steps.contains(&step), "{name}: no {step} in {steps:?}");
        }
        assert_stored(&env.inspect(&id).await, &s);
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_document_fails_after_one_parse_attempt_with_the_parsers_reason() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let env = env(&stack).await;
    let input = env.input("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog");
    let id = input.resolved_document_id();
    let handle = env.start(input).await;
    let err = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect_err("a broken PDF fails");
    let text = apex_worker::error_chain(&err);
    assert!(
        text.contains("parse failed") && text.contains("parser:"),
        "{text}"
    );
    let events: Vec<Attributes> = history(&handle).await;
    // Its one attempt ran in the worker; a failure no retry can mend is not handed on to a
    // server-side attempt.
    assert_eq!(scheduled(&events, "parse_document"), 0, "never retried");
    record_history(&handle, "ingestion-failed-invalid-document").await;
    let s = status(&handle).await;
    assert_eq!(s.status, FAILED);
    assert!(
        s.error.as_deref().is_some_and(|e| e.contains("parser:")),
        "{s:?}"
    );
    let r = env.inspect(&id).await;
    assert!(
        r.stores.iter().all(|v| !v.present),
        "nothing written: {r:?}"
    );

    // Bad workflow input is refused at once, naming what is missing.
    let mut missing = env.input("x.txt", b"x");
    missing.location.clear();
    let err = env
        .start(missing)
        .await
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect_err("no location");
    let text = apex_worker::error_chain(&err);
    assert!(text.contains("location is required"), "{text}");
    assert!(
        text.contains(INVALID_INPUT) || text.contains("location"),
        "{text}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reingesting_unchanged_content_changes_nothing_and_changed_content_is_version_2() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let env = env(&stack).await;
    let first = env.input("note.txt", TEXT.as_bytes());
    let id = first.resolved_document_id();
    let handle = env.start(first.clone()).await;
    let v1 = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("v1");
    record_history(&handle, "ingestion-completed").await;
    assert_eq!((v1.status.as_str(), v1.version), (COMPLETED, 1));
    let before = env.inspect(&id).await;

    let handle = env.start(first.clone()).await;
    let again = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("unchanged");
    record_history(&handle, "ingestion-unchanged").await;
    assert_eq!((again.status.as_str(), again.version), (UNCHANGED, 1));
    let steps: Vec<&str> = again.steps.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(
        steps,
        ["fetch", "check"],
        "no service beyond the check was called"
    );
    assert_eq!(before, env.inspect(&id).await, "no store write");

    // New content at the same location: the next version replaces the first everywhere.
    std::fs::write(
        &first.location,
        "A different memo. Invoice INV-2026-0042 from Estes Express Lines, due 2026-04-01.",
    )
    .expect("rewrite");
    let v2 = env.ingest(first).await;
    assert_eq!((v2.status.as_str(), v2.version), (COMPLETED, 2));
    let r = env.inspect(&id).await;
    assert_stored(&r, &v2);
    assert_eq!(
        view(&r, Store::Vectors).version,
        2,
        "no point of version 1 is left"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_removes_the_document_and_search_attributes_find_ingestions() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let env = env(&stack).await;
    let input = env.input("note.txt", TEXT.as_bytes());
    let id = input.resolved_document_id();
    let s = env.ingest(input).await;
    assert_eq!(s.status, COMPLETED);

    // Visibility is eventually consistent: poll until the completed ingestion is listed.
    // `Status` needs backticks: the server's query parser takes a bare `Status` for its own
    // execution-status column and answers "invalid search attribute: status".
    let query = format!(r#"Source="upload" AND `Status`="completed" AND DocumentId="{id}""#);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found: Vec<temporalio_client::WorkflowExecution> = env
            .client
            .list_workflows(query.as_str(), WorkflowListOptions::default())
            .try_collect()
            .await
            .expect("list");
        if found.iter().any(|w| w.id() == ingestion_workflow_id(&id)) {
            break;
        }
        assert!(Instant::now() < deadline, "never listed by {query}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let deletion = env
        .client
        .start_workflow(
            DocumentDeletionWorkflow::run,
            DeleteInput {
                document_id: id.clone(),
            }
            .into(),
            WorkflowStartOptions::new(env.queue.as_str(), deletion_workflow_id(&id)).build(),
        )
        .await
        .expect("start deletion");
    let deleted = deletion
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("deleted");
    record_history(&deletion, "deletion").await;
    assert!(deleted.existed);
    let r = env.inspect(&id).await;
    assert!(r.stores.iter().all(|v| !v.present), "{r:?}");
    assert!(r.consistent);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_while_one_runs_attaches_to_it() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut env = env(&stack).await;
    // Hold the run at the embedding step so both starts meet a running ingestion.
    let addr = env.stop_embedder().await;
    let input = env.input("note.txt", TEXT.as_bytes());
    let first = env.start(input.clone()).await;
    let second = env.start(input).await;
    assert_eq!(
        first.run_id(),
        second.run_id(),
        "attached, not started again"
    );
    env.restart_embedder(addr).await;
    let s = second
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("completes");
    assert_eq!(s.status, COMPLETED);
    env.stop().await;
}

/// The worker's `apex_ingest_warnings_total` for `kind`, from its `/metrics`.
async fn warnings_counted(env: &Env, kind: &str) -> u64 {
    let port = env.worker.as_ref().expect("worker").metrics_port;
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    body.lines()
        .filter(|l| {
            l.starts_with("apex_ingest_warnings_total{") && l.contains(&format!("kind=\"{kind}\""))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .map(|v| v as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_outcomes_complete_with_warnings_and_are_counted() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let env = env(&stack).await;
    let mut plain = env.input(
        "plain.txt",
        b"nothing here but plain lower case words about the weather and a walk",
    );
    plain.metadata.clear();
    let s = env.ingest(plain).await;
    assert_eq!(s.status, COMPLETED, "{s:?}");
    assert_eq!(s.entity_count, 0, "{s:?}");
    assert!(
        s.warnings.iter().any(|w| w.contains("no entities")),
        "{s:?}"
    );
    assert_eq!(warnings_counted(&env, "no_entities").await, 1);

    let mut empty = env.input("empty.json", b"{}");
    empty.metadata.clear();
    let s = env.ingest(empty).await;
    assert_eq!(s.status, COMPLETED, "{s:?}");
    assert_eq!(s.chunk_count, 0, "{s:?}");
    assert!(s.warnings.iter().any(|w| w.contains("no chunks")), "{s:?}");
    assert_eq!(warnings_counted(&env, "no_chunks").await, 1);
    env.stop().await;
}
