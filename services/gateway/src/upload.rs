//! `POST /v1/documents`: read and check the upload, claim the document, store the bytes,
//! and start the ingestion on the path the rollout picks (falling back to the legacy path
//! when Temporal cannot be reached).
//!
//! One document has at most one ingestion at a time, across paths and replicas: a Redis
//! claim taken before anything is stored. A second upload of the same bytes while one runs
//! attaches to it (`202`, `attached: true`); different bytes get `409` with `Retry-After`,
//! so no upload is silently dropped and two ingestions never race for the same version.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use apex_common::error::ErrorCode;
use apex_worker::ingest::status::{COMPLETED, DELETED, FAILED, IngestStatus, PENDING, UNCHANGED};
use apex_worker::ingest::{
    DocumentIngestionWorkflow, IngestInput, ingestion_workflow_id, start_ingestion,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{WorkflowDescribeOptions, WorkflowGetResultOptions};
use temporalio_common::protos::temporal::api::enums::v1::WorkflowExecutionStatus;

use crate::app::{AppState, Gateway, Running, Slot, TEMPORAL_HOLD, locked, now_ms};
use crate::error::ApiError;
use crate::rollout::Path;
use crate::shared::{Claim, DocumentRecord};

/// An ingestion as received, before it is stored and routed.
#[derive(Debug, Default)]
struct Upload {
    bytes: Option<Bytes>,
    location: String,
    file_name: String,
    mime_type: String,
    source: String,
    priority: i64,
    metadata: BTreeMap<String, String>,
    external_id: String,
    document_id: String,
}

/// `POST /v1/documents` as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct UploadJson {
    url: String,
    key: String,
    source: String,
    priority: i64,
    metadata: BTreeMap<String, String>,
    external_id: String,
    document_id: String,
    file_name: String,
    mime_type: String,
}

/// Object-store schemes a JSON `key` may use (besides local files when allowed).
const KEY_SCHEMES: &[&str] = &["blob:", "s3://", "gs://", "az://", "abfs://", "abfss://"];

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::TooLarge,
        format!("the document is over the upload limit of {limit} bytes"),
    )
    .with_details(json!({ "limit_bytes": limit, "setting": "max_upload_bytes" }))
}

fn parse_metadata(raw: &str) -> Result<BTreeMap<String, String>, ApiError> {
    if raw.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_json::from_str::<BTreeMap<String, String>>(raw).map_err(|e| {
        ApiError::invalid(
            "metadata",
            format!("metadata must be a JSON object of strings: {e}"),
        )
    })
}

fn multipart_error(e: &axum::extract::multipart::MultipartError, limit: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit)
    } else {
        ApiError::invalid(
            "body",
            format!("malformed multipart body: {}", e.body_text()),
        )
    }
}

async fn read_multipart(mut form: Multipart, limit: u64) -> Result<Upload, ApiError> {
    let mut upload = Upload::default();
    let mut priority = String::new();
    let mut metadata = String::new();
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(&e, limit))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            upload.file_name = field.file_name().unwrap_or_default().to_owned();
            upload.mime_type = field.content_type().unwrap_or_default().to_owned();
            let mut body = Vec::new();
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| multipart_error(&e, limit))?
            {
                body.extend_from_slice(&chunk);
                if body.len() as u64 > limit {
                    return Err(too_large(limit));
                }
            }
            upload.bytes = Some(body.into());
            continue;
        }
        let text = field.text().await.map_err(|e| multipart_error(&e, limit))?;
        match name.as_str() {
            "source" => upload.source = text,
            "priority" => priority = text,
            "metadata" => metadata = text,
            "external_id" => upload.external_id = text,
            "document_id" => upload.document_id = text,
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!(
                        "unknown form field `{other}`; the fields are file, source, priority, metadata, external_id, document_id"
                    ),
                ));
            }
        }
    }
    if upload.bytes.is_none() {
        return Err(ApiError::invalid(
            "file",
            "the form has no `file` field with the document",
        ));
    }
    if !priority.trim().is_empty() {
        upload.priority = priority.trim().parse().map_err(|_| {
            ApiError::invalid(
                "priority",
                format!("priority must be an integer, not `{priority}`"),
            )
        })?;
    }
    upload.metadata = parse_metadata(&metadata)?;
    Ok(upload)
}

