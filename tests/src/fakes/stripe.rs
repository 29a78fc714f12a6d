//! Stripe `GET /v1/events` over events kept in memory: newest first, `limit` up to 100,
//! `starting_after` (older) and `ending_before` (newer) cursors, `resource_missing` for an
//! unknown cursor, a secret key as bearer token (401 otherwise), and 429
//! (`rate_limit_error`) when told to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::faults::{Admit, Faults};

/// The secret key the fake accepts.
pub const API_KEY: &str = "sk_test_51FakeApexIngestKey000000000000000000";

/// The account's events, oldest first.
#[derive(Debug, Default)]
pub struct Events {
    events: Mutex<Vec<Value>>,
    pub faults: Faults,
}

/// A running fake Stripe.
#[derive(Debug)]
pub struct FakeStripe {
    pub url: String,
    events: Arc<Events>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStripe {
    pub async fn start() -> anyhow::Result<Self> {
        let events = Arc::new(Events::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .route("/v1/events", get(list))
            .with_state(Arc::clone(&events));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, events, task })
    }

    pub fn events(&self) -> &Events {
        &self.events
    }
}

impl Events {
    /// Records an event of `kind` (`invoice.paid`, `customer.deleted`, …) about `object`.
    /// Returns its id.
    pub fn emit(&self, kind: &str, object: Value) -> String {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let id = format!("evt_{:024}", events.len() + 1);
        let created = 1_700_000_000 + events.len() as i64;
        events.push(json!({
            "id": id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": created,
            "livemode": false,
            "pending_webhooks": 0,
            "type": kind,
            "data": {"object": object},
        }));
        id
    }
}

fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    let mut e = json!({"type": kind, "message": message});
    if let Some(code) = code {
        e["code"] = Value::from(code);
    }
    (status, Json(json!({"error": e}))).into_response()
}

async fn list(
    State(events): State<Arc<Events>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if events.faults.admit().await == Admit::RateLimit {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            Some("rate_limit"),
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
        );
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(API_KEY) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            None,
            "Invalid API Key provided: sk_test_****0000",
        );
    }
    let limit: usize = match query.get("limit").map(|l| l.parse()) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("parameter_invalid_integer"),
                "Invalid integer: limit must be between 1 and 100",
            );
        }
    };
    // Newest first.
    let all: Vec<Value> = events
        .events
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .rev()
        .cloned()
        .collect();
    let position = |id: &str| all.iter().position(|e| e["id"] == id);
    let (page, has_more) = if let Some(before) = query.get("ending_before") {
        let Some(i) = position(before) else {
            return missing(before);
        };
        // The events just newer than `before`: the last `limit` of those before it.
        let newer = &all[..i];
        let start = newer.len().saturating_sub(limit);
        (newer[start..].to_vec(), start > 0)
    } else if let Some(after) = query.get("starting_after") {
        let Some(i) = position(after) else {
            return missing(after);
        };
        let older = &all[i + 1..];
        (
            older.iter().take(limit).cloned().collect(),
            older.len() > limit,
        )
    } else {
        (all.iter().take(limit).cloned().collect(), all.len() > limit)
    };
    Json(json!({"object": "list", "url": "/v1/events", "has_more": has_more, "data": page}))
        .into_response()
}

fn missing(id: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such event: '{id}'"),
    )
}
