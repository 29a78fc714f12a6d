//! Uploads through a gateway in this process: accepted and searchable, by URL, one ingestion
//! per document at a time.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_completes_on_temporal_and_is_searchable() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let g = Gateway::start(&stack, |_| {}).await;
    g.set_rollout(100).await;
    let accepted = g
        .accept(g.form("load-note.txt", "text/plain", NOTE.as_bytes().to_vec()))
        .await;
    let id = accepted["document_id"].as_str().expect("id").to_owned();
    assert_eq!(accepted["path"], "temporal");
    assert_eq!(accepted["version"], 1);
    assert_eq!(accepted["status_url"], format!("/v1/documents/{id}"));
    assert!(accepted["fallback"].is_null());
    let done = g.wait_done(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["path"], "temporal");
    assert!(done["chunk_count"].as_u64() >= Some(1), "{done}");
    assert!(done["entity_count"].as_u64() >= Some(3), "{done}");

    let found: Value = g
        .get(&format!(
            "/v1/search?q=load+from+Toledo+to+Nashville&limit=3&source={}",
            g.source
        ))
        .await
        .json()
        .await
        .expect("json");
    let hit = &found["hits"][0];
    assert_eq!(hit["document_id"], id.as_str(), "{found}");
    assert!(hit["text"].as_str().is_some_and(|t| t.contains("Toledo")));
    assert!(hit["score"].as_f64() > Some(0.2), "{hit}");
    let names: Vec<&str> = hit["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"Toledo"), "{names:?}");

    // The same bytes again: accepted as unchanged at version 1.
    let again = g
        .accept(g.form("load-note.txt", "text/plain", NOTE.as_bytes().to_vec()))
        .await;
    assert_eq!(again["version"], 1);
    assert_eq!(g.wait_done(&id).await["status"], "unchanged");

    // Deleted: gone from search and from the stores.
    let deleted = g
        .http
        .delete(format!("{}/v1/documents/{id}", g.url))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(deleted.status(), StatusCode::OK);
    let deleted: Value = deleted.json().await.expect("json");
    assert_eq!(deleted["deleted"], true, "{deleted}");
    let r = writer(&stack)
        .await
        .inspect_document(InspectDocumentRequest {
            document_id: id.clone(),
        })
        .await
        .expect("inspect")
        .into_inner();
    assert_eq!(r.version, 0);
    let status: Value = g
        .get(&format!("/v1/documents/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(status["status"], "deleted", "{status}");
    let again = g
        .http
        .delete(format!("{}/v1/documents/{id}", g.url))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    // A document nobody ingested is not found.
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        g.get(&format!("/v1/documents/{unknown}")).await.status(),
        StatusCode::NOT_FOUND
    );
    g.stop().await;
}

/// A scan (one image, no text layer) from the shared real-world corpus: read by OCR, stored,
/// and its search hits say so with the engine's confidence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanned_pdf_is_read_by_ocr_and_its_hits_say_so() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let corpus = std::env::var_os("APEX_CORPUS_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
        std::path::PathBuf::from,
    );
    let scan = std::fs::read(corpus.join("pdf/loremipsum-flat.pdf"))
        .expect("the shared corpus (../shared/corpus next to the clone, or APEX_CORPUS_DIR)");
    let g = Gateway::start(&stack, |_| {}).await;
    let accepted = g
        .accept(g.form("loremipsum-flat.pdf", "application/pdf", scan))
        .await;
    let id = accepted["document_id"].as_str().expect("id").to_owned();
    let done = g.wait_done(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["chunk_count"].as_u64() >= Some(2), "{done}");
    let found: Value = g
        .get(&format!(
            "/v1/search?q=lorem+ipsum+dolor+sit+amet+consectetur&limit=3&source={}",
            g.source
        ))
        .await
        .json()
        .await
        .expect("json");
    let hit = &found["hits"][0];
    assert_eq!(hit["document_id"], id.as_str(), "{found}");
    assert!(
        hit["text"]
            .as_str()
            .is_some_and(|t| t.to_lowercase().contains("ipsum")),
        "{hit}"
    );
    assert_eq!(hit["metadata"]["text_source"], "ocr", "{hit}");
    assert!(
        hit["metadata"]["ocr_engine"]
            .as_str()
            .is_some_and(|e| e.starts_with("tesseract")),
        "{hit}"
    );
    let confidence: f64 = hit["metadata"]["ocr_confidence"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .expect("confidence");
    assert!((0.5..=1.0).contains(&confidence), "{hit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_given_by_url_is_fetched_and_ingested_on_either_path() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let (url, server) = serve_once_per_request(NOTE).await;
    // The fixture is on 127.0.0.1, which fetches refuse unless allowed: this gateway (the
    // legacy path fetches in it) and a worker of its own allow it explicitly.
    let (worker, queue) = allowing_worker(&stack, "127.0.0.1/32");
    let g = Gateway::start(&stack, |s| {
        s.allow_local_files = true;
        s.ingest.fetch_allow = "127.0.0.1/32".into();
        s.temporal.task_queue = queue;
    })
    .await;
    for (percent, path) in [(100u8, "temporal"), (0, "legacy")] {
        g.set_rollout(percent).await;
        let external_id = format!("{url}#{path}");
        let response = g
            .http
            .post(format!("{}/v1/documents", g.url))
            .json(&serde_json::json!({
                "url": url,
                "source": g.source,
                "priority": 5,
                "external_id": external_id,
                "metadata": {"customer": "harbor-point"},
            }))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let accepted: Value = response.json().await.expect("json");
        assert_eq!(accepted["path"], path, "{accepted}");
        // The bytes are not known before the fetch.
        assert!(accepted["content_sha256"].is_null(), "{accepted}");
        let id = accepted["document_id"].as_str().expect("id");
        let done = g.wait_done(id).await;
        assert_eq!(done["status"], "completed", "{done}");
        assert!(done["chunk_count"].as_u64() >= Some(1), "{done}");
    }
    // An object-store key: a file on this machine, read by the ingestion itself.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("dock-note.md");
    std::fs::write(
        &file,
        "# Dock 4\n\nThe reefer from Memphis arrived two hours late.\n",
    )
    .expect("write");
    let accepted: Value = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .json(&serde_json::json!({"key": format!("file://{}", file.display()), "source": g.source}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    let done = g
        .wait_done(accepted["document_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    // An http URL nobody serves fails the ingestion with the reason, on the legacy path at once.
    let response = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .json(&serde_json::json!({"url": "http://127.0.0.1:9/none.txt", "source": g.source}))
        .send()
        .await
        .expect("POST");
    let accepted: Value = response.json().await.expect("json");
    let done = g
        .wait_done(accepted["document_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("fetch failed")),
        "{done}"
    );
    // Not an http URL.
    let refused = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .json(&serde_json::json!({"url": "ftp://example.com/a.pdf"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    g.stop().await;
    drop(worker);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_has_one_ingestion_at_a_time_uploads_attach_or_wait() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    // The embedder never answers, so the first ingestion stays in flight.
    let (silent_addr, held) = silent_server().await;
    let g = Gateway::start(&stack, |s| {
        s.ingest.embedder_addr = format!("http://{silent_addr}");
        s.shutdown_grace_secs = 1;
        s.retry_after_secs = 5;
    })
    .await;
    g.set_rollout(0).await;
    let id = uuid::Uuid::new_v4().to_string();
    let first = g
        .accept(
            g.form("one.txt", "text/plain", NOTE.as_bytes().to_vec())
                .text("document_id", id.clone()),
        )
        .await;
    assert_eq!(first["attached"], false);
    // The same bytes again, the id spelt in capitals: the same document, attached.
    let same = g
        .accept(
            g.form("one.txt", "text/plain", NOTE.as_bytes().to_vec())
                .text("document_id", id.to_uppercase()),
        )
        .await;
    assert_eq!(same["document_id"], id.as_str());
    assert_eq!(same["attached"], true, "{same}");
    assert_eq!(same["path"], "legacy");
    // Other bytes for the same document wait for the first: 409 with Retry-After.
    let other = g
        .post(
            g.form("one.txt", "text/plain", b"a different note".to_vec())
                .text("document_id", id.clone()),
        )
        .await;
    assert_eq!(other.status(), StatusCode::CONFLICT);
    assert_eq!(retry_after(&other), Some("5"));
    let body: Value = other.json().await.expect("json");
    assert_eq!(error_code(&body), "already_exists");
    assert_eq!(body["error"]["details"]["path"], "legacy", "{body}");
    // So does a deletion.
    let delete = g
        .http
        .delete(format!("{}/v1/documents/{id}", g.url))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(delete.status(), StatusCode::CONFLICT);
    let shared = g.shared.clone();
    g.stop().await;
    held.abort();
    // The stopped ingestion gave the document back: a new gateway takes new bytes for it.
    assert!(shared.claimed(&id).await.expect("redis").is_none());
    let again = Gateway::start(&stack, |_| {}).await;
    again.set_rollout(0).await;
    let accepted = again
        .accept(
            again
                .form("one.txt", "text/plain", b"a different note".to_vec())
                .text("document_id", id.clone()),
        )
        .await;
    assert_eq!(accepted["attached"], false);
    assert_eq!(again.wait_done(&id).await["status"], "completed");
    stale_claims_are_taken_over_and_fresh_ones_respected(&again).await;
    again.stop().await;
}

/// A claim whose holder vanished before starting (a dropped request, a killed gateway) is
/// taken over once it is older than the start window; a fresh one is respected.
async fn stale_claims_are_taken_over_and_fresh_ones_respected(again: &Gateway) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    for (path, age_ms, taken) in [
        ("temporal", 120_000u64, true),
        ("legacy", 120_000, true),
        ("temporal", 0, false),
    ] {
        let ghost_id = uuid::Uuid::new_v4().to_string();
        let ghost = Claim {
            token: format!("ghost-{path}"),
            sha256: String::new(),
            holder: Holder::parse(path).expect("a holder"),
            at_ms: now - age_ms,
        };
        assert!(
            again
                .shared
                .claim(&ghost_id, &ghost, Duration::from_secs(600))
                .await
                .expect("claim")
                .is_none()
        );
        let response = again
            .post(
                again
                    .form(
                        "ghost.txt",
                        "text/plain",
                        format!("ghost {ghost_id}").into_bytes(),
                    )
                    .text("document_id", ghost_id.clone()),
            )
            .await;
        if taken {
            assert_eq!(response.status(), StatusCode::ACCEPTED, "{path}");
            assert_eq!(again.wait_done(&ghost_id).await["status"], "completed");
        } else {
            assert_eq!(response.status(), StatusCode::CONFLICT, "{path}");
        }
    }
}
