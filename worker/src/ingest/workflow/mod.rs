//! `DocumentIngestionWorkflow` (here) and `DocumentDeletionWorkflow` ([`deletion`]). Workflow
//! code only decides: which activity runs next, with which timeouts and retries, and what the
//! status says.

// The workflow macros generate marker types without `Debug`.
#![allow(missing_debug_implementations)]

mod deletion;
mod local;
mod steps;

use std::time::{Duration, SystemTime};

use temporalio_common::RetryPolicy;
use temporalio_common::error::IncomingError;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCloseTimeouts, ActivityExecutionError, ActivityOptions, ApplicationFailure,
    LocalActivityOptions, MemoValue, TimeoutType, WorkflowContext, WorkflowContextView,
    WorkflowResult,
};

use super::IngestInput;
use super::activities::{ArtifactInput, WriteInput};
use super::status::{
    COMPLETED, EMBEDDED, ENTITIES_EXTRACTED, FAILED, FETCHED, IngestStatus, PARSED, PENDING,
    StepRecord, UNCHANGED,
};

pub use apex_ingestion::steps::{
    CHECK_TIMEOUT, DEFAULT_DEADLINE, FETCH_TIMEOUT, FIRST_BACKOFF, INVALID_INPUT, LOCAL_MAX_CHUNKS,
    LOCAL_PARSE_MAX_BYTES, MAX_BACKOFF, SERVICE_HEARTBEAT, SERVICE_TIMEOUT, WRITE_HEARTBEAT,
    WRITE_TIMEOUT,
};
pub use apex_ingestion::workflows::{
    DOCUMENT_ID, LIGHT_STEPS_PATCH, LOCAL_SERVICE_STEPS_PATCH, PRIORITY, SOURCE, STATUS,
    STATUS_MEMO,
};
pub use deletion::DocumentDeletionWorkflow;

use apex_ingestion::checked::Checked;

/// A workflow's input, or the message it fails with when the input could not be decoded
/// (sent by another client in a shape this worker does not know).
pub(crate) fn decoded<T>(input: Checked<T>) -> Result<T, String> {
    input
        .into_result()
        .map_err(|reason| format!("invalid workflow input: {reason}"))
}

/// The failure of a workflow whose input is wrong: final, never retried.
pub(crate) fn invalid_input(message: impl Into<String>) -> ApplicationFailure {
    ApplicationFailure::builder(message.into())
        .type_name(INVALID_INPUT.to_owned())
        .non_retryable(true)
        .build()
}

/// Attempts without a count (0, unless an input sets one): each failure says itself whether
/// it is the last and how long to wait before the next ([`apex_ingestion::steps`]); the
/// policy's intervals apply only to a failure that does not (a lost worker's timeout).
fn retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(FIRST_BACKOFF)
        .backoff_coefficient(2.0)
        .maximum_interval(MAX_BACKOFF)
        .maximum_attempts(max_attempts)
        .build()
}

/// An activity's options: `start_to_close` per attempt, all attempts within `left` (the time
/// to the ingestion's deadline), `attempts` at most (0: no count).
fn options(
    start_to_close: Duration,
    heartbeat: Option<Duration>,
    attempts: u32,
    left: Duration,
) -> ActivityOptions {
    let builder =
        ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
            schedule_to_close: left,
            start_to_close: start_to_close.min(left),
        })
        .retry_policy(retry(attempts));
    match heartbeat {
        Some(h) => builder.heartbeat_timeout(h).build(),
        None => builder.build(),
    }
}

/// A local activity's options: the same timeouts and retries as [`options`] without a
/// heartbeat; a wait between attempts longer than a minute becomes a durable timer.
fn local_options(start_to_close: Duration, left: Duration) -> LocalActivityOptions {
    LocalActivityOptions::builder()
        .schedule_to_close_timeout(left)
        .start_to_close_timeout(start_to_close.min(left))
        .retry_policy(retry(0))
        .timer_backoff_threshold(Duration::from_secs(60))
        .build()
}

/// Parse, extract and embed: up to 10 minutes an attempt, a heartbeat every 30 s.
fn service_step(left: Duration) -> ActivityOptions {
    options(SERVICE_TIMEOUT, Some(SERVICE_HEARTBEAT), 0, left)
}

/// The time from now to `deadline`; `None` once it has passed (or without a clock).
pub(crate) fn time_left(
    ctx: &WorkflowContext<impl Sized>,
    deadline: SystemTime,
) -> Option<Duration> {
    let now = ctx.workflow_time()?;
    deadline.duration_since(now).ok().filter(|d| !d.is_zero())
}

