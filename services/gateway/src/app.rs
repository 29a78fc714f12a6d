//! The gateway's router and its small endpoints (rollout, health, metrics). The state every
//! handler shares is in [`crate::state`]; uploads are in [`crate::upload`] (with
//! [`crate::intake`] reading the request and [`crate::claims`] keeping one ingestion per
//! document), status and deletion in [`crate::documents`], search in [`crate::search`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use apex_common::error::ErrorCode;
use apex_ingestion::status::{COMPLETED, FAILED, UNCHANGED};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::rollout::Path;
use crate::state::{AppState, Gateway};

/// Deadline of each `/readyz` check.
const READY_CHECK: Duration = Duration::from_secs(3);

/// The router of the HTTP API.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let body_limit = usize::try_from(gateway.settings.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    Router::new()
        .route("/v1/documents", post(crate::upload::create_document))
        .route(
            "/v1/documents/{id}",
            get(crate::documents::document_status).delete(crate::documents::delete_document),
        )
        .route("/v1/search", get(crate::search::search))
        .route(
            "/v1/webhooks/{source}",
            post(crate::webhooks::deliver).head(crate::webhooks::probe),
        )
        .route("/v1/rollout", get(rollout_get))
        .route("/livez", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .fallback(|| async {
            ApiError::not_found("no such route; the API is described at /openapi.json")
        })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&gateway),
            crate::auth::require,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&gateway),
            observe,
        ))
        .with_state(gateway)
}

/// This gateway's view of the rollout: the percentage, the decisions so far and how the
/// ingestions it saw end went on each path (to compare their error rates).
async fn rollout_get(State(g): State<AppState>) -> Json<Value> {
    g.refresh_rollout().await;
    let outcomes = |path: Path| {
        let count = |status: &str| {
            g.metrics
                .finished
                .with_label_values(&[path.as_str(), status])
                .get()
        };
        let (completed, unchanged, failed) = (count(COMPLETED), count(UNCHANGED), count(FAILED));
        let ended = completed + unchanged + failed;
        json!({
            "completed": completed,
            "unchanged": unchanged,
            "failed": failed,
            "error_rate": if ended == 0 { Value::Null } else { json!(failed as f64 / ended as f64) },
        })
    };
    Json(json!({
        "temporal_percent": g.rollout.percent(),
        "fallback_to_legacy": g.settings.fallback_to_legacy,
        "decisions": {
            "temporal": g.rollout.decided(Path::Temporal),
            "legacy": g.rollout.decided(Path::Legacy),
        },
        "fallbacks": g.metrics.fallbacks.get(),
        "outcomes": {
            "temporal": outcomes(Path::Temporal),
            "legacy": outcomes(Path::Legacy),
        },
    }))
}

async fn readyz(State(g): State<AppState>) -> Response {
    let redis = g.shared.ping().await.map_err(|e| e.to_string());
    let mut writer_client = g.stages().clients().writer.clone();
    let inspect = writer_client.inspect_document(apex_proto::writer::v1::InspectDocumentRequest {
        document_id: uuid::Uuid::nil().to_string(),
    });
    let writer = match tokio::time::timeout(READY_CHECK, inspect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(s)) => Err(s.message().to_owned()),
        Err(_) => Err(format!("no answer within {} s", READY_CHECK.as_secs())),
    };
    let temporal = g.temporal.client().await.map(|_| ());
    let ok = |r: &Result<(), String>| match r {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e}),
    };
    // Temporal is optional while the legacy path can take its traffic.
    let ready =
        redis.is_ok() && writer.is_ok() && (temporal.is_ok() || g.settings.fallback_to_legacy);
    let hooks = g.webhooks.current();
    let body = json!({
        "ready": ready,
        "checks": { "redis": ok(&redis), "writer": ok(&writer), "temporal": ok(&temporal) },
        // Not part of readiness: uploads work without them. Sources without their secret
        // refuse every delivery (503); `apex doctor` prints this.
        "webhooks": {
            "configured": hooks.names()
                .filter(|n| !hooks.unconfigured().iter().any(|(u, _)| u == n))
                .collect::<Vec<_>>(),
            "unconfigured": hooks.unconfigured().into_iter()
                .map(|(n, why)| (n.to_owned(), json!(why)))
                .collect::<serde_json::Map<String, Value>>(),
        },
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(g): State<AppState>) -> Response {
    match g.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => ApiError::new(ErrorCode::Internal, e.to_string()).into_response(),
    }
}

/// Counts and times each request under its route template (not the raw path, so ids do
/// not explode the label set), inside a span whose context reaches the services.
async fn observe(State(g): State<Arc<Gateway>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Named and attributed as the HTTP server conventions say; it continues the caller's
    // trace when the request carries a `traceparent` (as `apex ingest` sends). Probes and
    // scrapes are counted but not traced: they would bury the traces of work. Status reads,
    // which clients repeat while a document is ingested, are traced only when the caller's
    // trace asks for it or `trace_status_reads` is on.
    let status_read = request.method() == axum::http::Method::GET && route == "/v1/documents/{id}";
    let span = if matches!(route.as_str(), "/livez" | "/readyz" | "/metrics") {
        tracing::Span::none()
    } else {
        let span = tracing::info_span!(
            "http",
            otel.name = %format!("{} {route}", request.method()),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = %request.method(),
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
            url.path = %request.uri().path(),
            url.scheme = "http",
            user_agent.original = request
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
            apex.document_id = tracing::field::Empty,
            apex.source = tracing::field::Empty,
        );
        if status_read && !g.settings.trace_status_reads {
            apex_common::telemetry::continue_trace_or_unsampled(&span, request.headers());
        } else {
            apex_common::telemetry::continue_trace(&span, request.headers());
        }
        span
    };
    let start = Instant::now();
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    g.metrics
        .requests
        .with_label_values(&[&route, &status.to_string()])
        .inc();
    g.metrics
        .request_seconds
        .with_label_values(&[&route])
        .observe(start.elapsed().as_secs_f64());
    response
}
