//! `GET /v1/documents/{id}` (status) and `DELETE /v1/documents/{id}`.
//!
//! Status comes from where the ingestion lives: the workflow (its `get_status` while it
//! runs, its result once closed), the legacy path's record in Redis, or, when the gateway
//! knows of no ingestion, what PostgreSQL holds (through the writer). When the place that
//! knows cannot be asked, the answer is `503`, never a guess.

use std::time::Duration;

use apex_common::error::ErrorCode;
use apex_ingestion::live::further;
use apex_ingestion::status::{COMPLETED, DELETED, FAILED, IngestStatus, PENDING};
use apex_ingestion::steps::WRITE_TIMEOUT;
use apex_ingestion::workflows::{Deletion, Ingestion, IngestionStatus};
use apex_ingestion::workflows::{STATUS, STATUS_MEMO};
use apex_ingestion::{DeleteInput, deletion_workflow_id, ingestion_workflow_id};
use apex_proto::writer::v1::{InspectDocumentRequest, Store};
use axum::Json;
use axum::extract::{Path as UrlPath, State};
use serde_json::{Value, json};
use temporalio_client::errors::{WorkflowGetResultError, WorkflowInteractionError};
use temporalio_client::{
    WorkflowDescribeOptions, WorkflowGetResultOptions, WorkflowIdConflictPolicy,
    WorkflowIdReusePolicy, WorkflowQueryOptions, WorkflowStartOptions,
};
use temporalio_common::protos::temporal::api::enums::v1::WorkflowExecutionStatus;

use crate::error::ApiError;
use crate::rollout::Path;
use crate::search::within;
use crate::shared::{Claim, DocumentRecord, Holder};
use crate::state::{AppState, Gateway, now_ms};

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

/// A workflow's history before its first workflow task completes: started, task scheduled,
/// task started.
const FIRST_TASK_EVENTS: usize = 3;

/// The Temporal path's status, from the workflow's description: the status it keeps in its
/// memo (written as each step begins and when it ends), with the steps it is waiting for from
/// the pending activities. A workflow without that memo (started by an older worker) is asked
/// with its `get_status` query while it runs (or, when the worker does not answer, the
/// `Status` search attribute stands in), and read from its result once closed; so is a
/// closed one whose memo is not final (terminated, timed out). `Ok(None)` when there is no
/// such workflow; `Err` when Temporal cannot be asked.
async fn temporal_status(
    g: &Gateway,
    id: &str,
    live: Option<&IngestStatus>,
) -> Result<Option<Value>, String> {
    let client = g.temporal.client().await?;
    let workflow_id = ingestion_workflow_id(id);
    let handle = client.get_workflow_handle::<Ingestion>(workflow_id.clone());
    let t = g.temporal_timeout();
    let desc =
        match tokio::time::timeout(t, handle.describe(WorkflowDescribeOptions::default())).await {
            Err(_) => {
                return Err(format!(
                    "temporal did not answer within {} ms",
                    t.as_millis()
                ));
            }
            Ok(Err(WorkflowInteractionError::NotFound(_))) => return Ok(None),
            Ok(Err(e)) => return Err(format!("temporal: {e}")),
            Ok(Ok(d)) => d,
        };
    let state = desc
        .raw()
        .workflow_execution_info
        .as_ref()
        .map(|i| i.status)
        .unwrap_or_default();
    let running = state == WorkflowExecutionStatus::Running as i32;
    let extra = json!({ "workflow_id": workflow_id });
    let waiting = |status: &IngestStatus| {
        let waiting = crate::waiting::waiting(
            &desc.raw().pending_activities,
            status.step_started_ms,
            std::time::SystemTime::now(),
        );
        json!({ "workflow_id": workflow_id, "waiting": waiting })
    };
    // A memo that cannot be decoded is treated as absent: the query or the result answers.
    let memo = desc.memo().get::<IngestStatus>(STATUS_MEMO).ok().flatten();
    match (&memo, live) {
        // The worker's live status of this run may be further along than the memo, which
        // the server has only once the workflow task completes.
        (Some(memo), Some(live)) if running => {
            let status = further(live, memo);
            return Ok(Some(status_body(status, "temporal", waiting(status))));
        }
        (None, Some(live)) if running => {
            return Ok(Some(status_body(live, "temporal", waiting(live))));
        }
        _ => {}
    }
    match memo {
        Some(status) if running => {
            return Ok(Some(status_body(&status, "temporal", waiting(&status))));
        }
        Some(status) if status.is_final() => {
            return Ok(Some(status_body(&status, "temporal", extra)));
        }
        // Started, its first workflow task not yet done (it writes the first memo): pending,
        // whichever worker runs it. A query now would wait behind that task.
        None if running && desc.history_length() <= FIRST_TASK_EVENTS => {
            let status = IngestStatus {
                status: PENDING.to_owned(),
                document_id: id.to_owned(),
                ..Default::default()
            };
            return Ok(Some(status_body(&status, "temporal", extra)));
        }
        _ => {}
    }
    if running {
        let query = handle.query(IngestionStatus, (), WorkflowQueryOptions::default());
        return Ok(Some(match tokio::time::timeout(t, query).await {
            Ok(Ok(status)) => status_body(&status, "temporal", waiting(&status)),
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {} ms", t.as_millis()),
                };
                let status = IngestStatus {
                    status: desc
                        .search_attributes()
                        .get(&STATUS)
                        .unwrap_or_else(|| "pending".to_owned()),
                    document_id: id.to_owned(),
                    ..Default::default()
                };
                status_body(
                    &status,
                    "temporal",
                    json!({
                        "workflow_id": workflow_id,
                        "detail": format!("running; the worker did not answer the status query ({why}), so counts and steps are missing"),
                    }),
                )
            }
        }));
    }
    match tokio::time::timeout(t, handle.get_result(WorkflowGetResultOptions::default())).await {
        Ok(Ok(status)) => Ok(Some(status_body(&status, "temporal", extra))),
        Ok(Err(WorkflowGetResultError::Rpc(s))) => Err(format!("temporal: {}", s.message())),
        Ok(Err(e)) => {
            let status = IngestStatus {
                status: FAILED.to_owned(),
                document_id: id.to_owned(),
                error: Some(apex_ingestion::error_chain(&e)),
                ..Default::default()
            };
            Ok(Some(status_body(&status, "temporal", extra)))
        }
        Err(_) => Err(format!(
            "temporal did not answer within {} ms",
            t.as_millis()
        )),
    }
}

