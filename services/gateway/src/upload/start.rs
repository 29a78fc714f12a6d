//! Starting an accepted upload's ingestion: on Temporal (the workflow, waited for in the
//! background so the slot and the claim are held until it closes), or on the legacy path,
//! which is also where an upload goes when Temporal cannot be reached and falling back is on.

use std::sync::Arc;
use std::time::Duration;

use apex_ingestion::live::LiveStatus;
use apex_ingestion::status::{FAILED, IngestStatus, PENDING};
use apex_ingestion::workflows::{Ingestion, start_ingestion};
use apex_ingestion::{IngestInput, ingestion_workflow_id};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{WorkflowDescribeOptions, WorkflowGetResultOptions};
use temporalio_common::protos::temporal::api::enums::v1::WorkflowExecutionStatus;

use super::release;
use crate::error::ApiError;
use crate::rollout::Path;
use crate::shared::{Claim, DocumentRecord, Holder};
use crate::state::{AppState, Running, Slot, TEMPORAL_HOLD, locked, now_ms};

/// Where an ingestion started.
pub(super) struct Started {
    pub(super) path: Path,
    /// Why Temporal was not used, when the ingestion fell back to the legacy path.
    pub(super) fallback: Option<String>,
    pub(super) workflow_id: Option<String>,
}

/// Starts the ingestion on `path`; the slot and the claim go with it.
pub(super) async fn start(
    g: &AppState,
    input: &IngestInput,
    slot: Slot,
    claim: Claim,
    path: Path,
) -> Result<Started, ApiError> {
    if path != Path::Temporal {
        start_on_legacy(g, input.clone(), None, slot, claim).await;
        return Ok(Started {
            path,
            fallback: None,
            workflow_id: None,
        });
    }
    match start_on_temporal(g, input, slot, claim.clone()).await {
        Ok(workflow_id) => Ok(Started {
            path,
            fallback: None,
            workflow_id: Some(workflow_id),
        }),
        Err((why, slot)) => fall_back(g, input, slot, claim, why).await,
    }
}

/// Temporal did not take the start (`why`): the legacy path runs the ingestion when
/// `fallback_to_legacy` is on; else the claim is given back and the answer is `503`.
async fn fall_back(
    g: &AppState,
    input: &IngestInput,
    slot: Slot,
    mut claim: Claim,
    why: String,
) -> Result<Started, ApiError> {
    let id = input.resolved_document_id();
    g.temporal.mark_down(&why).await;
    g.metrics.temporal_unreachable.inc();
    if !g.settings.fallback_to_legacy {
        return Err(release(
            g,
            &id,
            &claim,
            unreachable_without_fallback(&why, g.settings.retry_after_secs),
        )
        .await);
    }
    tracing::warn!(document = %id, reason = %why, "temporal unreachable; falling back to the legacy path");
    g.metrics.fallbacks.inc();
    let path = Path::Legacy;
    claim.holder = Holder::Ingestion(path);
    if let Err(e) = g.shared.update_claim(&id, &claim, g.claim_ttl(path)).await {
        tracing::warn!(document = %id, error = %e, "cannot move the claim to the legacy path");
    }
    let fallback = Some(why);
    start_on_legacy(g, input.clone(), fallback.clone(), slot, claim).await;
    Ok(Started {
        path,
        fallback,
        workflow_id: None,
    })
}

pub(super) fn unreachable_without_fallback(why: &str, retry_after_secs: u64) -> ApiError {
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
    let mut run_id = None;
    match started {
        Ok(Ok(handle)) => run_id = handle.run_id().map(str::to_owned),
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
        run_id: run_id.clone(),
        accepted_at_ms: now_ms(),
        ..Default::default()
    };
    if let Err(e) = g.shared.put_record(&id, &record).await {
        tracing::warn!(document = %id, error = %e, "cannot record the path in redis");
    }
    if let Some(run_id) = run_id {
        let first = LiveStatus {
            run_id,
            at_ms: now_ms(),
            on_server: false,
            status: IngestStatus {
                status: PENDING.to_owned(),
                document_id: id.clone(),
                source: input.source.clone(),
                ..Default::default()
            },
        };
        if let Err(e) = g.shared.put_first_live(&id, &first).await {
            tracing::debug!(document = %id, error = %e, "cannot write the first live status");
        }
    }
    let gateway = Arc::clone(g);
    let waited = workflow_id.clone();
    let accepted = std::time::Instant::now();
    tokio::spawn(async move {
        let _slot = slot;
        let label = wait_for_close(&client, &waited).await;
        if let Some(label) = label {
            gateway
                .metrics
                .finished
                .with_label_values(&["temporal", &label])
                .inc();
            gateway
                .metrics
                .lag_seconds
                .with_label_values(&["temporal", &label])
                .observe(accepted.elapsed().as_secs_f64());
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
    let accepted = std::time::Instant::now();
    let (input_id, input_source) = (id.clone(), input.source.clone());
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
                        gateway
                            .metrics
                            .lag_seconds
                            .with_label_values(&["legacy", &status.status])
                            .observe(accepted.elapsed().as_secs_f64());
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
    // The ingestion's span is a child of the request's: the trace goes on after the answer.
    let span = tracing::info_span!(
        "ingestion",
        otel.name = "ingest (legacy path)",
        apex.document_id = %input_id,
        apex.source = %input_source,
    );
    let mut tasks = locked(&g.legacy_tasks);
    // Reap the finished ones so the set holds only running ingestions.
    while tasks.try_join_next().is_some() {}
    tasks.spawn(tracing::Instrument::instrument(task, span));
}