fn read_json(body: &[u8], allow_local_files: bool) -> Result<Upload, ApiError> {
    let j: UploadJson = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("invalid JSON body: {e}")))?;
    let location = match (j.url.trim(), j.key.trim()) {
        ("", "") => {
            return Err(ApiError::invalid(
                "url",
                "give `url` (http(s)://…) or `key` (an object-store key such as s3://bucket/key or blob:<key>), or upload the file as multipart/form-data",
            ));
        }
        (url, "") => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ApiError::invalid(
                    "url",
                    format!("`{url}` is not an http(s) URL"),
                ));
            }
            url.to_owned()
        }
        ("", key) => {
            let local = key.starts_with("file://") || key.starts_with('/');
            if local && !allow_local_files {
                return Err(ApiError::invalid(
                    "key",
                    format!(
                        "`{key}` names a local file, which this gateway does not read (allow_local_files is off)"
                    ),
                ));
            }
            if !local && !KEY_SCHEMES.iter().any(|s| key.starts_with(s)) {
                return Err(ApiError::invalid(
                    "key",
                    format!(
                        "`{key}` is not an object-store key; use one of {}",
                        KEY_SCHEMES.join(", ")
                    ),
                ));
            }
            key.to_owned()
        }
        _ => return Err(ApiError::invalid("url", "give `url` or `key`, not both")),
    };
    let name = if j.file_name.is_empty() {
        location.rsplit('/').next().unwrap_or_default().to_owned()
    } else {
        j.file_name
    };
    Ok(Upload {
        bytes: None,
        external_id: if j.external_id.is_empty() {
            location.clone()
        } else {
            j.external_id
        },
        location,
        file_name: name,
        mime_type: j.mime_type,
        source: j.source,
        priority: j.priority,
        metadata: j.metadata,
        document_id: j.document_id,
    })
}

/// Reads the body by its content type.
async fn read_upload(
    request: Request,
    limit: u64,
    allow_local_files: bool,
) -> Result<Upload, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::invalid("body", e.body_text()))?;
        read_multipart(form, limit).await
    } else if content_type.starts_with("application/json") {
        let body = Bytes::from_request(request, &()).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(limit)
            } else {
                ApiError::invalid("body", e.body_text())
            }
        })?;
        read_json(&body, allow_local_files)
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedType,
            format!(
                "Content-Type `{content_type}` is not accepted: send multipart/form-data with a `file` field, or application/json with `url` or `key`"
            ),
        )
        .with_details(json!({ "accepted": ["multipart/form-data", "application/json"] })))
    }
}

/// Checks the fields every upload has; normalises the source and the document id.
fn check_fields(upload: &mut Upload) -> Result<(), ApiError> {
    if upload.source.trim().is_empty() {
        upload.source = "upload".to_owned();
    }
    if upload.source.len() > 100
        || !upload
            .source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError::invalid(
            "source",
            "source must be 1–100 characters of letters, digits, `-`, `_` or `.`",
        ));
    }
    let given = upload.document_id.trim();
    if !given.is_empty() {
        // One spelling per id: the store key, the workflow id, the rollout bucket and the
        // status lookups all use the canonical lower-case hyphenated form.
        upload.document_id = uuid::Uuid::parse_str(given)
            .map_err(|_| {
                ApiError::invalid(
                    "document_id",
                    format!("document_id `{given}` is not a UUID"),
                )
            })?
            .to_string();
    }
    if let Some(bytes) = &upload.bytes {
        if bytes.is_empty() {
            return Err(ApiError::invalid("file", "the file is empty"));
        }
        if !crate::formats::accepted(&upload.file_name, &upload.mime_type) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedType,
                format!(
                    "`{}` ({}) is not a format the parser reads",
                    upload.file_name,
                    if upload.mime_type.is_empty() {
                        "no media type"
                    } else {
                        &upload.mime_type
                    }
                ),
            )
            .with_details(json!({
                "media_types": crate::formats::MEDIA_TYPES,
                "extensions": crate::formats::EXTENSIONS,
            })));
        }
    }
    Ok(())
}

/// What `POST /v1/documents` answers.
struct Accepted<'a> {
    input: &'a IngestInput,
    version: Option<u64>,
    path: Path,
    fallback: Option<&'a str>,
    workflow_id: Option<String>,
    sha: Option<&'a str>,
    attached: bool,
}

