//! `POST /v1/webhooks/{source}`: signed deliveries from SaaS systems (Front, Samsara,
//! Stripe, Plaid, Standard Webhooks partners, Turvo, Sonar). They authenticate by their
//! provider's signature, not an API key ([`verify`], [`plaid`]); each verified event is
//! ingested once, as a document whose id comes from the source and the event id.
//!
//! | answer | when |
//! | --- | --- |
//! | `200 {"accepted": true, "status": "received", …}` | verified and stored; its ingestion starts from the outbox |
//! | `200 {"duplicate": true}` | an event id delivered before (within `webhooks.replay_ttl_secs`) |
//! | `200 {"challenge": …}` | Front's setup handshake (`x-front-challenge`), signed |
//! | `400` | a missing header, a malformed signature or body, no event id |
//! | `401` | a signature no secret matches, an unknown Plaid key, a timestamp outside the tolerance |
//! | `404` | a source the gateway does not know |
//! | `413` | a body over `webhooks.max_body_bytes` |
//! | `503` + `Retry-After` | the source has no secret configured, Plaid's keys cannot be fetched, Redis, the blob store or PostgreSQL away: the sender retries, nothing is lost |
//!
//! No parsing happens on the request path, and no ingestion starts on it: the raw body goes
//! to the blob store, the event to `webhook_events` (the outbox), and the answer is sent;
//! [`dispatch`] then starts the ingestion (at once, or with backoff while Temporal or a
//! stage is away), so a burst of deliveries or an outage behind the gateway never makes a
//! provider wait or retry. `HEAD` of a known source answers `200` (Sonar checks it).

pub mod dispatch;
pub mod events;
pub mod plaid;
pub mod sources;
pub mod verify;

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use self::sources::{EventName, event_name};
use self::verify::{Delivery, Refusal, Scheme};
use crate::state::AppState;

/// What a sender that could not be served is asked to wait.
const RETRY_AFTER_SECS: u64 = 30;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The source label of the metrics: a known source's name, else `unknown` (so a scan of
/// made-up names cannot grow the series without bound).
fn label<'a>(g: &AppState, source: &'a str) -> &'a str {
    if g.webhooks.current().get(source).is_some() {
        source
    } else {
        "unknown"
    }
}

/// A refusal: counted by source and reason, logged (never the body or a secret), and
/// answered in the API's error shape.
fn refused(
    g: &AppState,
    source: &str,
    reason: &str,
    status: StatusCode,
    message: String,
) -> Response {
    g.metrics
        .webhook_refusals
        .with_label_values(&[label(g, source), reason])
        .inc();
    tracing::warn!(source = %label(g, source), reason, error = %message, "webhook refused");
    let retry_after = (status == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER_SECS);
    let code = match status {
        StatusCode::BAD_REQUEST => "invalid_argument",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        _ => "unavailable",
    };
    let body = json!({"error": {
        "code": code,
        "message": message,
        "details": {"reason": reason},
        "retryable": retry_after.is_some(),
    }});
    let mut response = (status, Json(body)).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The status of a refused signature.
fn refusal_status(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::MissingHeader(_) | Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
        Refusal::KeyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::BadSignature
        | Refusal::Stale { .. }
        | Refusal::Future { .. }
        | Refusal::UnknownKey(_) => StatusCode::UNAUTHORIZED,
    }
}

