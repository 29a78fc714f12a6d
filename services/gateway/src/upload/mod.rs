//! `POST /v1/documents`: read and check the upload, claim the document, store the bytes,
//! and start the ingestion on the path the rollout picks (falling back to the legacy path
//! when Temporal cannot be reached).
//!
//! One document has at most one ingestion at a time, across paths and replicas: a Redis
//! claim taken before anything is stored. A second upload of the same bytes while one runs
//! attaches to it (`202`, `attached: true`); different bytes get `409` with `Retry-After`,
//! so no upload is silently dropped and two ingestions never race for the same version.

mod start;

use std::sync::Arc;
use std::time::Duration;

use apex_ingestion::{IngestInput, ingestion_workflow_id};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use self::start::{start, unreachable_without_fallback};
use crate::claims::{Held, busy, judge};
use crate::error::ApiError;
use crate::intake::{Upload, check_fields, read_upload};
use crate::rollout::Path;
use crate::shared::{Claim, Holder};
use crate::state::{AppState, Slot, now_ms};

/// Refuses, before anything is started, a URL the fetch guard would refuse: an address or
/// a name resolving to one inside (loopback, private, metadata, …) unless
/// `ingest.fetch_allow` allows it. The fetch itself judges again when it runs.
async fn check_url(g: &AppState, location: &str) -> Result<(), ApiError> {
    let url = url::Url::parse(location)
        .map_err(|e| ApiError::invalid("url", format!("not a URL: {e}")))?;
    g.stages()
        .fetch_policy()
        .check_resolving(&url)
        .await
        .map_err(|refusal| {
            ApiError::invalid("url", refusal.to_string())
                .with_details(json!({"field": "url", "rule": refusal.rule.as_str()}))
        })
}

/// What an accepted ingestion answers (`POST /v1/documents`, a webhook delivery).
pub(crate) struct Accepted {
    pub(crate) input: IngestInput,
    pub(crate) version: Option<u64>,
    pub(crate) path: Path,
    pub(crate) fallback: Option<String>,
    pub(crate) workflow_id: Option<String>,
    pub(crate) sha: Option<String>,
    pub(crate) attached: bool,
}

impl Accepted {
    pub(crate) fn body(&self) -> serde_json::Value {
        let id = self.input.resolved_document_id();
        json!({
            "document_id": id,
            "version": self.version,
            "status": "accepted",
            "status_url": format!("/v1/documents/{id}"),
            "path": self.path.as_str(),
            "fallback": self.fallback.as_ref().map(|reason| json!({ "reason": reason })),
            "workflow_id": self.workflow_id,
            "content_sha256": self.sha,
            "source": self.input.source,
            "attached": self.attached,
        })
    }

    fn response(self) -> Response {
        let id = self.input.resolved_document_id();
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("/v1/documents/{id}")) {
            headers.insert(header::LOCATION, v);
        }
        (StatusCode::ACCEPTED, headers, Json(self.body())).into_response()
    }
}

pub(crate) async fn create_document(
    State(g): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let slot = admit(&g)?;
    let (mut upload, sha) = read_checked(&g, request).await?;
    let input = IngestInput {
        document_id: upload.document_id.clone(),
        source: upload.source.clone(),
        external_id: upload.external_id.clone(),
        priority: upload.priority,
        location: upload.location.clone(),
        file_name: upload.file_name.clone(),
        mime_type: upload.mime_type.clone(),
        metadata: upload.metadata.clone(),
        max_write_attempts: 0,
        deadline_secs: g.settings.ingest_deadline_secs,
        local_attempt_secs: 0,
    };
    Ok(accept(&g, slot, input, upload.bytes.take(), sha)
        .await?
        .response())
}

/// Claims the document, stores `bytes` (when the input carries them rather than a
/// location) and starts the ingestion on the path the rollout picks. The same bytes of a
/// document being ingested attach to that ingestion.
pub(crate) async fn accept(
    g: &AppState,
    slot: Slot,
    mut input: IngestInput,
    bytes: Option<Bytes>,
    sha: Option<String>,
) -> Result<Accepted, ApiError> {
    let id = input.resolved_document_id();
    let span = tracing::Span::current();
    span.record("apex.document_id", id.as_str());
    span.record("apex.source", input.source.as_str());
    let path = choose_path(g, &id).await?;
    let claim = Claim {
        token: uuid::Uuid::new_v4().to_string(),
        sha256: sha.clone().unwrap_or_default(),
        holder: Holder::Ingestion(path),
        at_ms: now_ms(),
    };
    if let Some(held) = claim_document(g, &id, &claim, path).await? {
        return Ok(attached(input, &id, &held, sha));
    }

    // From here on the document is ours: every early return gives the claim back.
    if let Some(bytes) = bytes {
        match store_upload(g, &input.mime_type, bytes).await {
            Ok(location) => input.location = location,
            Err(why) => return Err(release(g, &id, &claim, why).await),
        }
    }
    let version = next_version(g, &id, sha.as_ref()).await;
    let started = start(g, &input, slot, claim, path).await?;
    g.metrics
        .accepted
        .with_label_values(&[started.path.as_str()])
        .inc();
    tracing::info!(
        document = %id,
        source = %input.source,
        path = started.path.as_str(),
        "upload accepted"
    );
    Ok(Accepted {
        input,
        version,
        path: started.path,
        fallback: started.fallback,
        workflow_id: started.workflow_id,
        sha,
        attached: false,
    })
}

