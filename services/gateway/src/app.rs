//! The gateway's state and HTTP API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use apex_common::error::ErrorCode;
use apex_proto::embedder::v1::EmbedRequest;
use apex_proto::writer::v1::SearchChunksRequest;
use apex_worker::ingest::status::{COMPLETED, DELETED, FAILED, IngestStatus, UNCHANGED};
use apex_worker::ingest::{
    DocumentIngestionWorkflow, IngestInput, Stages, document_id, ingestion_workflow_id,
    start_ingestion,
};
use axum::body::Bytes;
use axum::extract::{
    DefaultBodyLimit, FromRequest, Multipart, Path as UrlPath, Query, Request, State,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use temporalio_client::{
    Client, WorkflowDescribeOptions, WorkflowGetResultOptions, WorkflowQueryOptions,
};
use temporalio_common::protos::temporal::api::enums::v1::WorkflowExecutionStatus;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::legacy::Legacy;
use crate::metrics::Metrics;
use crate::rollout::{Path, RolloutCoordinator};
use crate::settings::GatewaySettings;
use crate::shared::{DocumentRecord, Shared};

/// How long the gateway holds an in-flight slot for a Temporal ingestion at most (the
/// workflow goes on after that; the slot is only this gateway's backpressure).
const TEMPORAL_HOLD: Duration = Duration::from_secs(3600);

/// A lazily made Temporal client. After a failed connect, further attempts wait a second,
/// so a Temporal outage costs each request nothing instead of a connect timeout.
struct TemporalLink {
    address: String,
    namespace: String,
    timeout: Duration,
    state: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    client: Option<Client>,
    /// When the last connect failed, and why.
    failed: Option<(Instant, String)>,
}

impl TemporalLink {
    async fn client(&self) -> Result<Client, String> {
        let mut state = self.state.lock().await;
        if let Some(c) = &state.client {
            return Ok(c.clone());
        }
        if let Some((at, why)) = &state.failed
            && at.elapsed() < Duration::from_secs(1)
        {
            return Err(why.clone());
        }
        let connect = apex_worker::client(&self.address, &self.namespace);
        let result = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!(
                "temporal at {} did not answer within {} ms",
                self.address,
                self.timeout.as_millis()
            )),
        };
        match result {
            Ok(c) => {
                state.client = Some(c.clone());
                state.failed = None;
                Ok(c)
            }
            Err(why) => {
                state.failed = Some((Instant::now(), why.clone()));
                Err(why)
            }
        }
    }
}

impl TemporalLink {
    /// Temporal failed a call: forget the client, and answer the next second's callers at
    /// once with `why` instead of letting each wait out a timeout.
    async fn mark_down(&self, why: &str) {
        let mut state = self.state.lock().await;
        state.client = None;
        state.failed = Some((Instant::now(), why.to_owned()));
    }
}

/// One in-flight ingestion's place: counted in `apex_gateway_in_flight` while held.
struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: prometheus::IntGauge,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self {
            _permit: permit,
            gauge: gauge.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Everything a request handler needs.
pub struct Gateway {
    pub settings: GatewaySettings,
    pub legacy: Legacy,
    pub shared: Shared,
    pub rollout: RolloutCoordinator,
    pub metrics: Metrics,
    temporal: TemporalLink,
    in_flight: Arc<Semaphore>,
    /// Legacy ingestions running in this process (they end with it), and the last record
    /// of each, so a shutdown can wait for them and say which it had to stop.
    legacy_tasks: std::sync::Mutex<tokio::task::JoinSet<()>>,
    legacy_running: std::sync::Mutex<std::collections::HashMap<String, DocumentRecord>>,
}

fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listen_addr", &self.settings.listen_addr)
            .finish_non_exhaustive()
    }
}