/// `HEAD /v1/webhooks/{source}`: `200` for a known source, `404` else.
pub(crate) async fn probe(State(g): State<AppState>, Path(source): Path<String>) -> StatusCode {
    if g.webhooks.current().get(&source).is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

pub(crate) async fn deliver(
    State(g): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let sources = g.webhooks.current();
    let Some(source) = sources.get(&name) else {
        let known = sources.names().collect::<Vec<_>>().join(", ");
        return refused(
            &g,
            &name,
            "unknown_source",
            StatusCode::NOT_FOUND,
            format!("no webhook source `{name}`; known: {known}"),
        );
    };
    let (parts, body) = request.into_parts();
    let limit = usize::try_from(g.settings.webhooks.max_body_bytes).unwrap_or(usize::MAX);
    let body = match read_body(&parts.headers, body, limit).await {
        Ok(b) => b,
        Err((status, reason, message)) => return refused(&g, &name, reason, status, message),
    };
    let delivery = Delivery {
        headers: &parts.headers,
        body: &body,
        now_secs: now_secs(),
        tolerance_secs: g.settings.webhooks.tolerance_secs,
    };
    if let Err(refusal) = source.verify(&delivery).await {
        let reason = match &source.verifier {
            sources::Verifier::Unconfigured(_) => "unconfigured",
            _ => refusal.reason(),
        };
        let message = format!("{name} webhook: {refusal}");
        return refused(&g, &name, reason, refusal_status(&refusal), message);
    }
    // Front's setup handshake: echo the challenge, ingest nothing.
    if source.scheme == Scheme::FrontApp
        && let Some(challenge) = parts
            .headers
            .get("x-front-challenge")
            .and_then(|v| v.to_str().ok())
    {
        g.metrics
            .webhook_deliveries
            .with_label_values(&[&name, "challenge"])
            .inc();
        return Json(json!({ "challenge": challenge })).into_response();
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let message = format!("a {name} delivery is JSON: {e}");
            return refused(&g, &name, "malformed", StatusCode::BAD_REQUEST, message);
        }
    };
    let event = match event_name(source.scheme, &delivery, &payload) {
        Ok(e) => e,
        Err(r) => {
            let message = format!("{name} webhook: {r}");
            return refused(&g, &name, r.reason(), refusal_status(&r), message);
        }
    };
    let replay_key = replay_key(&name, &event.id);
    let ttl = Duration::from_secs(g.settings.webhooks.replay_ttl_secs);
    let first = match g.shared.remember_once(&replay_key, ttl).await {
        Ok(first) => first,
        Err(e) => {
            let message = format!("redis: {e}");
            return refused(
                &g,
                &name,
                "unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                message,
            );
        }
    };
    let document_id = apex_ingestion::document_id(&format!("webhook:{name}"), &event.id);
    let first = first && {
        match store(&g, &name, &event, body).await {
            Ok(first) => first,
            Err(message) => {
                forget(&g, &name, &replay_key).await;
                return refused(
                    &g,
                    &name,
                    "unavailable",
                    StatusCode::SERVICE_UNAVAILABLE,
                    message,
                );
            }
        }
    };
    if !first {
        g.metrics
            .webhook_deliveries
            .with_label_values(&[&name, "duplicate"])
            .inc();
        tracing::info!(source = %name, event = %event.id, "webhook event delivered before; not ingested again");
        return Json(
            json!({ "duplicate": true, "event_id": event.id, "document_id": document_id }),
        )
        .into_response();
    }
    g.webhook_wake.notify_one();
    g.metrics
        .webhook_deliveries
        .with_label_values(&[&name, "accepted"])
        .inc();
    let answer = json!({
        "accepted": true,
        "status": events::RECEIVED,
        "event_id": event.id,
        "event_type": event.kind,
        "source": format!("webhook:{name}"),
        "document_id": document_id,
        "status_url": format!("/v1/documents/{document_id}"),
        "workflow_id": apex_ingestion::ingestion_workflow_id(&document_id),
    });
    (StatusCode::OK, Json(answer)).into_response()
}

/// Stores the body (blob store) and the event (`webhook_events`): `Ok(false)` when the
/// table already had it, `Err` with the reason when either store is away.
async fn store(
    g: &AppState,
    name: &str,
    event: &EventName,
    body: bytes::Bytes,
) -> Result<bool, String> {
    let sha = hex::encode(Sha256::digest(&body));
    let blob = g
        .stages()
        .blobs()
        .put("webhooks", "application/json", body)
        .await
        .map_err(|e| format!("blob store: {e}"))?;
    let document_id = apex_ingestion::document_id(&format!("webhook:{name}"), &event.id);
    g.webhook_log
        .record(name, &event.id, &event.kind, &sha, &document_id, &blob.key)
        .await
        .map_err(|e| format!("postgresql (webhook_events): {e}"))
}

/// Forgets an event that was remembered and then not stored, so the sender's retry is not
/// taken for a replay.
async fn forget(g: &AppState, source: &str, replay_key: &str) {
    if let Err(e) = g.shared.forget(replay_key).await {
        tracing::warn!(source, error = %e, "cannot forget a webhook event that was not stored");
    }
}

/// The Redis key remembering a delivered event (the id hashed: ids are the sender's).
pub fn replay_key(source: &str, event_id: &str) -> String {
    let digest = hex::encode(Sha256::digest(event_id.as_bytes()));
    format!("apex:webhook:{source}:{digest}")
}

/// Reads the body up to `limit` bytes: a declared or actual length over it is a `413`.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, (StatusCode, &'static str, String)> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "oversized",
            format!("a webhook body is at most {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let boxed = e.into_inner();
        if boxed.is::<http_body_util::LengthLimitError>() {
            too_large()
        } else {
            (
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("cannot read the body: {boxed}"),
            )
        }
    })
}
