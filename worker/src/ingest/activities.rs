//! The ingestion activities: thin wrappers over [`Stages`]. Each gives its call a deadline
//! taken from the activity's own timeout, runs it in a span whose context travels to the
//! service, heartbeats while it waits, and turns a [`StageError`] into a Temporal failure:
//! input errors non-retryable with the service's reason, outages retryable.

// The activity macros generate marker types without `Debug`.
#![allow(missing_debug_implementations)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tracing::Instrument as _;

pub use super::stages::{
    ArtifactInput, Deleted, Embedded, Extracted, FetchInput, Fetched, ParseInput, Parsed,
    ServiceClients, StageError, Stages, Stored, WriteInput, Written,
};
use crate::settings::IngestSettings;

/// The ingestion activities and what they share (cheap to clone: clients and handles).
#[derive(Clone)]
pub struct IngestActivities {
    stages: Stages,
    metrics: Option<IngestMetrics>,
}

/// `apex_ingest_warnings_total{kind}`: documents that gave no chunks (`no_chunks`) or no
/// entities from a non-empty text (`no_entities`). Served with the SDK's metrics.
#[derive(Clone)]
struct IngestMetrics {
    warnings: temporalio_common::telemetry::metrics::Counter,
    no_chunks: temporalio_common::telemetry::metrics::MetricAttributes,
    no_entities: temporalio_common::telemetry::metrics::MetricAttributes,
}

impl IngestActivities {
    pub fn new(settings: &IngestSettings) -> anyhow::Result<Self> {
        Ok(Self {
            stages: Stages::new(settings)?,
            metrics: None,
        })
    }
    /// Counts silent outcomes on `meter` (the worker's Prometheus exporter).
    pub fn with_metrics(
        mut self,
        meter: Option<std::sync::Arc<dyn temporalio_common::telemetry::metrics::CoreMeter>>,
    ) -> Self {
        use temporalio_common::telemetry::metrics::{
            MetricKeyValue, MetricParameters, NewAttributes,
        };
        self.metrics = meter.map(|m| {
            let kind = |k: &str| {
                m.new_attributes(NewAttributes::from([MetricKeyValue::new(
                    "kind",
                    k.to_owned(),
                )]))
            };
            IngestMetrics {
                warnings: m.counter(
                    MetricParameters::builder()
                        .name("apex_ingest_warnings")
                        .description(
                            "Documents that gave no chunks, or no entities from non-empty text",
                        )
                        .build(),
                ),
                no_chunks: kind("no_chunks"),
                no_entities: kind("no_entities"),
            }
        });
        self
    }
}

/// A stage's failure as Temporal sees it: its type, its reason, retryable or not. (Not a
/// `From` impl: the SDK's blanket conversion would make every error retryable.)
fn failure(e: StageError) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(e.message)
            .type_name(e.type_name)
            .non_retryable(!e.retryable)
            .build(),
    )
}

/// The gRPC timeout for the activity's call: see [`call_timeout`].
fn timeout(ctx: &ActivityContext) -> Option<Duration> {
    call_timeout(ctx.info().deadline, SystemTime::now())
}

/// The gRPC timeout for a call made at `now` by an activity that must finish by
/// `deadline`: the time left less 5 % (at most 2 s) for the answer to come back, and at
/// least 100 ms. `None` without a deadline.
pub fn call_timeout(deadline: Option<SystemTime>, now: SystemTime) -> Option<Duration> {
    let left = deadline?.duration_since(now).unwrap_or_default();
    let margin = (left / 20).min(Duration::from_secs(2));
    Some(left.saturating_sub(margin).max(Duration::from_millis(100)))
}

/// The span a service call runs in: its context travels to the service as `traceparent`,
/// so the service's spans join the activity's trace.
fn activity_span(ctx: &ActivityContext, name: &'static str) -> tracing::Span {
    let info = ctx.info();
    tracing::info_span!(
        "activity",
        otel.name = name,
        activity.attempt = info.attempt,
        workflow.id = info.workflow_id.as_deref().unwrap_or_default(),
        workflow.run_id = info.workflow_run_id.as_deref().unwrap_or_default(),
    )
}

/// Awaits `call` inside the activity's span, recording a heartbeat every few seconds so a
/// lost worker is noticed within the heartbeat timeout instead of the whole start-to-close
/// timeout.
async fn with_heartbeats<F: std::future::Future>(
    ctx: &ActivityContext,
    name: &'static str,
    call: F,
) -> F::Output {
    let call = call.instrument(activity_span(ctx, name));
    let every = ctx
        .info()
        .heartbeat_timeout
        .map_or(Duration::from_secs(5), |t| {
            (t / 3).max(Duration::from_millis(200))
        });
    tokio::pin!(call);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            out = &mut call => return out,
            _ = tick.tick() => {
                let _ = ctx.record_heartbeat(()).await;
            }
        }
    }
}