type AppState = Arc<Gateway>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Gateway {
    /// Builds the gateway: connects Redis (required: the rollout lives there) and prepares
    /// lazy clients of the services and Temporal.
    pub async fn new(settings: GatewaySettings) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let rollout = RolloutCoordinator::new(settings.temporal.rollout, &metrics.registry)?;
        let shared = Shared::connect(
            &settings.redis_url,
            &settings.rollout_key,
            Duration::from_secs(settings.status_ttl_secs),
        )
        .await
        .map_err(|e| anyhow::anyhow!("redis at {}: {e}", settings.redis_url))?;
        let legacy = Legacy::new(
            Stages::new(&settings.ingest)?,
            settings.legacy_max_attempts,
            Duration::from_secs(settings.legacy_call_timeout_secs),
        );
        Ok(Self {
            temporal: TemporalLink {
                address: settings.temporal.address.clone(),
                namespace: settings.temporal.namespace.clone(),
                timeout: Duration::from_millis(settings.temporal_timeout_ms),
                state: Mutex::new(LinkState::default()),
            },
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            legacy_tasks: std::sync::Mutex::new(tokio::task::JoinSet::new()),
            legacy_running: std::sync::Mutex::new(std::collections::HashMap::new()),
            settings,
            legacy,
            shared,
            rollout,
            metrics,
        })
    }

    fn stages(&self) -> &Stages {
        self.legacy.stages()
    }

    /// After the HTTP server has stopped: waits up to `grace` for the legacy ingestions
    /// still running, then stops the rest and records each as failed with the reason, so no
    /// status is left claiming progress that will never come.
    pub async fn drain(&self, grace: Duration) {
        let mut tasks = std::mem::take(&mut *locked(&self.legacy_tasks));
        if tasks.is_empty() {
            return;
        }
        tracing::info!(
            running = tasks.len(),
            grace_secs = grace.as_secs(),
            "waiting for legacy ingestions"
        );
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_ok() {
            return;
        }
        tasks.abort_all();
        let stopped: Vec<(String, DocumentRecord)> = locked(&self.legacy_running).drain().collect();
        for (id, mut record) in stopped {
            let mut status = record.status.take().unwrap_or_default();
            status.error = Some(format!(
                "the gateway stopped before this legacy ingestion finished (after {} s of shutdown grace, at status {}); upload it again",
                grace.as_secs(),
                status.status
            ));
            status.status = FAILED.to_owned();
            record.status = Some(status);
            tracing::warn!(document = %id, "legacy ingestion stopped by shutdown");
            self.metrics
                .finished
                .with_label_values(&["legacy", FAILED])
                .inc();
            if let Err(e) = self.shared.put_record(&id, &record).await {
                tracing::warn!(document = %id, error = %e, "cannot record the stopped ingestion");
            }
        }
    }

    /// The percentage every replica shares (Redis), or the last one known when Redis
    /// cannot be read.
    async fn refresh_rollout(&self) {
        match self.shared.rollout().await {
            Ok(Some(p)) => {
                let _ = self.rollout.set_percent(i64::from(p));
            }
            Ok(None) => {
                let _ = self.rollout.set_percent(self.settings.temporal.rollout);
            }
            Err(e) => {
                tracing::warn!(error = %e, percent = self.rollout.percent(), "cannot read the rollout percentage; keeping the last one");
            }
        }
    }

    fn temporal_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.temporal_timeout_ms)
    }
}

/// The router of the HTTP API.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let body_limit = usize::try_from(gateway.settings.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    Router::new()
        .route("/v1/documents", post(create_document))
        .route(
            "/v1/documents/{id}",
            get(document_status).delete(delete_document),
        )
        .route("/v1/search", get(search))
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
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&gateway),
            crate::metrics::observe,
        ))
        .with_state(gateway)
}

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

