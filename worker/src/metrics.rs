//! The worker's own metrics (served on its `/metrics` after the Temporal SDK's):
//! - workflow layer: ingestions started and ended by workflow type, source and final status
//!   (`completed`, `unchanged`, `failed`), and their end-to-end time in workflow time;
//! - activity layer: each attempt's time and outcome (`ok`, `retryable`, `final`).
//!
//! Workflow counts come from a workflow interceptor that stays silent while history is
//! replayed, so a workflow rebuilt after an eviction or a worker restart is not counted
//! twice.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use apex_ingestion::IngestInput;
use apex_ingestion::status::IngestStatus;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use temporalio_sdk::activities::ActivityContext;
use temporalio_workflow::workflow_interceptors::{
    ExecuteWorkflowInput, ExecuteWorkflowResult, WorkflowInterceptor,
    WorkflowInterceptorConstructor, WorkflowInterceptorContext, WorkflowInterceptorFuture,
    WorkflowNext,
};

struct Metrics {
    registry: Registry,
    started: IntCounterVec,
    ended: IntCounterVec,
    workflow_seconds: HistogramVec,
    attempts: IntCounterVec,
    attempt_seconds: HistogramVec,
    poll_pages: IntCounterVec,
    poll_records: IntCounterVec,
    poll_complete: GaugeVec,
    live_dropped: prometheus::IntCounter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let started = IntCounterVec::new(
        Opts::new(
            "apex_workflow_started_total",
            "Workflows started, by type and source",
        ),
        &["workflow", "source"],
    )
    .expect("valid metric");
    let ended = IntCounterVec::new(
        Opts::new(
            "apex_workflow_ended_total",
            "Workflows ended, by type, source and final status",
        ),
        &["workflow", "source", "status"],
    )
    .expect("valid metric");
    let workflow_seconds = HistogramVec::new(
        HistogramOpts::new(
            "apex_workflow_seconds",
            "From a workflow's first task to its end, by type, source and final status",
        )
        .buckets(vec![
            0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0,
        ]),
        &["workflow", "source", "status"],
    )
    .expect("valid metric");
    let attempts = IntCounterVec::new(
        Opts::new(
            "apex_activity_attempts_total",
            "Activity attempts, by activity and outcome (ok, retryable, final)",
        ),
        &["activity", "outcome"],
    )
    .expect("valid metric");
    let attempt_seconds = HistogramVec::new(
        HistogramOpts::new(
            "apex_activity_attempt_seconds",
            "Time of one activity attempt, by activity and outcome",
        )
        .buckets(vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0,
        ]),
        &["activity", "outcome"],
    )
    .expect("valid metric");
    let poll_pages = IntCounterVec::new(
        Opts::new(
            "apex_poll_pages_total",
            "Pages of polled APIs read, by account, provider and outcome (ok, rate_limited, transient, refused)",
        ),
        &["account", "provider", "outcome"],
    )
    .expect("valid metric");
    let poll_records = IntCounterVec::new(
        Opts::new(
            "apex_poll_records_total",
            "Records polled, by account, provider and action (upsert, delete)",
        ),
        &["account", "provider", "action"],
    )
    .expect("valid metric");
    let poll_complete = GaugeVec::new(
        Opts::new(
            "apex_poll_last_complete_timestamp_seconds",
            "When an account's last poll read its last page (Unix seconds)",
        ),
        &["account", "provider"],
    )
    .expect("valid metric");
    let live_dropped = prometheus::IntCounter::new(
        "apex_live_status_dropped_total",
        "Live statuses not written to Redis (queue full, Redis unreachable); a status read then asks Temporal",
    )
    .expect("valid metric");
    let _ = registry.register(Box::new(live_dropped.clone()));
    let _ = registry.register(Box::new(poll_complete.clone()));
    for m in [&started, &ended, &attempts, &poll_pages, &poll_records] {
        let _ = registry.register(Box::new(m.clone()));
    }
    for m in [&workflow_seconds, &attempt_seconds] {
        let _ = registry.register(Box::new(m.clone()));
    }
    Metrics {
        registry,
        started,
        ended,
        workflow_seconds,
        attempts,
        attempt_seconds,
        poll_pages,
        poll_records,
        poll_complete,
        live_dropped,
    }
});

