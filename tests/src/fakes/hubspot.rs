//! HubSpot CRM v3 search, `POST /crm/v3/objects/{object}/search`, over records kept in
//! memory: the `hs_lastmodifieddate GTE` filter, ascending sort on it (then id), `limit` up
//! to 200, `after` as an offset, the 10,000-result cap (a 400 past it), a bearer token
//! (401 `INVALID_AUTHENTICATION` otherwise), and 429 with `Retry-After` when told to.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::faults::{Admit, Faults};

/// The private app token the fake accepts.
pub const TOKEN: &str = "pat-na1-11111111-2222-3333-4444-555555555555";

#[derive(Debug, Clone)]
struct Record {
    object: String,
    id: String,
    properties: serde_json::Map<String, Value>,
    modified: String,
    archived: bool,
}

/// The fake's records and faults.
#[derive(Debug, Default)]
pub struct Crm {
    records: Mutex<Vec<Record>>,
    pub faults: Faults,
}

/// A running fake HubSpot.
#[derive(Debug)]
pub struct FakeHubspot {
    pub url: String,
    crm: Arc<Crm>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeHubspot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeHubspot {
    pub async fn start() -> anyhow::Result<Self> {
        let crm = Arc::new(Crm::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .route("/crm/v3/objects/{object}/search", post(search))
            .with_state(Arc::clone(&crm));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, crm, task })
    }

    pub fn crm(&self) -> &Crm {
        &self.crm
    }
}

impl Crm {
    /// Creates or changes record `id` of `object` (`companies`, …), modified at `modified`
    /// (RFC 3339, milliseconds, UTC).
    pub fn put(&self, object: &str, id: &str, properties: Value, modified: &str) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.retain(|r| !(r.object == object && r.id == id));
        records.push(Record {
            object: object.to_owned(),
            id: id.to_owned(),
            properties: properties.as_object().cloned().unwrap_or_default(),
            modified: modified.to_owned(),
            archived: false,
        });
    }

    /// Archives record `id`, modified at `modified`.
    pub fn archive(&self, object: &str, id: &str, modified: &str) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        for r in records
            .iter_mut()
            .filter(|r| r.object == object && r.id == id)
        {
            r.archived = true;
            r.modified = modified.to_owned();
        }
    }
}

fn error(status: StatusCode, category: &str, message: &str) -> Response {
    let body = json!({
        "status": "error",
        "message": message,
        "correlationId": uuid::Uuid::new_v4().to_string(),
        "category": category,
    });
    (status, Json(body)).into_response()
}

async fn search(
    State(crm): State<Arc<Crm>>,
    Path(object): Path<String>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> Response {
    if crm.faults.admit().await == Admit::RateLimit {
        let body = json!({"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT", "policyName": "SECONDLY", "category": "RATE_LIMITS"});
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            Json(body),
        )
            .into_response();
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(TOKEN) {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        );
    }
    let limit = request["limit"].as_u64().unwrap_or(10);
    if !(1..=200).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "limit must be between 1 and 200",
        );
    }
    let after: u64 = request["after"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    if after + limit > 10_000 {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "The search API can page through at most 10,000 results.",
        );
    }
    let filter = &request["filterGroups"][0]["filters"][0];
    let since: i64 =
        if filter["propertyName"] == "hs_lastmodifieddate" && filter["operator"] == "GTE" {
            filter["value"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
    let mut matching: Vec<Record> = crm
        .records
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|r| r.object == object)
        .filter(|r| ms(&r.modified) >= since)
        .cloned()
        .collect();
    matching.sort_by(|a, b| (ms(&a.modified), &a.id).cmp(&(ms(&b.modified), &b.id)));
    let total = matching.len() as u64;
    let page: Vec<Value> = matching
        .iter()
        .skip(after as usize)
        .take(limit as usize)
        .map(|r| {
            let mut properties = r.properties.clone();
            properties.insert("hs_object_id".into(), Value::from(r.id.clone()));
            properties.insert("hs_lastmodifieddate".into(), Value::from(r.modified.clone()));
            json!({"id": r.id, "properties": properties, "createdAt": r.modified, "updatedAt": r.modified, "archived": r.archived})
        })
        .collect();
    let mut body = json!({"total": total, "results": page});
    if after + limit < total {
        body["paging"] = json!({"next": {"after": (after + limit).to_string(), "link": ""}});
    }
    Json(body).into_response()
}

/// Unix milliseconds of an RFC 3339 time.
fn ms(text: &str) -> i64 {
    apex_ingestion::polling::parse_ms(text).unwrap_or(0)
}