fn read_json(body: &[u8]) -> Result<Upload, ApiError> {
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
        ("", key) => key.to_owned(),
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

/// What `POST /v1/documents` answers.
fn accepted_body(
    input: &IngestInput,
    version: Option<u64>,
    path: Path,
    fallback: Option<&str>,
    workflow_id: Option<&str>,
    sha: Option<&str>,
) -> Value {
    let id = input.resolved_document_id();
    json!({
        "document_id": id,
        "version": version,
        "status": "accepted",
        "status_url": format!("/v1/documents/{id}"),
        "path": path.as_str(),
        "fallback": fallback.map(|reason| json!({ "reason": reason })),
        "workflow_id": workflow_id,
        "content_sha256": sha,
        "source": input.source,
    })
}

async fn create_document(
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
    let permit = Slot::new(permit, &g.metrics.in_flight);
    let limit = g.settings.max_upload_bytes;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut upload = if content_type.starts_with("multipart/form-data") {
        let form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::invalid("body", e.body_text()))?;
        read_multipart(form, limit).await?
    } else if content_type.starts_with("application/json") {
        let body = Bytes::from_request(request, &()).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(limit)
            } else {
                ApiError::invalid("body", e.body_text())
            }
        })?;
        read_json(&body)?
    } else {
        return Err(ApiError::new(
            ErrorCode::UnsupportedType,
            format!(
                "Content-Type `{content_type}` is not accepted: send multipart/form-data with a `file` field, or application/json with `url` or `key`"
            ),
        )
        .with_details(json!({ "accepted": ["multipart/form-data", "application/json"] })));
    };
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
    if !upload.document_id.trim().is_empty()
        && uuid::Uuid::parse_str(upload.document_id.trim()).is_err()
    {
        return Err(ApiError::invalid(
            "document_id",
            format!("document_id `{}` is not a UUID", upload.document_id),
        ));
    }
    let mut sha = None;
    if let Some(bytes) = upload.bytes.take() {
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
        let blob = g
            .stages()
            .blobs()
            .put("uploads", &upload.mime_type, bytes)
            .await
            .map_err(|e| ApiError::unavailable(format!("blob store: {e}")))?;
        if upload.external_id.trim().is_empty() {
            upload.external_id = if upload.file_name.is_empty() {
                blob.sha256.clone()
            } else {
                upload.file_name.clone()
            };
        }
        upload.location = format!("blob:{}", blob.key);
        sha = Some(blob.sha256);
    }
    let input = IngestInput {
        document_id: upload.document_id.trim().to_owned(),
        source: upload.source,
        external_id: upload.external_id,
        priority: upload.priority,
        location: upload.location,
        file_name: upload.file_name,
        mime_type: upload.mime_type,
        metadata: upload.metadata,
        max_write_attempts: 0,
    };
    let id = input.resolved_document_id();
    debug_assert_eq!(
        input.document_id.is_empty(),
        id == document_id(&input.source, &input.external_id)
    );
    // The version this ingestion will write: the stored one plus one, or the stored one
    // when the bytes are unchanged. Unknown (null) when the writer cannot be asked now;
    // the ingestion itself still runs.
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

    g.refresh_rollout().await;
    let mut path = g.rollout.decide(&id);
    let mut fallback = None;
    let mut workflow_id = None;
    if path == Path::Temporal {
        match start_on_temporal(&g, &input, permit).await {
            Ok(wid) => workflow_id = Some(wid),
            Err((why, permit)) => {
                g.temporal.mark_down(&why).await;
                g.metrics.temporal_unreachable.inc();
                if !g.settings.fallback_to_legacy {
                    return Err(ApiError::unavailable(format!(
                        "temporal is unreachable and fallback_to_legacy is off: {why}"
                    )));
                }
                tracing::warn!(document = %id, reason = %why, "temporal unreachable; falling back to the legacy path");
                g.metrics.fallbacks.inc();
                path = Path::Legacy;
                fallback = Some(why);
                start_on_legacy(&g, input.clone(), fallback.clone(), permit).await;
            }
        }
    } else {
        start_on_legacy(&g, input.clone(), None, permit).await;
    }
    g.metrics.accepted.with_label_values(&[path.as_str()]).inc();
    let body = accepted_body(
        &input,
        version,
        path,
        fallback.as_deref(),
        workflow_id.as_deref(),
        sha.as_deref(),
    );
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/documents/{id}")) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::ACCEPTED, headers, Json(body)).into_response())
}

/// Starts the workflow; on success the slot is held until it ends. On failure the slot
/// comes back with the reason, for the legacy path.
async fn start_on_temporal(
    g: &AppState,
    input: &IngestInput,
    permit: Slot,
) -> Result<String, (String, Slot)> {
    let client = match g.temporal.client().await {
        Ok(c) => c,
        Err(why) => return Err((why, permit)),
    };
    let queue = g.settings.temporal.task_queue.clone();
    let started = tokio::time::timeout(
        g.temporal_timeout(),
        start_ingestion(&client, &queue, input.clone()),
    )
    .await;
    let handle = match started {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return Err((format!("temporal refused the start: {e}"), permit)),
        Err(_) => {
            return Err((
                format!(
                    "temporal did not accept the start within {} ms",
                    g.settings.temporal_timeout_ms
                ),
                permit,
            ));
        }
    };
    let id = input.resolved_document_id();
    let workflow_id = ingestion_workflow_id(&id);
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
    tokio::spawn(async move {
        let _permit = permit;
        let outcome = tokio::time::timeout(
            TEMPORAL_HOLD,
            handle.get_result(WorkflowGetResultOptions::default()),
        )
        .await;
        let label = match outcome {
            Ok(Ok(s)) => s.status,
            Ok(Err(_)) => FAILED.to_owned(),
            Err(_) => "running".to_owned(),
        };
        gateway
            .metrics
            .finished
            .with_label_values(&["temporal", &label])
            .inc();
    });
    Ok(workflow_id)
}