/// The reason an activity gave, without the wrappers around it.
/// When the ingestion's deadline ended the retries, it says so before the last reason.
pub fn reason(err: &ActivityExecutionError) -> String {
    let mut deadline = false;
    let mut cause = err.cause();
    while let Some(e) = cause {
        match e {
            IncomingError::Application(app) if deadline => {
                return format!(
                    "the ingestion's deadline passed while retrying; last error: {app}"
                );
            }
            IncomingError::Application(app) => return app.to_string(),
            IncomingError::Timeout(t) if t.timeout_type() == TimeoutType::ScheduleToClose => {
                deadline = true;
            }
            _ => {}
        }
        cause = e.cause();
    }
    if deadline {
        return "the ingestion's deadline passed while retrying".to_owned();
    }
    apex_ingestion::error_chain(err)
}

fn millis_since(ctx: &WorkflowContext<impl Sized>, start: Option<SystemTime>) -> u64 {
    match (start, ctx.workflow_time()) {
        (Some(a), Some(b)) => b.duration_since(a).map_or(0, |d| d.as_millis() as u64),
        _ => 0,
    }
}

#[workflow]
#[derive(Default)]
pub struct DocumentIngestionWorkflow {
    status: IngestStatus,
    /// When the ingestion stops waiting out outages: its start plus the input's deadline.
    deadline: Option<SystemTime>,
    /// Whether this run keeps its status in the memo and runs its first steps as local
    /// activities ([`LIGHT_STEPS_PATCH`]).
    light: bool,
    /// Whether this run makes the service steps' first attempt in the worker
    /// ([`LOCAL_SERVICE_STEPS_PATCH`], [`local`]).
    local: bool,
    /// How long such an attempt may run ([`IngestInput::local_attempt`]).
    local_attempt: Duration,
    /// Steps waiting on a server-side activity now (extraction and embedding may both).
    on_server: u32,
}

/// Where an ingestion stopped, and why.
struct Stop {
    step: &'static str,
    message: String,
}

impl Stop {
    fn deadline(step: &'static str) -> Stop {
        Stop {
            step,
            message: "the ingestion's deadline passed before the step could start".to_owned(),
        }
    }

    fn at(step: &'static str) -> impl FnOnce(ActivityExecutionError) -> Stop {
        move |e| Stop {
            step,
            message: reason(&e),
        }
    }
}

impl DocumentIngestionWorkflow {
    /// The time left for `step` and its retries; a [`Stop`] once the deadline has passed.
    fn left(ctx: &WorkflowContext<Self>, step: &'static str) -> Result<Duration, Stop> {
        let deadline = ctx.state(|s| s.deadline);
        match deadline {
            Some(d) => time_left(ctx, d).ok_or_else(|| Stop::deadline(step)),
            None => Ok(DEFAULT_DEADLINE),
        }
    }

    /// The workflow's time as a step begins, recorded in the status (`step_started_ms`) so
    /// that whoever asks can say how long the step has been waiting.
    fn begin(ctx: &WorkflowContext<Self>) -> Option<SystemTime> {
        let now = ctx.workflow_time();
        let ms = now
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        ctx.state_mut(|s| s.status.step_started_ms = ms);
        // Under the local steps the memo is written when the step turns to the server.
        if !ctx.state(|s| s.local) {
            Self::publish(ctx);
        }
        now
    }

    /// The status as it stands into the memo ([`STATUS_MEMO`]): as each step begins and when
    /// the ingestion ends, in the workflow task that schedules the step or closes the run, so
    /// it costs a history event but no round trip.
    fn publish(ctx: &WorkflowContext<Self>) {
        if !ctx.state(|s| s.light) {
            return;
        }
        let status = ctx.state(|s| s.status.clone());
        // An `IngestStatus` always serialises; were it not to, the query still answers.
        let _ = ctx.upsert_memo([(STATUS_MEMO, Some(MemoValue::new(status)))]);
    }

    /// The status moves on. Under the local steps the memo is written at each move (it is
    /// sent when the workflow task completes or heartbeats) and the `Status` search attribute
    /// only at the end; before, the attribute at each move and the memo at the end.
    /// The status as it stands to the worker's live status writer ([`crate::ingest::live`]),
    /// under the local steps and not while history replays (the moves were published when
    /// they happened).
    fn publish_live(ctx: &WorkflowContext<Self>) {
        if !ctx.state(|s| s.local) || ctx.is_replaying() {
            return;
        }
        let (status, on_server) = ctx.state(|s| (s.status.clone(), s.on_server > 0));
        crate::ingest::live::publish(ctx.run_id(), &status, on_server);
    }

    fn set_status(ctx: &WorkflowContext<Self>, status: &str) {
        Self::move_status(ctx, status, true);
    }

