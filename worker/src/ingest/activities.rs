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

pub use super::stages::{
    ArtifactInput, Deleted, Embedded, Extracted, FetchInput, Fetched, ParseInput, Parsed,
    ServiceClients, StageError, Stages, Stored, WriteInput, Written,
};
use super::waiting::{StepRef, Waiting};
use super::wake::Waker;
use crate::settings::IngestSettings;
use apex_ingestion::steps::{Patience, retry_delay, step_of_activity};

/// The ingestion activities and what they share (cheap to clone: clients and handles).
#[derive(Clone)]
pub struct IngestActivities {
    stages: Stages,
    metrics: Option<IngestMetrics>,
    waiting: Waiting,
    waker: Waker,
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
            waiting: Waiting::default(),
            waker: Waker::default(),
        })
    }

    /// The steps waiting for a dependency, for the worker's gauges.
    pub fn waiting(&self) -> Waiting {
        self.waiting.clone()
    }

    /// What wakes waiting steps when their dependency answers again (given the worker's
    /// Temporal connection on every connect).
    pub fn waker(&self) -> Waker {
        self.waker.clone()
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

/// A stage's failure as Temporal sees it: its type, its reason, and whether this attempt is
/// the last. An outage is retried (until the workflow's deadline ends the activity's
/// schedule-to-close time), a possible fault of the service for a few attempts, bad input
/// never ([`StageError::patience`]); `delay` is the wait before the next attempt. (Not a
/// `From` impl: the SDK's blanket conversion would make every error retryable.)
fn failure(e: StageError, attempt: u32, last: bool, delay: Duration) -> ActivityError {
    let message = match e.patience {
        Patience::Attempts(n) if last && n > 1 => {
            format!("{} (after {attempt} attempts)", e.message)
        }
        _ => e.message,
    };
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(e.type_name)
            .non_retryable(last)
            .maybe_next_retry_delay((!last).then_some(delay))
            .build(),
    )
}

/// A number in [0, 1) that differs between attempts and workers: the clock's nanoseconds
/// (spreading retries needs no stronger randomness).
pub(crate) fn jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

impl IngestActivities {
    /// A step's outcome as Temporal takes it, noted in [`Waiting`]: a success or a final
    /// failure ends the step's wait; a failure that will be retried starts (or goes on
    /// with) it. The wait before the next attempt is [`retry_delay`]: capped exponential,
    /// jittered. A success also wakes the other steps waiting for the same dependency
    /// ([`Waker`]).
    fn settle<T>(
        &self,
        ctx: &ActivityContext,
        activity: &'static str,
        result: Result<T, StageError>,
    ) -> Result<T, ActivityError> {
        let key = idempotency_key(ctx);
        let step = step_of_activity(activity);
        let e = match result {
            Ok(v) => {
                crate::metrics::attempt(ctx, activity, "ok");
                match step {
                    Some(step) => {
                        let woken = self.waiting.succeeded(&key, step.dependency);
                        self.waker.wake(step.dependency, woken);
                    }
                    None => self.waiting.done(&key),
                }
                return Ok(v);
            }
            Err(e) => e,
        };
        let info = ctx.info();
        let last = e.patience.gives_up_after(info.attempt);
        let delay = retry_delay(info.attempt, jitter());
        match step {
            Some(step) if !last => {
                let since = info.scheduled_time.unwrap_or_else(SystemTime::now);
                // Only a step retried until the deadline may be woken early: waking restarts
                // the attempt count. A local activity has no server-side record to reset.
                let wake =
                    (e.patience == Patience::UntilDeadline && !info.is_local).then(|| StepRef {
                        workflow_id: info.workflow_id.clone().unwrap_or_default(),
                        run_id: info.workflow_run_id.clone().unwrap_or_default(),
                        activity_id: info.activity_id.clone(),
                    });
                self.waiting
                    .failed(key, step.dependency, since, delay, wake);
            }
            _ => self.waiting.done(&key),
        }
        crate::metrics::attempt(ctx, activity, if last { "final" } else { "retryable" });
        Err(failure(e, info.attempt, last, delay))
    }
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

/// Awaits `call` (which runs in the stage's span, under the plugin's `RunActivity`),
/// recording a heartbeat every third of the heartbeat timeout so a lost worker is noticed
/// within the heartbeat timeout instead of the whole start-to-close timeout. The first comes
/// after that long, so a quick call sends none.
pub(crate) async fn with_heartbeats<F: std::future::Future>(
    ctx: &ActivityContext,
    call: F,
) -> F::Output {
    let every = ctx
        .info()
        .heartbeat_timeout
        .map_or(Duration::from_secs(5), |t| {
            (t / 3).max(Duration::from_millis(200))
        });
    tokio::pin!(call);
    // The first after `every`, not at once: most calls answer well before, and a heartbeat is
    // a round trip to the server and a write to the workflow's record.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
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
        let fetched = self.stages.fetch(input).await;
        let blob = self.settle(&ctx, "fetch_document", fetched)?;
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
        let stored = self.stages.check(document_id, timeout(&ctx)).await;
        self.settle(&ctx, "check_document", stored)
    }

    /// `ParseBlob`, heartbeating while the parser works.
    #[activity]
    pub async fn parse_document(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ParseInput,
    ) -> Result<Parsed, ActivityError> {
        let call = self.stages.parse(input, timeout(&ctx));
        let parsed = with_heartbeats(&ctx, call).await;
        let mut parsed = self.settle(&ctx, "parse_document", parsed)?;
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
        let extracted = with_heartbeats(&ctx, call).await;
        let mut extracted = self.settle(&ctx, "extract_entities", extracted)?;
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
        let embedded = with_heartbeats(&ctx, call).await;
        let mut embedded = self.settle(&ctx, "generate_embeddings", embedded)?;
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
        let written = with_heartbeats(&ctx, call).await;
        let mut written = self.settle(&ctx, "write_to_databases", written)?;
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
        let deleted = self
            .stages
            .delete(document_id, idempotency_key(&ctx), timeout(&ctx))
            .await;
        self.settle(&ctx, "delete_document", deleted)
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