/// A legacy status that has not moved for longer than any legacy ingestion can take: its
/// gateway died (a stopped gateway records its stopped ingestions as failed).
fn lost(g: &Gateway, record: &DocumentRecord, status: &IngestStatus) -> bool {
    let final_status = status.is_final();
    let still = now_ms().saturating_sub(record.updated_at_ms);
    !final_status && Duration::from_millis(still) > g.legacy.longest()
}

pub(crate) async fn document_status(
    State(g): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let (record, live) = g
        .shared
        .record_and_live(&id)
        .await
        .map_err(|e| ApiError::unavailable(format!("redis: {e}")))?;
    let fallback = |r: &DocumentRecord| json!({ "fallback": r.fallback.as_ref().map(|reason| json!({ "reason": reason })) });
    if let Some(r) = &record
        && let Some(status) = &r.status
        && (r.path == Path::Legacy.as_str() || status.status == DELETED)
    {
        if lost(&g, r, status) {
            let mut s = status.clone();
            s.error = Some(format!(
                "the gateway running this legacy ingestion stopped at status {}; upload it again",
                s.status
            ));
            s.status = FAILED.to_owned();
            return Ok(Json(status_body(&s, &r.path, fallback(r))));
        }
        return Ok(Json(status_body(status, &r.path, fallback(r))));
    }
    // The worker's live status of the run this gateway started answers while it is fresh
    // (or final) and no step waits on the server; else Temporal is asked.
    let run = record
        .as_ref()
        .filter(|r| r.path == Path::Temporal.as_str())
        .and_then(|r| r.run_id.as_deref());
    let live = live.filter(|l| run.is_some_and(|run| l.run_id == run));
    let fresh = Duration::from_millis(g.settings.live_status_fresh_ms);
    if let (Some(l), Some(run)) = (&live, run)
        && !fresh.is_zero()
        && l.answers(run, now_ms(), fresh)
    {
        g.metrics.status_reads.with_label_values(&["live"]).inc();
        let workflow_id = ingestion_workflow_id(&id);
        return Ok(Json(status_body(
            &l.status,
            "temporal",
            json!({ "workflow_id": workflow_id }),
        )));
    }
    g.metrics
        .status_reads
        .with_label_values(&["temporal"])
        .inc();
    match temporal_status(&g, &id, live.as_ref().map(|l| &l.status)).await {
        Ok(Some(body)) => return Ok(Json(body)),
        Ok(None) => {}
        // The record says the workflow has it: without Temporal nobody can say more.
        Err(why) if record.is_some() => {
            return Err(ApiError {
                retry_after_secs: Some(g.settings.retry_after_secs),
                ..ApiError::unavailable(format!(
                    "the ingestion runs on temporal, which cannot be asked now: {why}"
                ))
            });
        }
        Err(why) => tracing::debug!(document = %id, %why, "temporal cannot be asked"),
    }
    // No ingestion the gateway knows of: what the stores hold (PostgreSQL, through the
    // writer, is the source of truth).
    let mut writer = g.stages().clients().writer.clone();
    let r = within(
        "writer",
        writer.inspect_document(InspectDocumentRequest {
            document_id: id.clone(),
        }),
    )
    .await?;
    if r.version == 0 {
        return Err(ApiError::not_found(format!("no document {id}")));
    }
    let pg = r
        .stores
        .iter()
        .find(|v| v.store == Store::Postgres as i32)
        .cloned()
        .unwrap_or_default();
    Ok(Json(json!({
        "document_id": id,
        "path": Value::Null,
        "status": COMPLETED,
        "version": r.version,
        "content_sha256": r.content_sha256,
        "chunk_count": pg.chunk_count,
        "entity_count": pg.entity_count,
        "vector_count": pg.vector_count,
        "consistent": r.consistent,
    })))
}

