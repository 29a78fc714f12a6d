//! `POST /v1/documents`: read and check the upload, claim the document, store the bytes,
//! and start the ingestion on the path the rollout picks (falling back to the legacy path
//! when Temporal cannot be reached).
//!
//! One document has at most one ingestion at a time, across paths and replicas: a Redis
//! claim taken before anything is stored. A second upload of the same bytes while one runs
//! attaches to it (`202`, `attached: true`); different bytes get `409` with `Retry-After`,
//! so no upload is silently dropped and two ingestions never race for the same version.

use std::sync::Arc;
use std::time::Duration;

use apex_ingestion::status::{FAILED, IngestStatus, PENDING};
use apex_ingestion::workflows::{Ingestion, start_ingestion};
use apex_ingestion::{IngestInput, ingestion_workflow_id};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{WorkflowDescribeOptions, WorkflowGetResultOptions};
use temporalio_common::protos::temporal::api::enums::v1::WorkflowExecutionStatus;

use crate::claims::{Held, busy, judge};
use crate::error::ApiError;
use crate::intake::{check_fields, read_upload};
use crate::rollout::Path;
use crate::shared::{Claim, DocumentRecord, Holder};
use crate::state::{AppState, Running, Slot, TEMPORAL_HOLD, locked, now_ms};

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
        holder: Holder::Ingestion(path),
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
                let path = match held.holder {
                    Holder::Ingestion(path) => path,
                    // A deletion is never attached to (it has no bytes to match).
                    Holder::Deletion => Path::Temporal,
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
                claim.holder = Holder::Ingestion(path);
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
            let handle = client.get_workflow_handle::<Ingestion>(workflow_id.clone());
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
    let handle = client.get_workflow_handle::<Ingestion>(workflow_id.to_owned());
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
                    let done = status.is_final();
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