impl Accepted<'_> {
    fn response(self) -> Response {
        let id = self.input.resolved_document_id();
        let body = json!({
            "document_id": id,
            "version": self.version,
            "status": "accepted",
            "status_url": format!("/v1/documents/{id}"),
            "path": self.path.as_str(),
            "fallback": self.fallback.map(|reason| json!({ "reason": reason })),
            "workflow_id": self.workflow_id,
            "content_sha256": self.sha,
            "source": self.input.source,
            "attached": self.attached,
        });
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("/v1/documents/{id}")) {
            headers.insert(header::LOCATION, v);
        }
        (StatusCode::ACCEPTED, headers, Json(body)).into_response()
    }
}

/// How long a claim may stand without its ingestion's record: the time between taking
/// the claim and starting the ingestion (storing the upload included).
const CLAIM_START_MS: u64 = 60_000;

/// What to do about a claim someone else holds.
pub(crate) enum Held {
    /// The same bytes are being ingested: answer with that ingestion.
    Attach(Claim),
    /// The holder is gone: the claim was taken over.
    TakenOver,
    /// Another ingestion runs: the caller must wait.
    Busy(Claim),
}

/// Whether `held` still stands: a Temporal claim whose workflow is no longer running, or
/// a legacy claim whose status is final, was left behind (its holder has not released it
/// yet, or never will) and is taken over.
pub(crate) async fn judge(
    g: &Gateway,
    id: &str,
    held: Claim,
    mine: &Claim,
    ttl: Duration,
) -> Result<Held, ApiError> {
    let same = !mine.sha256.is_empty() && mine.sha256 == held.sha256;
    let alive = if held.path == "delete" {
        // A deletion is short and bounded by its claim's time to live.
        true
    } else if held.path == Path::Temporal.as_str() {
        match g.temporal.client().await {
            // Temporal cannot be asked: the workflow may well be running.
            Err(_) => true,
            Ok(client) => {
                let handle = client
                    .get_workflow_handle::<DocumentIngestionWorkflow>(ingestion_workflow_id(id));
                match tokio::time::timeout(
                    g.temporal_timeout(),
                    handle.describe(WorkflowDescribeOptions::default()),
                )
                .await
                {
                    Ok(Ok(d)) => {
                        let info = d.raw().workflow_execution_info.as_ref();
                        let running =
                            info.map(|i| i.status) == Some(WorkflowExecutionStatus::Running as i32);
                        // A closed run that began before the claim is an earlier
                        // ingestion: the claimer may be about to start its own.
                        let earlier = info.and_then(|i| i.start_time.as_ref()).is_some_and(|t| {
                            (t.seconds.max(0) as u64) * 1000
                                + u64::from(t.nanos.max(0) as u32 / 1_000_000)
                                + 1_000
                                < held.at_ms
                        });
                        running || (earlier && now_ms().saturating_sub(held.at_ms) < CLAIM_START_MS)
                    }
                    // Not started (yet): the claimer may be about to start it.
                    Ok(Err(temporalio_client::errors::WorkflowInteractionError::NotFound(_))) => {
                        now_ms().saturating_sub(held.at_ms) < CLAIM_START_MS
                    }
                    _ => true,
                }
            }
        }
    } else {
        let record = g
            .shared
            .record(id)
            .await
            .map_err(|e| ApiError::unavailable(format!("redis: {e}")))?;
        // The record of this claim's ingestion (written after the claim was taken) says
        // whether it still runs. Without one, the claimer is between taking the claim and
        // starting, or vanished there (a dropped request): give it a short while.
        let fresh = now_ms().saturating_sub(held.at_ms) < CLAIM_START_MS;
        match record.and_then(|r| r.status.map(|s| (r.accepted_at_ms, s))) {
            Some((accepted, s)) if accepted + 1_000 >= held.at_ms => {
                !matches!(s.status.as_str(), COMPLETED | UNCHANGED | FAILED | DELETED)
            }
            _ => fresh,
        }
    };
    if alive {
        return Ok(if same {
            Held::Attach(held)
        } else {
            Held::Busy(held)
        });
    }
    let taken = g
        .shared
        .take_over(id, &held, mine, ttl)
        .await
        .map_err(|e| ApiError::unavailable(format!("redis: {e}")))?;
    Ok(if taken {
        Held::TakenOver
    } else {
        // It changed hands meanwhile: someone else is ingesting now.
        Held::Busy(held)
    })
}

