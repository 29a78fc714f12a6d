//! One ingestion per document across paths and replicas: a claim in Redis, judged by its own
//! ingestion when another request finds it held (attach, wait with a 409, or take it over).

use std::time::Duration;

use apex_common::error::ErrorCode;
use apex_ingestion::ingestion_workflow_id;
use apex_ingestion::workflows::Ingestion;
use serde_json::json;
use temporalio_client::WorkflowDescribeOptions;
use temporalio_common::protos::temporal::api::enums::v1::WorkflowExecutionStatus;

use crate::error::ApiError;
use crate::rollout::Path;
use crate::shared::{Claim, Holder};
use crate::state::{Gateway, now_ms};

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
    let alive = match held.holder {
        // A deletion is short and bounded by its claim's time to live.
        Holder::Deletion => true,
        Holder::Ingestion(Path::Temporal) => {
            match g.temporal.client().await {
                // Temporal cannot be asked: the workflow may well be running.
                Err(_) => true,
                Ok(client) => {
                    let handle = client.get_workflow_handle::<Ingestion>(ingestion_workflow_id(id));
                    match tokio::time::timeout(
                        g.temporal_timeout(),
                        handle.describe(WorkflowDescribeOptions::default()),
                    )
                    .await
                    {
                        Ok(Ok(d)) => {
                            let info = d.raw().workflow_execution_info.as_ref();
                            let running = info.map(|i| i.status)
                                == Some(WorkflowExecutionStatus::Running as i32);
                            // A closed run that began before the claim is an earlier
                            // ingestion: the claimer may be about to start its own.
                            let earlier =
                                info.and_then(|i| i.start_time.as_ref()).is_some_and(|t| {
                                    (t.seconds.max(0) as u64) * 1000
                                        + u64::from(t.nanos.max(0) as u32 / 1_000_000)
                                        + 1_000
                                        < held.at_ms
                                });
                            running
                                || (earlier && now_ms().saturating_sub(held.at_ms) < CLAIM_START_MS)
                        }
                        // Not started (yet): the claimer may be about to start it.
                        Ok(Err(temporalio_client::errors::WorkflowInteractionError::NotFound(
                            _,
                        ))) => now_ms().saturating_sub(held.at_ms) < CLAIM_START_MS,
                        _ => true,
                    }
                }
            }
        }
        Holder::Ingestion(Path::Legacy) => {
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
                Some((accepted, s)) if accepted + 1_000 >= held.at_ms => !s.is_final(),
                _ => fresh,
            }
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
    let what = match held.holder {
        Holder::Deletion => "being deleted".to_owned(),
        Holder::Ingestion(path) => format!("being ingested on the {} path", path.as_str()),
    };
    ApiError {
        retry_after_secs: Some(retry_after_secs),
        ..ApiError::new(
            ErrorCode::AlreadyExists,
            format!("document {id} is {what}; retry when that has ended"),
        )
        .with_details(json!({
            "document_id": id,
            "path": held.holder.as_str(),
            "since_ms": held.at_ms,
            "status_url": format!("/v1/documents/{id}"),
        }))
    }
}