/// `<workflow run id>/<activity id>`: the same for every attempt of one activity, so the
/// writer answers a retry from its record of the first.
fn idempotency_key(ctx: &ActivityContext) -> String {
    let info = ctx.info();
    format!(
        "{}/{}",
        info.workflow_run_id.as_deref().unwrap_or_default(),
        info.activity_id
    )
}

#[activities]
impl IngestActivities {
    /// Copies the document's bytes into the blob store: `documents/<sha256>`.
    #[activity]
    pub async fn fetch_document(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: FetchInput,
    ) -> Result<Fetched, ActivityError> {
        let blob = self
            .stages
            .fetch(input)
            .instrument(activity_span(&ctx, "fetch_document"))
            .await
            .map_err(failure)?;
        Ok(Fetched {
            blob,
            attempt: ctx.info().attempt,
        })
    }

    /// The writer's view of the document: is it stored, at which version and hash.
    #[activity]
    pub async fn check_document(
        self: Arc<Self>,
        ctx: ActivityContext,
        document_id: String,
    ) -> Result<Stored, ActivityError> {
        self.stages
            .check(document_id, timeout(&ctx))
            .instrument(activity_span(&ctx, "check_document"))
            .await
            .map_err(failure)
    }

    /// `ParseBlob`, heartbeating while the parser works.
    #[activity]
    pub async fn parse_document(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ParseInput,
    ) -> Result<Parsed, ActivityError> {
        let call = self.stages.parse(input, timeout(&ctx));
        let mut parsed = with_heartbeats(&ctx, "parse_document", call)
            .await
            .map_err(failure)?;
        if parsed.chunk_count == 0
            && let Some(m) = &self.metrics
        {
            m.warnings.add(1, &m.no_chunks);
        }
        parsed.attempt = ctx.info().attempt;
        Ok(parsed)
    }

    /// `ExtractBlob`.
    #[activity]
    pub async fn extract_entities(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ArtifactInput,
    ) -> Result<Extracted, ActivityError> {
        let text_chars = input.text_chars;
        let call = self.stages.extract(input, timeout(&ctx));
        let mut extracted = with_heartbeats(&ctx, "extract_entities", call)
            .await
            .map_err(failure)?;
        if extracted.entity_count == 0
            && text_chars > 0
            && let Some(m) = &self.metrics
        {
            m.warnings.add(1, &m.no_entities);
        }
        extracted.attempt = ctx.info().attempt;
        Ok(extracted)
    }

    /// `EmbedBlob`.
    #[activity]
    pub async fn generate_embeddings(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ArtifactInput,
    ) -> Result<Embedded, ActivityError> {
        let call = self.stages.embed(input, timeout(&ctx));
        let mut embedded = with_heartbeats(&ctx, "generate_embeddings", call)
            .await
            .map_err(failure)?;
        embedded.attempt = ctx.info().attempt;
        Ok(embedded)
    }

    /// `WriteDocument`, with `<workflow run id>/<activity id>` as the idempotency key so a
    /// retried attempt gets the first attempt's answer.
    #[activity]
    pub async fn write_to_databases(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: WriteInput,
    ) -> Result<Written, ActivityError> {
        let call = self
            .stages
            .write(input, idempotency_key(&ctx), timeout(&ctx));
        let mut written = with_heartbeats(&ctx, "write_to_databases", call)
            .await
            .map_err(failure)?;
        written.attempt = ctx.info().attempt;
        Ok(written)
    }

    /// `DeleteDocument`.
    #[activity]
    pub async fn delete_document(
        self: Arc<Self>,
        ctx: ActivityContext,
        document_id: String,
    ) -> Result<Deleted, ActivityError> {
        self.stages
            .delete(document_id, idempotency_key(&ctx), timeout(&ctx))
            .instrument(activity_span(&ctx, "delete_document"))
            .await
            .map_err(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_get_the_activitys_remaining_time_less_a_margin() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(call_timeout(None, now), None);
        assert_eq!(
            call_timeout(Some(now + Duration::from_secs(600)), now),
            Some(Duration::from_secs(598))
        );
        assert_eq!(
            call_timeout(Some(now + Duration::from_secs(10)), now),
            Some(Duration::from_millis(9_500))
        );
        // Past the deadline: the shortest timeout, never zero.
        assert_eq!(
            call_timeout(Some(now - Duration::from_secs(1)), now),
            Some(Duration::from_millis(100))
        );
    }
}