/// Runs the ingestion on the legacy path in the background, its status kept in Redis.
async fn start_on_legacy(g: &AppState, input: IngestInput, fallback: Option<String>, permit: Slot) {
    let id = input.resolved_document_id();
    let record = DocumentRecord {
        path: Path::Legacy.as_str().to_owned(),
        fallback,
        accepted_at_ms: now_ms(),
        status: Some(IngestStatus {
            status: apex_worker::ingest::status::PENDING.to_owned(),
            document_id: id.clone(),
            source: input.source.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Err(e) = g.shared.put_record(&id, &record).await {
        tracing::warn!(document = %id, error = %e, "cannot record the status in redis");
    }
    locked(&g.legacy_running).insert(id.clone(), record.clone());
    let gateway = Arc::clone(g);
    let task = async move {
        let _permit = permit;
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
                        locked(&gateway.legacy_running).remove(&id);
                        gateway
                            .metrics
                            .finished
                            .with_label_values(&["legacy", &status.status])
                            .inc();
                    }
                    record.status = Some(status);
                    if let Some(r) = locked(&gateway.legacy_running).get_mut(&id) {
                        *r = record.clone();
                    }
                    if let Err(e) = gateway.shared.put_record(&id, &record).await {
                        tracing::warn!(document = %id, error = %e, "cannot record the status in redis");
                    }
                }
            })
            .await;
        if let Some(error) = &final_status.error {
            tracing::warn!(document = %final_status.document_id, %error, "legacy ingestion failed");
        }
    };
    let mut tasks = locked(&g.legacy_tasks);
    // Reap the finished ones so the set holds only running ingestions.
    while tasks.try_join_next().is_some() {}
    tasks.spawn(task);
}

fn status_body(status: &IngestStatus, path: &str, extra: Value) -> Value {
    let mut body = json!({
        "document_id": status.document_id,
        "path": path,
        "status": status.status,
        "source": status.source,
        "version": status.version,
        "content_sha256": status.content_sha256,
        "chunk_count": status.chunk_count,
        "entity_count": status.entity_count,
        "vector_count": status.vector_count,
        "steps": status.steps,
        "warnings": status.warnings,
        "error": status.error,
    });
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    body
}

/// The Temporal path's status: the running workflow's `get_status`, or the closed one's
/// result. `None` when there is no such workflow (or Temporal cannot say).
async fn temporal_status(g: &Gateway, id: &str) -> Option<Value> {
    let client = g.temporal.client().await.ok()?;
    let workflow_id = ingestion_workflow_id(id);
    let handle = client.get_workflow_handle::<DocumentIngestionWorkflow>(workflow_id.clone());
    let t = g.temporal_timeout();
    let desc = tokio::time::timeout(t, handle.describe(WorkflowDescribeOptions::default()))
        .await
        .ok()?
        .ok()?;
    let state = desc
        .raw()
        .workflow_execution_info
        .as_ref()
        .map(|i| i.status)
        .unwrap_or_default();
    let extra = json!({ "workflow_id": workflow_id });
    if state == WorkflowExecutionStatus::Running as i32 {
        let status = tokio::time::timeout(
            t,
            handle.query(
                DocumentIngestionWorkflow::get_status,
                (),
                WorkflowQueryOptions::default(),
            ),
        )
        .await
        .ok()?
        .ok()?;
        return Some(status_body(&status, "temporal", extra));
    }
    match tokio::time::timeout(t, handle.get_result(WorkflowGetResultOptions::default())).await {
        Ok(Ok(status)) => Some(status_body(&status, "temporal", extra)),
        Ok(Err(e)) => {
            let status = IngestStatus {
                status: FAILED.to_owned(),
                document_id: id.to_owned(),
                error: Some(apex_worker::error_chain(&e)),
                ..Default::default()
            };
            Some(status_body(&status, "temporal", extra))
        }
        Err(_) => None,
    }
}

