//! Refusals: bad uploads get a clear 4xx and nothing is written; beyond the in-flight limit
//! uploads get 429 with `Retry-After`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_get_a_clear_4xx_and_nothing_is_written() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let blobs = tempfile::tempdir().expect("dir");
    let g = Gateway::start(&stack, |s| {
        s.max_upload_bytes = 1024;
        s.ingest.blob_url = blobs.path().display().to_string();
    })
    .await;
    let id = uuid::Uuid::new_v4().to_string();
    refused_forms(&g, &id).await;
    refused_bodies(&g, &id).await;
    nothing_was_written(&g, blobs.path(), &id).await;
    refused_reads(&g).await;
    g.stop().await;
}

/// Multipart uploads that break a rule: each gets its status, code and reason.
async fn refused_forms(g: &Gateway, id: &str) {
    let with_id = |form: Form| form.text("document_id", id.to_owned());
    let cases: Vec<(Form, StatusCode, &str, &str)> = vec![
        (
            with_id(g.form("empty.txt", "text/plain", Vec::new())),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "empty",
        ),
        (
            with_id(g.form("big.txt", "text/plain", vec![b'a'; 4096])),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "1024 bytes",
        ),
        (
            with_id(g.form("photo.png", "image/png", vec![0x89, b'P', b'N', b'G'])),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            "photo.png",
        ),
        (
            with_id(Form::new().text("source", "x")),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "no `file` field",
        ),
        (
            with_id(g.form("a.txt", "text/plain", b"text".to_vec())).text("metadata", "[1,2]"),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "metadata must be a JSON object",
        ),
        (
            with_id(g.form("a.txt", "text/plain", b"text".to_vec())).text("priority", "high"),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "priority must be an integer",
        ),
        (
            g.form("a.txt", "text/plain", b"text".to_vec())
                .text("document_id", "not-a-uuid"),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "not a UUID",
        ),
    ];
    for (form, status, code, says) in cases {
        let response = g.post(form).await;
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.expect("json error body");
        assert_eq!(error_code(&body), code, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message}");
        assert!(body["error"]["details"].is_object(), "{body}");
    }
}

/// Bodies that are neither multipart nor JSON, JSON without a location, and local or
/// foreign keys.
async fn refused_bodies(g: &Gateway, id: &str) {
    let plain = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("POST");
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let json = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .json(&serde_json::json!({"source": "x", "document_id": id}))
        .send()
        .await
        .expect("POST");
    assert_eq!(json.status(), StatusCode::BAD_REQUEST);
    let body: Value = json.json().await.expect("json");
    assert_eq!(body["error"]["details"]["field"], "url");
    let unknown_field = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .json(&serde_json::json!({"url": "http://127.0.0.1:1/x", "colour": "red"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(unknown_field.status(), StatusCode::BAD_REQUEST);
    for (key, says) in [
        ("file:///etc/passwd", "allow_local_files is off"),
        ("/etc/passwd", "allow_local_files is off"),
        ("ftp://example.com/a.pdf", "not an object-store key"),
    ] {
        let response = g
            .http
            .post(format!("{}/v1/documents", g.url))
            .json(&serde_json::json!({"key": key, "document_id": id}))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{key}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["details"]["field"], "key", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{body}"
        );
    }
}

/// Nothing was stored, routed or written.
async fn nothing_was_written(g: &Gateway, blobs: &std::path::Path, id: &str) {
    let stored: Vec<_> = walk(blobs);
    assert!(
        stored.is_empty(),
        "blobs written for refused uploads: {stored:?}"
    );
    assert_eq!(g.metric("apex_gateway_rollout_decisions_total").await, 0.0);
    assert!(g.shared.record(id).await.expect("redis").is_none());
    assert_eq!(
        g.get(&format!("/v1/documents/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
}

/// Bad reads are refused too.
async fn refused_reads(g: &Gateway) {
    for (path, field) in [
        ("/v1/documents/123", "id"),
        ("/v1/search", "q"),
        ("/v1/search?q=x&limit=0", "limit"),
        ("/v1/search?q=x&limit=1000", "limit"),
    ] {
        let response = g.get(path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["details"]["field"], field, "{path}: {body}");
    }
    assert_eq!(g.get("/v2/nothing").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_in_flight_uploads_get_429_with_retry_after() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    // An embedder that accepts connections and never answers: the first ingestion stays in
    // flight on the legacy path until the gateway stops.
    let (silent_addr, held) = silent_server().await;
    let g = Gateway::start(&stack, |s| {
        s.max_in_flight = 1;
        s.retry_after_secs = 3;
        s.ingest.embedder_addr = format!("http://{silent_addr}");
        s.shutdown_grace_secs = 1;
    })
    .await;
    g.set_rollout(0).await;
    let first = g
        .accept(g.form("first.txt", "text/plain", NOTE.as_bytes().to_vec()))
        .await;
    assert_eq!(first["path"], "legacy");
    let second = g
        .post(g.form("second.txt", "text/plain", b"another note".to_vec()))
        .await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&second), Some("3"));
    let body: Value = second.json().await.expect("json");
    assert_eq!(error_code(&body), "resource_exhausted");
    assert_eq!(body["error"]["details"]["max_in_flight"], 1);
    assert_eq!(g.metric("apex_gateway_rejected_busy_total").await, 1.0);
    assert_eq!(g.metric("apex_gateway_in_flight").await, 1.0);
    // The first is still being worked on (waiting for the embedder), not lost.
    let status: Value = g
        .get(&format!(
            "/v1/documents/{}",
            first["document_id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(status["path"], "legacy");
    assert_ne!(status["status"], "failed", "{status}");
    // Stopping the gateway waits out its grace, then records the ingestion it had to stop
    // as failed, with the reason, instead of leaving it "in progress" for ever.
    let shared = g.shared.clone();
    let id = first["document_id"].as_str().expect("id").to_owned();
    g.stop().await;
    let record = shared.record(&id).await.expect("redis").expect("record");
    let stopped = record.status.expect("status");
    assert_eq!(stopped.status, "failed");
    assert!(
        stopped.error.as_deref().is_some_and(
            |e| e.contains("the gateway stopped before this legacy ingestion finished")
        ),
        "{stopped:?}"
    );
    held.abort();
}