/// A live status that was not written ([`crate::ingest::live`]).
pub fn live_status_dropped() {
    METRICS.live_dropped.inc();
}

/// `n` live statuses that were not written.
pub fn live_status_dropped_many(n: usize) {
    METRICS.live_dropped.inc_by(n as u64);
}

/// Counts a page of a polled API by `outcome` (`ok`, `rate_limited`, `transient`,
/// `refused`).
pub fn poll_page(account: &str, provider: &str, outcome: &str) {
    METRICS
        .poll_pages
        .with_label_values(&[account, provider, outcome])
        .inc();
}

/// Counts what a page gave and, when it was a poll's last, notes the time.
pub fn polled(account: &str, provider: &str, page: &apex_ingestion::polling::PolledPage) {
    let count = |action: &str, n: usize| {
        METRICS
            .poll_records
            .with_label_values(&[account, provider, action])
            .inc_by(n as u64);
    };
    count("upsert", page.records.len());
    count("delete", page.removed.len());
    if !page.more {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        METRICS
            .poll_complete
            .with_label_values(&[account, provider])
            .set(now.as_secs_f64());
    }
}

/// The registry the worker serves besides the SDK's metrics.
pub fn registry() -> Registry {
    METRICS.registry.clone()
}

/// Counts one activity attempt that ended with `outcome` (`ok`, `retryable`, `final`).
pub fn attempt(ctx: &ActivityContext, activity: &str, outcome: &str) {
    let took = ctx
        .info()
        .started_time
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or(Duration::ZERO);
    METRICS
        .attempts
        .with_label_values(&[activity, outcome])
        .inc();
    METRICS
        .attempt_seconds
        .with_label_values(&[activity, outcome])
        .observe(took.as_secs_f64());
}

/// The interceptor that counts workflows; one per workflow instance.
pub fn workflow_counter() -> WorkflowInterceptorConstructor {
    WorkflowInterceptorConstructor::new(|_| WorkflowCounter)
}

struct WorkflowCounter;

/// The final status a workflow's output or failure stands for.
fn final_status(result: &ExecuteWorkflowResult) -> String {
    match result {
        Ok(output) => output
            .downcast_ref::<IngestStatus>()
            .map_or_else(|| "completed".to_owned(), |s| s.status.clone()),
        Err(_) => "failed".to_owned(),
    }
}

impl WorkflowInterceptor for WorkflowCounter {
    fn execute<'a>(
        &'a self,
        ctx: WorkflowInterceptorContext,
        input: ExecuteWorkflowInput,
        next: WorkflowNext<
            'a,
            ExecuteWorkflowInput,
            WorkflowInterceptorFuture<'a, ExecuteWorkflowResult>,
        >,
    ) -> WorkflowInterceptorFuture<'a, ExecuteWorkflowResult> {
        let workflow = ctx.workflow_type().to_owned();
        let source = input
            .input_ref::<IngestInput>()
            .or_else(|| input.input_ref::<(IngestInput,)>().map(|t| &t.0))
            .map_or_else(String::new, |i| i.source.clone());
        let began = ctx.workflow_time();
        if !ctx.is_replaying_history_events() {
            METRICS
                .started
                .with_label_values(&[&workflow, &source])
                .inc();
        }
        WorkflowInterceptorFuture::new(async move {
            let result = next.run(input).await;
            if !ctx.is_replaying_history_events() {
                let status = final_status(&result);
                METRICS
                    .ended
                    .with_label_values(&[&workflow, &source, &status])
                    .inc();
                let took = match (began, ctx.workflow_time()) {
                    (Some(a), Some(b)) => b.duration_since(a).unwrap_or_default(),
                    _ => Duration::ZERO,
                };
                METRICS
                    .workflow_seconds
                    .with_label_values(&[&workflow, &source, &status])
                    .observe(took.as_secs_f64());
            }
            result
        })
    }
}