async fn document_status(
    State(g): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let record = g.shared.record(&id).await.unwrap_or_else(|e| {
        tracing::warn!(document = %id, error = %e, "cannot read the gateway record");
        None
    });
    match &record {
        // The legacy path's status, or a deletion on either path, lives in the record.
        Some(r) if r.path == "legacy" || r.status.as_ref().is_some_and(|s| s.status == DELETED) => {
            if let Some(status) = &r.status {
                return Ok(Json(status_body(
                    status,
                    &r.path,
                    json!({ "fallback": r.fallback.as_ref().map(|reason| json!({ "reason": reason })) }),
                )));
            }
        }
        _ => {
            if let Some(body) = temporal_status(&g, &id).await {
                return Ok(Json(body));
            }
        }
    }
    // No ingestion the gateway knows of: what the stores hold (PostgreSQL, through the
    // writer, is the source of truth).
    let r = g
        .stages()
        .clients()
        .writer
        .clone()
        .inspect_document(apex_proto::writer::v1::InspectDocumentRequest {
            document_id: id.clone(),
        })
        .await
        .map_err(|s| ApiError::from_status("writer", &s))?
        .into_inner();
    if r.version == 0 {
        return Err(ApiError::not_found(format!("no document {id}")));
    }
    let pg = r
        .stores
        .iter()
        .find(|v| v.store == apex_proto::writer::v1::Store::Postgres as i32)
        .cloned()
        .unwrap_or_default();
    Ok(Json(json!({
        "document_id": id,
        "path": Value::Null,
        "status": "completed",
        "version": r.version,
        "content_sha256": r.content_sha256,
        "chunk_count": pg.chunk_count,
        "entity_count": pg.entity_count,
        "vector_count": pg.vector_count,
        "consistent": r.consistent,
    })))
}

fn parse_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|u| u.to_string())
        .map_err(|_| ApiError::invalid("id", format!("`{raw}` is not a document id (a UUID)")))
}

async fn delete_document(
    State(g): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    g.refresh_rollout().await;
    let mut path = g.rollout.decide(&id);
    let mut fallback = None;
    if path == Path::Temporal {
        match delete_on_temporal(&g, &id).await {
            Ok(existed) => {
                remember_deletion(&g, &id, Path::Temporal).await;
                return Ok(Json(json!({
                    "document_id": id, "deleted": existed, "path": "temporal",
                })));
            }
            Err(why) if g.settings.fallback_to_legacy => {
                g.temporal.mark_down(&why).await;
                g.metrics.temporal_unreachable.inc();
                g.metrics.fallbacks.inc();
                path = Path::Legacy;
                fallback = Some(why);
            }
            Err(why) => return Err(ApiError::unavailable(why)),
        }
    }
    let key = format!("legacy-delete/{id}/{}", uuid::Uuid::new_v4());
    let deleted = g
        .stages()
        .delete(
            id.clone(),
            key,
            Some(Duration::from_secs(g.settings.legacy_call_timeout_secs)),
        )
        .await
        .map_err(|e| {
            let code = e.code.map_or(ErrorCode::Unavailable, |c| {
                ErrorCode::from_grpc(tonic::Code::from(c))
            });
            ApiError::new(code, e.message)
        })?;
    remember_deletion(&g, &id, path).await;
    Ok(Json(json!({
        "document_id": id,
        "deleted": deleted.existed,
        "path": path.as_str(),
        "fallback": fallback.map(|reason| json!({ "reason": reason })),
    })))
}

