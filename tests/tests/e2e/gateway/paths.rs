//! The two paths: the rollout's routing, the fallback when Temporal is away, identical store
//! state whichever path a document took, and the API's own description, health and metrics.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_routes_by_percentage_deterministically_and_changes_at_runtime() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let g = Gateway::start(&stack, |_| {}).await;
    // Ids on both sides of 50: the rollout keys on the document id alone.
    let mut below = Vec::new();
    let mut above = Vec::new();
    while below.len() < 2 || above.len() < 2 {
        let id = uuid::Uuid::new_v4().to_string();
        if bucket(&id) < 50 {
            below.push(id);
        } else {
            above.push(id);
        }
    }
    let upload = |id: &str, n: usize| {
        g.form(
            &format!("r{n}.txt"),
            "text/plain",
            format!("rollout note {n} {id}").into_bytes(),
        )
        .text("document_id", id.to_owned())
    };
    let mut ids = Vec::new();
    for (percent, id, expected) in [
        (0u8, &below[0], "legacy"),
        (0, &above[0], "legacy"),
        (100, &below[0], "temporal"),
        (100, &above[0], "temporal"),
        (50, &below[1], "temporal"),
        (50, &above[1], "legacy"),
        // Same document, same percentage, same path (determinism).
        (50, &below[1], "temporal"),
        (50, &above[1], "legacy"),
    ] {
        g.set_rollout(percent).await;
        let rollout: Value = g.get("/v1/rollout").await.json().await.expect("json");
        assert_eq!(rollout["temporal_percent"], percent);
        let n = ids.len();
        let accepted = g.accept(upload(id, n)).await;
        assert_eq!(
            accepted["path"],
            expected,
            "{percent}% {id} (bucket {})",
            bucket(id)
        );
        // Let each ingestion end before the next upload of the same document.
        let done = g.wait_done(id).await;
        assert_ne!(done["status"], "failed", "{done}");
        ids.push(id.clone());
    }
    assert_eq!(
        g.metric("apex_gateway_rollout_decisions_total{path=\"temporal\"}")
            .await,
        4.0
    );
    assert_eq!(
        g.metric("apex_gateway_rollout_decisions_total{path=\"legacy\"}")
            .await,
        4.0
    );
    // The rollout view compares the paths' outcomes (legacy ones are counted before their
    // final status is visible; the Temporal ones when this gateway sees the workflow close).
    let rollout: Value = g.get("/v1/rollout").await.json().await.expect("json");
    assert_eq!(rollout["decisions"]["legacy"], 4, "{rollout}");
    assert_eq!(rollout["outcomes"]["legacy"]["completed"], 4, "{rollout}");
    assert_eq!(rollout["outcomes"]["legacy"]["failed"], 0, "{rollout}");
    assert_eq!(
        rollout["outcomes"]["legacy"]["error_rate"], 0.0,
        "{rollout}"
    );
    // A second replica reading the same key routes the same documents the same way.
    let key = g.rollout_key.clone();
    let replica = Gateway::start(&stack, |s| s.rollout_key = key).await;
    let rollout: Value = replica.get("/v1/rollout").await.json().await.expect("json");
    assert_eq!(rollout["temporal_percent"], 50);
    for (id, expected) in [(&below[1], "temporal"), (&above[1], "legacy")] {
        let accepted = replica.accept(upload(id, 99)).await;
        assert_eq!(accepted["path"], expected, "replica, {id}");
        replica.wait_done(id).await;
    }
    replica.stop().await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_temporal_unreachable_the_gateway_falls_back_and_says_so() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let temporal = Proxy::start(([127, 0, 0, 1], stack.settings.temporal_port).into())
        .await
        .expect("proxy");
    let g = Gateway::start(&stack, |s| {
        s.temporal.address = format!("http://{}", temporal.host_port());
    })
    .await;
    g.set_rollout(100).await;
    let first = g
        .accept(g.form(
            "before.txt",
            "text/plain",
            b"before the outage: load L-1 to Denver".to_vec(),
        ))
        .await;
    assert_eq!(first["path"], "temporal");
    assert_eq!(
        g.wait_done(first["document_id"].as_str().expect("id"))
            .await["status"],
        "completed"
    );

    temporal.refuse();
    let during = g
        .accept(g.form("during.txt", "text/plain", NOTE.as_bytes().to_vec()))
        .await;
    assert_eq!(during["path"], "legacy", "{during}");
    let reason = during["fallback"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("temporal"), "{during}");
    let id = during["document_id"].as_str().expect("id");
    let done = g.wait_done(id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["path"], "legacy");
    assert!(done["fallback"]["reason"].is_string(), "{done}");
    assert_eq!(g.metric("apex_gateway_fallbacks_total").await, 1.0);
    let ready: Value = g.get("/readyz").await.json().await.expect("json");
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["checks"]["temporal"]["ok"], false, "{ready}");
    g.stop().await;

    // Without the fallback the upload is refused as unavailable, and nothing runs.
    let strict = Gateway::start(&stack, |s| {
        s.temporal.address = format!("http://{}", temporal.host_port());
        s.fallback_to_legacy = false;
    })
    .await;
    strict.set_rollout(100).await;
    let refused = strict
        .post(strict.form("strict.txt", "text/plain", b"no fallback".to_vec()))
        .await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(error_code(&body), "unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("fallback_to_legacy is off")),
        "{body}"
    );
    strict.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_paths_leave_identical_store_state_for_the_same_document() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let g = Gateway::start(&stack, |_| {}).await;
    let id = uuid::Uuid::new_v4().to_string();
    let upload = || {
        g.form("same.txt", "text/plain", NOTE.as_bytes().to_vec())
            .text("document_id", id.clone())
            .text("metadata", r#"{"customer":"harbor-point"}"#)
    };
    let mut views = Vec::new();
    for (percent, path) in [(100u8, "temporal"), (0, "legacy")] {
        g.set_rollout(percent).await;
        let accepted = g.accept(upload()).await;
        assert_eq!(accepted["path"], path);
        assert_eq!(accepted["version"], 1);
        let done = g.wait_done(&id).await;
        assert_eq!(done["status"], "completed", "{done}");
        let view = writer(&stack)
            .await
            .inspect_document(InspectDocumentRequest {
                document_id: id.clone(),
            })
            .await
            .expect("inspect")
            .into_inner();
        assert!(view.consistent, "{view:?}");
        let deleted: Value = g
            .http
            .delete(format!("{}/v1/documents/{id}", g.url))
            .send()
            .await
            .expect("DELETE")
            .json()
            .await
            .expect("json");
        assert_eq!(deleted["deleted"], true, "{deleted}");
        views.push(view);
    }
    assert_eq!(views[0], views[1], "temporal vs legacy");
    assert_eq!(views[0].version, 1);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_describes_itself_and_reports_health_and_metrics() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let g = Gateway::start(&stack, |_| {}).await;
    let doc: Value = g.get("/openapi.json").await.json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    for route in [
        "/v1/documents",
        "/v1/documents/{id}",
        "/v1/search",
        "/v1/webhooks/{source}",
        "/v1/rollout",
        "/livez",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(doc["paths"][route].is_object(), "{route} is not described");
    }
    let ready = g.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["checks"]["redis"]["ok"], true);
    assert_eq!(ready["checks"]["writer"]["ok"], true);
    // No secret configured here: every built-in webhook source is named as refusing.
    assert!(
        ready["webhooks"]["unconfigured"]["stripe"]
            .as_str()
            .is_some_and(|why| why.contains("APEX_WEBHOOK_SECRETS_STRIPE")),
        "{ready}"
    );
    let metrics = g.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("apex_gateway_requests_total{route=\"/readyz\",status=\"200\"} 1"),
        "{metrics}"
    );
    g.stop().await;
}