/// `409` for a document another ingestion (or a deletion) holds.
pub(crate) fn busy(id: &str, held: &Claim, retry_after_secs: u64) -> ApiError {
    let what = if held.sha256 == "delete" {
        "being deleted".to_owned()
    } else {
        format!("being ingested on the {} path", held.path)
    };
    ApiError {
        retry_after_secs: Some(retry_after_secs),
        ..ApiError::new(
            ErrorCode::AlreadyExists,
            format!("document {id} is {what}; retry when that has ended"),
        )
        .with_details(json!({
            "document_id": id,
            "path": held.path,
            "since_ms": held.at_ms,
            "status_url": format!("/v1/documents/{id}"),
        }))
    }
}

pub(crate) async fn create_document(
    State(g): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let Ok(permit) = Arc::clone(&g.in_flight).try_acquire_owned() else {
        g.metrics.rejected.inc();
        return Err(ApiError::busy(
            g.settings.max_in_flight,
            g.settings.retry_after_secs,
        ));
    };
    let slot = Slot::new(permit, &g.metrics.in_flight);
    let mut upload = read_upload(
        request,
        g.settings.max_upload_bytes,
        g.settings.allow_local_files,
    )
    .await?;
    check_fields(&mut upload)?;
    let sha = upload
        .bytes
        .as_ref()
        .map(|b| hex::encode(Sha256::digest(b)));
    if upload.external_id.trim().is_empty() {
        // Without an id in its source, a file is known by its bytes: the same bytes are
        // the same document, and two files that share a name never overwrite each other.
        upload.external_id = sha.clone().unwrap_or_default();
    }
    let mut input = IngestInput {
        document_id: upload.document_id.clone(),
        source: upload.source.clone(),
        external_id: upload.external_id.clone(),
        priority: upload.priority,
        location: upload.location.clone(),
        file_name: upload.file_name.clone(),
        mime_type: upload.mime_type.clone(),
        metadata: upload.metadata.clone(),
        max_write_attempts: 0,
    };
    let id = input.resolved_document_id();

    g.refresh_rollout().await;
    let mut path = g.rollout.decide(&id);
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

    let mut claim = Claim {
        token: uuid::Uuid::new_v4().to_string(),
        sha256: sha.clone().unwrap_or_default(),
        path: path.as_str().to_owned(),
        at_ms: now_ms(),
    };
    let ttl = g.claim_ttl(path);
    let held = g
        .shared
        .claim(&id, &claim, ttl)
        .await
        .map_err(|e| ApiError::unavailable(format!("redis: {e}")))?;
    if let Some(held) = held {
        match judge(&g, &id, held, &claim, ttl).await? {
            Held::TakenOver => {}
            Held::Busy(held) => return Err(busy(&id, &held, g.settings.retry_after_secs)),
            Held::Attach(held) => {
                let path = if held.path == Path::Legacy.as_str() {
                    Path::Legacy
                } else {
                    Path::Temporal
                };
                return Ok(Accepted {
                    input: &input,
                    version: None,
                    path,
                    fallback: None,
                    workflow_id: (path == Path::Temporal).then(|| ingestion_workflow_id(&id)),
                    sha: sha.as_deref(),
                    attached: true,
                }
                .response());
            }
        }
    }

    // From here on the document is ours: every early return gives the claim back.
    let release = |why: ApiError| {
        let g = Arc::clone(&g);
        let (id, claim) = (id.clone(), claim.clone());
        async move {
            if let Err(e) = g.shared.release(&id, &claim).await {
                tracing::warn!(document = %id, error = %e, "cannot release the claim");
            }
            why
        }
    };
    if let Some(bytes) = upload.bytes.take() {
        match g
            .stages()
            .blobs()
            .put("uploads", &upload.mime_type, bytes)
            .await
        {
            Ok(blob) => input.location = format!("blob:{}", blob.key),
            Err(e) => return Err(release(ApiError::unavailable(format!("blob store: {e}"))).await),
        }
    }
    // The version this ingestion will write: the stored one plus one, or the stored one
    // when the bytes are known and unchanged. Unknown (null) when the writer cannot be
    // asked now; the ingestion itself still runs.
    let version = match g
        .stages()
        .check(id.clone(), Some(Duration::from_secs(2)))
        .await
    {
        Ok(s) if s.present && Some(&s.content_sha256) == sha.as_ref() => Some(s.version),
        Ok(s) => Some(s.version + 1),
        Err(e) => {
            tracing::warn!(document = %id, error = %e, "cannot read the stored version");
            None
        }
    };

    let mut fallback = None;
    let mut workflow_id = None;
    if path == Path::Temporal {
        match start_on_temporal(&g, &input, slot, claim.clone()).await {
            Ok(wid) => workflow_id = Some(wid),
            Err((why, slot)) => {
                g.temporal.mark_down(&why).await;
                g.metrics.temporal_unreachable.inc();
                if !g.settings.fallback_to_legacy {
                    return Err(release(unreachable_without_fallback(
                        &why,
                        g.settings.retry_after_secs,
                    ))
                    .await);
                }
                tracing::warn!(document = %id, reason = %why, "temporal unreachable; falling back to the legacy path");
                g.metrics.fallbacks.inc();
                path = Path::Legacy;
                claim.path = path.as_str().to_owned();
                if let Err(e) = g.shared.update_claim(&id, &claim, g.claim_ttl(path)).await {
                    tracing::warn!(document = %id, error = %e, "cannot move the claim to the legacy path");
                }
                fallback = Some(why);
                start_on_legacy(&g, input.clone(), fallback.clone(), slot, claim).await;
            }
        }
    } else {
        start_on_legacy(&g, input.clone(), None, slot, claim).await;
    }
    g.metrics.accepted.with_label_values(&[path.as_str()]).inc();
    Ok(Accepted {
        input: &input,
        version,
        path,
        fallback: fallback.as_deref(),
        workflow_id,
        sha: sha.as_deref(),
        attached: false,
    }
    .response())
}