    /// [`set_status`](Self::set_status); `publish` false when another move follows in the
    /// same activation (the memo would be overwritten before it is sent).
    fn move_status(ctx: &WorkflowContext<Self>, status: &str, publish: bool) {
        ctx.state_mut(|s| s.status.status = status.to_owned());
        let last = apex_ingestion::status::is_final(status);
        let local = ctx.state(|s| s.local);
        if !local || last {
            ctx.upsert_search_attributes([STATUS.value_set(status.to_owned())]);
        }
        if last || (local && publish) {
            Self::publish(ctx);
        }
        if last || publish {
            Self::publish_live(ctx);
        }
    }

    fn record(ctx: &WorkflowContext<Self>, step: &str, start: Option<SystemTime>, attempts: u32) {
        let millis = millis_since(ctx, start);
        ctx.state_mut(|s| {
            s.status.steps.push(StepRecord {
                step: step.to_owned(),
                millis,
                attempts,
            });
        });
    }

    async fn ingest(
        ctx: &WorkflowContext<Self>,
        input: &IngestInput,
        document_id: &str,
    ) -> Result<IngestStatus, Stop> {
        let fetched = Self::fetch_step(ctx, input).await?;
        let Some(document) = Self::check_step(ctx, input, document_id, &fetched).await? else {
            return Ok(ctx.state(|s| s.status.clone()));
        };
        let parsed = Self::parse_step(ctx, input, &fetched, &document).await?;

        // Entities and vectors both read the parsed artifact: run them side by side.
        let artifact = ArtifactInput {
            parsed: parsed.artifact.clone(),
            document: document.clone(),
            metadata: input.metadata.clone(),
            text_chars: parsed.text_chars,
        };
        let (extracted, embedded) =
            Self::extract_and_embed(ctx, &artifact, parsed.chunk_count).await?;

        let write = WriteInput {
            document,
            metadata: input.metadata.clone(),
            content_sha256: fetched.blob.sha256.clone(),
            parsed: parsed.artifact,
            entities: Some(extracted.artifact),
            vectors: Some(embedded.artifact),
        };
        Self::write_step(ctx, input, write).await?;
        Ok(ctx.state(|s| s.status.clone()))
    }
}

#[workflow_methods]
impl DocumentIngestionWorkflow {
    #[run]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: Checked<IngestInput>,
    ) -> WorkflowResult<IngestStatus> {
        // The newer patch first: a run under it also has the light steps without a second
        // marker (each is an event and a search-attribute write); runs recorded under the
        // light steps alone replay with the second call.
        let local = ctx.patched(LOCAL_SERVICE_STEPS_PATCH);
        let light = local || ctx.patched(LIGHT_STEPS_PATCH);
        ctx.state_mut(|s| {
            s.light = light;
            s.local = local;
        });
        let input = match decoded(input) {
            Ok(input) => input,
            Err(message) => {
                ctx.state_mut(|s| s.status.error = Some(message.clone()));
                Self::set_status(ctx, FAILED);
                return Err(invalid_input(message).into());
            }
        };
        let document_id = input.resolved_document_id();
        let deadline = ctx.workflow_time().map(|t| t + input.deadline());
        ctx.state_mut(|s| {
            s.deadline = deadline;
            s.local_attempt = input.local_attempt();
            s.status.status = PENDING.to_owned();
            s.status.document_id = document_id.clone();
            s.status.source = input.source.clone();
        });
        ctx.upsert_search_attributes([
            SOURCE.value_set(input.source.clone()),
            PRIORITY.value_set(input.priority),
            DOCUMENT_ID.value_set(document_id.clone()),
            STATUS.value_set(PENDING.to_owned()),
        ]);
        Self::publish_live(ctx);
        let invalid = if input.source.trim().is_empty() {
            Some("source is required")
        } else if input.location.trim().is_empty() {
            Some("location is required")
        } else if input.document_id.trim().is_empty() && input.external_id.trim().is_empty() {
            Some("a document id or an external id is required")
        } else {
            None
        };
        if let Some(reason) = invalid {
            ctx.state_mut(|s| s.status.error = Some(reason.to_owned()));
            Self::set_status(ctx, FAILED);
            return Err(ApplicationFailure::builder(reason)
                .type_name(INVALID_INPUT.to_owned())
                .non_retryable(true)
                .build()
                .into());
        }
        match Self::ingest(ctx, &input, &document_id).await {
            Ok(status) => Ok(status),
            Err(stop) => {
                let message = format!("{} failed: {}", stop.step, stop.message);
                ctx.state_mut(|s| s.status.error = Some(message.clone()));
                Self::set_status(ctx, FAILED);
                Err(ApplicationFailure::builder(message)
                    .type_name(format!("IngestionFailed.{}", stop.step))
                    .non_retryable(true)
                    .build()
                    .into())
            }
        }
    }

    #[query]
    pub fn get_status(&self, _ctx: &WorkflowContextView) -> IngestStatus {
        let mut status = self.status.clone();
        if status.status.is_empty() {
            status.status = PENDING.to_owned();
        }
        status
    }
}
