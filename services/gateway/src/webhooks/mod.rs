//! `POST /v1/webhooks/{source}`: signed deliveries from SaaS systems (Front, Samsara,
//! Stripe, Plaid, Standard Webhooks partners, Turvo, Sonar). They authenticate by their
//! provider's signature, not an API key ([`verify`], [`plaid`]); each verified event is
//! ingested once, as a document whose id comes from the source and the event id.
//!
//! | answer | when |
//! | --- | --- |
//! | `200 {"accepted": true, …}` | verified and handed to the ingestion |
//! | `200 {"duplicate": true}` | an event id delivered before (within `webhooks.replay_ttl_secs`) |
//! | `200 {"challenge": …}` | Front's setup handshake (`x-front-challenge`), signed |
//! | `400` | a missing header, a malformed signature or body, no event id |
//! | `401` | a signature no secret matches, an unknown Plaid key, a timestamp outside the tolerance |
//! | `404` | a source the gateway does not know |
//! | `413` | a body over `webhooks.max_body_bytes` |
//! | `503` + `Retry-After` | the source has no secret configured, Plaid's keys cannot be fetched, Redis or Temporal away: the sender retries, nothing is lost |
//!
//! No parsing happens on the request path: the raw body goes to the blob store and the
//! ingestion reads it. `HEAD` of a known source answers `200` (Sonar checks it).

pub mod events;
pub mod plaid;
pub mod sources;
pub mod verify;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use apex_ingestion::IngestInput;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use self::sources::{EventName, Source, event_name};
use self::verify::{Delivery, Refusal, Scheme};
use crate::error::ApiError;
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
fn label<'a>(g: &'a AppState, source: &'a str) -> &'a str {
    if g.webhooks.get(source).is_some() {
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
    if g.webhooks.get(&source).is_some() {
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
    let Some(source) = g.webhooks.get(&name) else {
        let known = g.webhooks.names().collect::<Vec<_>>().join(", ");
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
        let sha = hex::encode(Sha256::digest(&body));
        match g
            .webhook_log
            .record(&name, &event.id, &sha, &document_id)
            .await
        {
            Ok(first) => first,
            Err(e) => {
                forget(&g, &name, &replay_key, None).await;
                let message = format!("postgresql (webhook_events): {e}");
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
    match ingest(&g, source, &event, body).await {
        Ok(accepted) => {
            if let Err(e) = g.webhook_log.mark(&name, &event.id, events::ACCEPTED).await {
                tracing::warn!(source = %name, error = %e, "cannot mark a webhook event accepted");
            }
            g.metrics
                .webhook_deliveries
                .with_label_values(&[&name, "accepted"])
                .inc();
            let mut answer = accepted.body();
            answer["accepted"] = json!(true);
            answer["event_id"] = json!(event.id);
            answer["event_type"] = json!(event.kind);
            (StatusCode::OK, Json(answer)).into_response()
        }
        Err(e) => {
            // Not ingested: the sender's retry must not be taken for a replay.
            forget(&g, &name, &replay_key, Some(&event.id)).await;
            g.metrics
                .webhook_deliveries
                .with_label_values(&[&name, "failed"])
                .inc();
            e.into_response()
        }
    }
}

/// Forgets an event that was remembered and then not ingested (Redis, and the table when
/// `event_id` is given).
async fn forget(g: &AppState, source: &str, replay_key: &str, event_id: Option<&str>) {
    if let Err(e) = g.shared.forget(replay_key).await {
        tracing::warn!(source, error = %e, "cannot forget a webhook event that was not ingested");
    }
    if let Some(id) = event_id
        && let Err(e) = g.webhook_log.remove(source, id).await
    {
        tracing::warn!(source, error = %e, "cannot remove a webhook event that was not ingested");
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

/// The event as an ingestion: source `webhook:<name>`, the event id as external id (so a
/// redelivery is the same document), the raw body as the document.
async fn ingest(
    g: &AppState,
    source: &Source,
    event: &EventName,
    body: bytes::Bytes,
) -> Result<crate::upload::Accepted, ApiError> {
    let slot = crate::upload::admit(g)?;
    let sha = hex::encode(Sha256::digest(&body));
    let metadata = BTreeMap::from([
        ("webhook_source".to_owned(), source.name.clone()),
        ("webhook_event_id".to_owned(), event.id.clone()),
        ("webhook_event_type".to_owned(), event.kind.clone()),
    ]);
    let input = IngestInput {
        source: format!("webhook:{}", source.name),
        external_id: event.id.clone(),
        file_name: format!("{}-{}.json", source.name, event.kind),
        mime_type: "application/json".to_owned(),
        metadata,
        deadline_secs: g.settings.ingest_deadline_secs,
        ..IngestInput::default()
    };
    crate::upload::accept(g, slot, input, Some(body), Some(sha)).await
}