fn unreachable_without_fallback(why: &str, retry_after_secs: u64) -> ApiError {
    ApiError {
        retry_after_secs: Some(retry_after_secs),
        ..ApiError::unavailable(format!(
            "temporal is unreachable and fallback_to_legacy is off: {why}"
        ))
    }
}

/// Starts the workflow; on success the slot and the claim are held until it closes. On
/// failure the slot comes back with the reason, for the legacy path. A start that timed
/// out may still have reached Temporal: when the workflow turns out to be running, it
/// counts as started (never two ingestions of one document).
async fn start_on_temporal(
    g: &AppState,
    input: &IngestInput,
    slot: Slot,
    claim: Claim,
) -> Result<String, (String, Slot)> {
    let client = match g.temporal.client().await {
        Ok(c) => c,
        Err(why) => return Err((why, slot)),
    };
    let id = input.resolved_document_id();
    let workflow_id = ingestion_workflow_id(&id);
    let queue = g.settings.temporal.task_queue.clone();
    let started = tokio::time::timeout(
        g.temporal_timeout(),
        start_ingestion(&client, &queue, input.clone()),
    )
    .await;
    match started {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err((format!("temporal refused the start: {e}"), slot)),
        Err(_) => {
            let handle =
                client.get_workflow_handle::<DocumentIngestionWorkflow>(workflow_id.clone());
            let running = tokio::time::timeout(
                g.temporal_timeout(),
                handle.describe(WorkflowDescribeOptions::default()),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .is_some_and(|d| {
                d.raw().workflow_execution_info.as_ref().map(|i| i.status)
                    == Some(WorkflowExecutionStatus::Running as i32)
            });
            if !running {
                return Err((
                    format!(
                        "temporal did not accept the start within {} ms",
                        g.settings.temporal_timeout_ms
                    ),
                    slot,
                ));
            }
        }
    }
    let record = DocumentRecord {
        path: Path::Temporal.as_str().to_owned(),
        workflow_id: Some(workflow_id.clone()),
        accepted_at_ms: now_ms(),
        ..Default::default()
    };
    if let Err(e) = g.shared.put_record(&id, &record).await {
        tracing::warn!(document = %id, error = %e, "cannot record the path in redis");
    }
    let gateway = Arc::clone(g);
    let waited = workflow_id.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let label = wait_for_close(&client, &waited).await;
        if let Some(label) = label {
            gateway
                .metrics
                .finished
                .with_label_values(&["temporal", &label])
                .inc();
            if let Err(e) = gateway.shared.release(&id, &claim).await {
                tracing::warn!(document = %id, error = %e, "cannot release the claim");
            }
        }
    });
    Ok(workflow_id)
}