pub(crate) fn parse_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|u| u.to_string())
        .map_err(|_| ApiError::invalid("id", format!("`{raw}` is not a document id (a UUID)")))
}

/// Why a deletion through Temporal did not happen.
enum DeleteFailure {
    /// Temporal could not be reached: the legacy path may delete instead.
    Unreachable(String),
    /// The deletion ran and failed, or did not finish in time: no second attempt here.
    Failed(String),
}

pub(crate) async fn delete_document(
    State(g): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    // A deletion claims the document like an ingestion: no upload runs meanwhile, and a
    // running ingestion is not undone by its own write a moment later.
    let claim = Claim {
        token: uuid::Uuid::new_v4().to_string(),
        sha256: String::new(),
        holder: Holder::Deletion,
        at_ms: now_ms(),
    };
    let redis = |e: anyhow::Error| ApiError::unavailable(format!("redis: {e}"));
    let ttl = WRITE_TIMEOUT * 2;
    if let Some(held) = g.shared.claim(&id, &claim, ttl).await.map_err(redis)? {
        use crate::claims::{Held, busy, judge};
        match judge(&g, &id, held, &claim, ttl).await? {
            Held::TakenOver => {}
            Held::Attach(held) | Held::Busy(held) => {
                return Err(busy(&id, &held, g.settings.retry_after_secs));
            }
        }
    }
    let result = delete_claimed(&g, &id).await;
    if let Err(e) = g.shared.release(&id, &claim).await {
        tracing::warn!(document = %id, error = %e, "cannot release the claim");
    }
    result
}

async fn delete_claimed(g: &AppState, id: &str) -> Result<Json<Value>, ApiError> {
    g.refresh_rollout().await;
    let mut path = g.rollout.decide(id);
    let mut fallback = None;
    let mut existed = None;
    if path == Path::Temporal {
        match delete_on_temporal(g, id).await {
            Ok(e) => existed = Some(e),
            Err(DeleteFailure::Failed(why)) => return Err(ApiError::unavailable(why)),
            Err(DeleteFailure::Unreachable(why)) if g.settings.fallback_to_legacy => {
                g.temporal.mark_down(&why).await;
                g.metrics.temporal_unreachable.inc();
                g.metrics.fallbacks.inc();
                path = Path::Legacy;
                fallback = Some(why);
            }
            Err(DeleteFailure::Unreachable(why)) => {
                return Err(ApiError {
                    retry_after_secs: Some(g.settings.retry_after_secs),
                    ..ApiError::unavailable(format!(
                        "temporal is unreachable and fallback_to_legacy is off: {why}"
                    ))
                });
            }
        }
    }
    let existed = match existed {
        Some(e) => e,
        None => {
            let key = format!("legacy-delete/{id}/{}", uuid::Uuid::new_v4());
            let deadline = WRITE_TIMEOUT;
            match tokio::time::timeout(
                deadline,
                g.stages()
                    .delete(id.to_owned(), key, Some(deadline - deadline / 20)),
            )
            .await
            {
                Ok(Ok(d)) => d.existed,
                Ok(Err(e)) => {
                    let code = e.kind.unwrap_or(ErrorCode::Unavailable);
                    return Err(ApiError::new(code, e.message));
                }
                Err(_) => {
                    return Err(ApiError::new(
                        ErrorCode::Timeout,
                        format!("writer: no answer within {} s", deadline.as_secs()),
                    ));
                }
            }
        }
    };
    if !existed {
        return Err(ApiError::not_found(format!("no document {id}")));
    }
    remember_deletion(g, id, path).await;
    Ok(Json(json!({
        "document_id": id,
        "deleted": true,
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

async fn delete_on_temporal(g: &Gateway, id: &str) -> Result<bool, DeleteFailure> {
    let client = g
        .temporal
        .client()
        .await
        .map_err(DeleteFailure::Unreachable)?;
    let started = tokio::time::timeout(
        g.temporal_timeout(),
        client.start_workflow(
            Deletion,
            DeleteInput {
                document_id: id.to_owned(),
            }
            .into(),
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
    .map_err(|_| {
        DeleteFailure::Unreachable("temporal did not accept the deletion in time".to_owned())
    })?
    .map_err(|e| DeleteFailure::Unreachable(format!("temporal refused the deletion: {e}")))?;
    // A deletion is one write; wait for it, bounded by the write step's retries.
    let wait = WRITE_TIMEOUT * 2;
    let done = tokio::time::timeout(wait, started.get_result(WorkflowGetResultOptions::default()))
        .await
        .map_err(|_| {
            DeleteFailure::Failed(format!(
                "the deletion workflow {} did not finish within {} s; it goes on, see its status in Temporal",
                deletion_workflow_id(id),
                wait.as_secs()
            ))
        })?
        .map_err(|e| DeleteFailure::Failed(format!("the deletion failed: {}", apex_ingestion::error_chain(&e))))?;
    Ok(done.existed)
}