/// An in-flight slot, or `429` when `max_in_flight` ingestions already run here.
pub(crate) fn admit(g: &AppState) -> Result<Slot, ApiError> {
    let Ok(permit) = Arc::clone(&g.in_flight).try_acquire_owned() else {
        g.metrics.rejected.inc();
        return Err(ApiError::busy(
            g.settings.max_in_flight,
            g.settings.retry_after_secs,
        ));
    };
    Ok(Slot::new(permit, &g.metrics.in_flight))
}

/// The upload, read and checked, and the SHA-256 of its bytes (none for a reference).
async fn read_checked(
    g: &AppState,
    request: Request,
) -> Result<(Upload, Option<String>), ApiError> {
    let mut upload = read_upload(
        request,
        g.settings.max_upload_bytes,
        g.settings.allow_local_files,
    )
    .await?;
    check_fields(&mut upload)?;
    if upload.bytes.is_none()
        && (upload.location.starts_with("http://") || upload.location.starts_with("https://"))
    {
        check_url(g, &upload.location).await?;
    }
    let sha = upload
        .bytes
        .as_ref()
        .map(|b| hex::encode(Sha256::digest(b)));
    if upload.external_id.trim().is_empty() {
        // Without an id in its source, a file is known by its bytes: the same bytes are
        // the same document, and two files that share a name never overwrite each other.
        upload.external_id = sha.clone().unwrap_or_default();
    }
    Ok((upload, sha))
}

/// The path the rollout picks for the document.
async fn choose_path(g: &AppState, id: &str) -> Result<Path, ApiError> {
    g.refresh_rollout().await;
    let path = g.rollout.decide(id);
    if path == Path::Temporal && !g.settings.fallback_to_legacy {
        // Refuse before anything is stored when the only path is down.
        if let Err(why) = g.temporal.client().await {
            g.metrics.temporal_unreachable.inc();
            return Err(unreachable_without_fallback(
                &why,
                g.settings.retry_after_secs,
            ));
        }
    }
    Ok(path)
}

/// Takes the document's claim: `None` when the document is now ours, the claim of the
/// ingestion of the same bytes to attach to, or `409` when another ingestion holds it.
async fn claim_document(
    g: &AppState,
    id: &str,
    claim: &Claim,
    path: Path,
) -> Result<Option<Claim>, ApiError> {
    let ttl = g.claim_ttl(path);
    let held = g
        .shared
        .claim(id, claim, ttl)
        .await
        .map_err(|e| ApiError::unavailable(format!("redis: {e}")))?;
    let Some(held) = held else {
        return Ok(None);
    };
    match judge(g, id, held, claim, ttl).await? {
        Held::TakenOver => Ok(None),
        Held::Busy(held) => Err(busy(id, &held, g.settings.retry_after_secs)),
        Held::Attach(held) => Ok(Some(held)),
    }
}

/// The `202` of an upload that attached to the ingestion `held` of the same bytes.
fn attached(input: IngestInput, id: &str, held: &Claim, sha: Option<String>) -> Accepted {
    let path = match held.holder {
        Holder::Ingestion(path) => path,
        // A deletion is never attached to (it has no bytes to match).
        Holder::Deletion => Path::Temporal,
    };
    Accepted {
        input,
        version: None,
        path,
        fallback: None,
        workflow_id: (path == Path::Temporal).then(|| ingestion_workflow_id(id)),
        sha,
        attached: true,
    }
}

/// Stores the uploaded bytes; returns their location (`blob:<key>`).
async fn store_upload(g: &AppState, mime_type: &str, bytes: Bytes) -> Result<String, ApiError> {
    match g.stages().blobs().put("uploads", mime_type, bytes).await {
        Ok(blob) => Ok(format!("blob:{}", blob.key)),
        Err(e) => Err(ApiError::unavailable(format!("blob store: {e}"))),
    }
}

/// The version this ingestion will write: the stored one plus one, or the stored one when
/// the bytes are known and unchanged. Unknown (null) when the writer cannot be asked now;
/// the ingestion itself still runs.
async fn next_version(g: &AppState, id: &str, sha: Option<&String>) -> Option<u64> {
    match g
        .stages()
        .check(id.to_owned(), Some(Duration::from_secs(2)))
        .await
    {
        Ok(s) if s.present && Some(&s.content_sha256) == sha => Some(s.version),
        Ok(s) => Some(s.version + 1),
        Err(e) => {
            tracing::warn!(document = %id, error = %e, "cannot read the stored version");
            None
        }
    }
}

/// Gives the claim back (the document was ours, then the upload failed); returns `why`.
async fn release(g: &AppState, id: &str, claim: &Claim, why: ApiError) -> ApiError {
    if let Err(e) = g.shared.release(id, claim).await {
        tracing::warn!(document = %id, error = %e, "cannot release the claim");
    }
    why
}