/// Records the deletion, so the status says `deleted` rather than what the last
/// (finished) ingestion workflow said.
async fn remember_deletion(g: &Gateway, id: &str, path: Path) {
    let record = DocumentRecord {
        path: path.as_str().to_owned(),
        accepted_at_ms: now_ms(),
        status: Some(IngestStatus {
            status: DELETED.to_owned(),
            document_id: id.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Err(e) = g.shared.put_record(id, &record).await {
        tracing::warn!(document = %id, error = %e, "cannot record the deletion in redis");
    }
}

async fn delete_on_temporal(g: &Gateway, id: &str) -> Result<bool, String> {
    use apex_worker::ingest::{DeleteInput, DocumentDeletionWorkflow, deletion_workflow_id};
    use temporalio_client::{
        WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowStartOptions,
    };
    let client = g.temporal.client().await?;
    let started = tokio::time::timeout(
        g.temporal_timeout(),
        client.start_workflow(
            DocumentDeletionWorkflow::run,
            DeleteInput {
                document_id: id.to_owned(),
            },
            WorkflowStartOptions::new(
                g.settings.temporal.task_queue.clone(),
                deletion_workflow_id(id),
            )
            .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
            .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
            .build(),
        ),
    )
    .await
    .map_err(|_| "temporal did not accept the deletion in time".to_owned())?
    .map_err(|e| format!("temporal refused the deletion: {e}"))?;
    // A deletion is one write; wait for it, bounded.
    let done = tokio::time::timeout(
        Duration::from_secs(g.settings.legacy_call_timeout_secs),
        started.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .map_err(|_| "the deletion workflow did not finish in time".to_owned())?
    .map_err(|e| format!("the deletion failed: {}", apex_worker::error_chain(&e)))?;
    Ok(done.existed)
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<String>,
    source: Option<String>,
}

async fn search(
    State(g): State<AppState>,
    Query(params): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let q = params.q.unwrap_or_default();
    if q.trim().is_empty() {
        return Err(ApiError::invalid("q", "the query `q` is required"));
    }
    if q.len() > 2_000 {
        return Err(ApiError::invalid("q", "the query is over 2000 bytes"));
    }
    let limit = match params.limit.as_deref().map(str::trim) {
        None | Some("") => 10,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| {
                ApiError::invalid("limit", format!("limit must be 1–100, not `{raw}`"))
            })?,
    };
    let clients = g.stages().clients();
    let embedded = clients
        .embedder
        .clone()
        .embed(EmbedRequest {
            texts: vec![q.clone()],
        })
        .await
        .map_err(|s| ApiError::from_status("embedder", &s))?
        .into_inner();
    let vector = embedded
        .vectors
        .into_iter()
        .next()
        .map(|v| v.values)
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "embedder: no vector for the query"))?;
    let found = clients
        .writer
        .clone()
        .search_chunks(SearchChunksRequest {
            vector,
            model_id: embedded.model_id.clone(),
            limit,
            source: params.source.clone().unwrap_or_default(),
        })
        .await
        .map_err(|s| ApiError::from_status("writer", &s))?
        .into_inner();
    let hits: Vec<Value> = found
        .hits
        .into_iter()
        .map(|h| {
            json!({
                "score": h.score,
                "document_id": h.document_id,
                "chunk_id": h.chunk_id,
                "source": h.source,
                "version": h.version,
                "ordinal": h.ordinal,
                "page": h.page,
                "section": h.section,
                "text": h.text,
                "entities": h.entities.into_iter().map(|e| json!({
                    "id": e.entity_id, "type": e.entity_type, "name": e.name,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "query": q,
        "model_id": embedded.model_id,
        "collection": found.collection,
        "hits": hits,
    })))
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
    let writer = g
        .stages()
        .clients()
        .writer
        .clone()
        .inspect_document(tonic::Request::new(
            apex_proto::writer::v1::InspectDocumentRequest {
                document_id: uuid::Uuid::nil().to_string(),
            },
        ))
        .await
        .map(|_| ())
        .map_err(|s| s.message().to_owned());
    let temporal = g.temporal.client().await.map(|_| ());
    let ok = |r: &Result<(), String>| match r {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e}),
    };
    // Temporal is optional while the legacy path can take its traffic.
    let ready =
        redis.is_ok() && writer.is_ok() && (temporal.is_ok() || g.settings.fallback_to_legacy);
    let body = json!({
        "ready": ready,
        "checks": { "redis": ok(&redis), "writer": ok(&writer), "temporal": ok(&temporal) },
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(g): State<AppState>) -> Response {
    g.metrics
        .in_flight
        .set((g.settings.max_in_flight - g.in_flight.available_permits()) as i64);
    match g.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => ApiError::new(ErrorCode::Internal, e.to_string()).into_response(),
    }
}