/// Waits (at most [`TEMPORAL_HOLD`]) for the workflow to close and returns its final
/// status; a lost connection is retried, not taken for the end. `None` when it still runs.
async fn wait_for_close(client: &temporalio_client::Client, workflow_id: &str) -> Option<String> {
    let handle = client.get_workflow_handle::<DocumentIngestionWorkflow>(workflow_id.to_owned());
    let deadline = tokio::time::Instant::now() + TEMPORAL_HOLD;
    let mut pause = Duration::from_millis(500);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, handle.get_result(WorkflowGetResultOptions::default()))
            .await
        {
            Err(_) => return None,
            Ok(Ok(status)) => return Some(status.status),
            Ok(Err(
                WorkflowGetResultError::Failed(_)
                | WorkflowGetResultError::Cancelled { .. }
                | WorkflowGetResultError::Terminated { .. }
                | WorkflowGetResultError::TimedOut
                | WorkflowGetResultError::NotFound(_),
            )) => return Some(FAILED.to_owned()),
            Ok(Err(e)) => {
                tracing::debug!(workflow = %workflow_id, error = %e, "waiting for the workflow; retrying");
                tokio::time::sleep(pause.min(left)).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Runs the ingestion on the legacy path in the background, its status kept in Redis, the
/// claim given back when it ends.
async fn start_on_legacy(
    g: &AppState,
    input: IngestInput,
    fallback: Option<String>,
    slot: Slot,
    claim: Claim,
) {
    let id = input.resolved_document_id();
    let record = DocumentRecord {
        path: Path::Legacy.as_str().to_owned(),
        fallback,
        accepted_at_ms: now_ms(),
        status: Some(IngestStatus {
            status: PENDING.to_owned(),
            document_id: id.clone(),
            source: input.source.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Err(e) = g.shared.put_record(&id, &record).await {
        tracing::warn!(document = %id, error = %e, "cannot record the status in redis");
    }
    locked(&g.legacy_running).insert(
        id.clone(),
        Running {
            record: record.clone(),
            claim: claim.clone(),
        },
    );
    let gateway = Arc::clone(g);
    let task = async move {
        let _slot = slot;
        let final_status = gateway
            .legacy
            .ingest(&input, |status| {
                let gateway = Arc::clone(&gateway);
                let mut record = record.clone();
                let id = id.clone();
                async move {
                    let done = matches!(status.status.as_str(), COMPLETED | UNCHANGED | FAILED);
                    if done {
                        // Counted before the final status is visible, so whoever reads
                        // that status finds it counted too.
                        gateway
                            .metrics
                            .finished
                            .with_label_values(&["legacy", &status.status])
                            .inc();
                    }
                    record.status = Some(status);
                    if let Some(r) = locked(&gateway.legacy_running).get_mut(&id) {
                        r.record = record.clone();
                    }
                    // The final status must land: a few tries.
                    for attempt in 0..if done { 5 } else { 1 } {
                        match gateway.shared.put_record(&id, &record).await {
                            Ok(()) => break,
                            Err(e) => {
                                tracing::warn!(document = %id, attempt, error = %e, "cannot record the status in redis");
                                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                            }
                        }
                    }
                }
            })
            .await;
        let id = final_status.document_id.clone();
        locked(&gateway.legacy_running).remove(&id);
        if let Err(e) = gateway.shared.release(&id, &claim).await {
            tracing::warn!(document = %id, error = %e, "cannot release the claim");
        }
        if let Some(error) = &final_status.error {
            tracing::warn!(document = %id, %error, "legacy ingestion failed");
        }
    };
    let mut tasks = locked(&g.legacy_tasks);
    // Reap the finished ones so the set holds only running ingestions.
    while tasks.try_join_next().is_some() {}
    tasks.spawn(task);
}
