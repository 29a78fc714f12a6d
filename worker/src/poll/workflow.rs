//! `PollingWorkflow`: one per source account. A timer loop rather than a Temporal Schedule:
//! the cursor lives in the workflow (a schedule starts a fresh workflow each time, which
//! would need the cursor stored elsewhere), `pause`, `resume` and `poll_now` are signals,
//! and `get_stats` is a query on the running poller.
//!
//! A poll reads pages until the provider says there are no more; after each page it starts
//! one `DocumentIngestionWorkflow` per new or changed record and one
//! `DocumentDeletionWorkflow` per deleted one, a bounded number at a time, and waits for
//! them before the next page, so the cursor only moves past what has been ingested. A
//! worker lost mid-page replays to the same cursor: the page is read again and its
//! records, being the same documents, are ingested as `unchanged`. Every 100 polls (the
//! input's `polls_per_run`), or sooner when the server suggests it, the poller continues as
//! new with its cursor and counts.

// The workflow macros generate marker types without `Debug`.
#![allow(missing_debug_implementations)]

use std::time::{Duration, SystemTime};

use apex_ingestion::checked::Checked;
use apex_ingestion::input::{DeleteInput, deletion_workflow_id, ingestion_workflow_id};
use apex_ingestion::polling::{
    Account, PageRequest, PollInput, PollStats, PolledPage, record_document_id, record_input,
};
use apex_ingestion::status::UNCHANGED;
use apex_ingestion::workflows::{Deletion, Ingestion, SOURCE, STATUS};
use temporalio_common::RetryPolicy;
use temporalio_common::error::IncomingError;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::{join_all, select};
use temporalio_sdk::{
    ActivityCloseTimeouts, ActivityExecutionError, ActivityOptions, ChildWorkflowOptions,
    ContinueAsNewOptions, ParentClosePolicy, SyncWorkflowContext, WorkflowContext,
    WorkflowContextView, WorkflowIdReusePolicy, WorkflowResult,
};

use super::activities::PollActivities;
use crate::ingest::workflow::{decoded, invalid_input};

/// Child workflows running at once for one page (the account's `parallel` option).
pub const DEFAULT_PARALLEL: usize = 16;
/// How long one page may take, rate limits and outages included, before the poll is
/// recorded as failed (the next poll starts from the same cursor).
pub const PAGE_DEADLINE: Duration = Duration::from_secs(30 * 60);

pub const POLLING: &str = "polling";
pub const WAITING: &str = "waiting";
pub const PAUSED: &str = "paused";

#[workflow]
#[derive(Default)]
pub struct PollingWorkflow {
    stats: PollStats,
    paused: bool,
    poll_now: bool,
}

fn page_options() -> ActivityOptions {
    ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: PAGE_DEADLINE,
        start_to_close: Duration::from_secs(120),
    })
    .heartbeat_timeout(Duration::from_secs(30))
    .retry_policy(
        RetryPolicy::builder()
            .initial_interval(Duration::from_secs(1))
            .backoff_coefficient(2.0)
            .maximum_interval(Duration::from_secs(60))
            .maximum_attempts(0)
            .build(),
    )
    .build()
}

/// The reason a page failed, without the SDK's wrappers.
fn page_error(err: &ActivityExecutionError) -> String {
    let mut cause = err.cause();
    let mut timed_out = false;
    while let Some(e) = cause {
        match e {
            IncomingError::Application(app) if timed_out => {
                return format!(
                    "no page within {} min; last error: {app}",
                    PAGE_DEADLINE.as_secs() / 60
                );
            }
            IncomingError::Application(app) => return app.to_string(),
            IncomingError::Timeout(_) => timed_out = true,
            _ => {}
        }
        cause = e.cause();
    }
    apex_ingestion::error_chain(err)
}

fn unix_ms(t: Option<SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

fn parallel(account: &Account) -> usize {
    account
        .option("parallel")
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(DEFAULT_PARALLEL, |n| n.clamp(1, 256))
}

impl PollingWorkflow {
    fn set_status(ctx: &WorkflowContext<Self>, status: &str) {
        ctx.state_mut(|s| s.stats.status = status.to_owned());
        ctx.upsert_search_attributes([STATUS.value_set(status.to_owned())]);
    }

    /// Reads every page of one poll; the cursor moves after each page's records are in.
    async fn poll(
        ctx: &WorkflowContext<Self>,
        account: &Account,
        state: &mut String,
    ) -> Result<(), String> {
        loop {
            let page = ctx
                .execute_activity(
                    PollActivities::poll_page,
                    PageRequest {
                        account: account.clone(),
                        state: state.clone(),
                    },
                    page_options(),
                )
                .await
                .map_err(|e| page_error(&e))?;
            Self::apply(ctx, account, &page).await;
            *state = page.state.clone();
            ctx.state_mut(|s| {
                s.stats.pages += 1;
                s.stats.restarts += u64::from(page.restarted);
                s.stats.last_cursor = page.cursor.clone();
            });
            if !page.more {
                return Ok(());
            }
        }
    }

    /// Ingests a page's records and deletes its removed ones, `parallel` at a time.
    async fn apply(ctx: &WorkflowContext<Self>, account: &Account, page: &PolledPage) {
        let width = parallel(account);
        for batch in page.records.chunks(width) {
            let runs = batch.iter().map(|record| async move {
                let input = record_input(account, record);
                let id = ingestion_workflow_id(&input.document_id);
                let started = ctx
                    .start_child_workflow(Ingestion, input, child_options(id))
                    .await;
                match started {
                    Ok(child) => match child.result().await {
                        Ok(status) if status.status == UNCHANGED => Outcome::Unchanged,
                        Ok(_) => Outcome::Ingested,
                        Err(e) => Outcome::Failed(format!("record {}: {e}", record.id)),
                    },
                    Err(e) => Outcome::Failed(format!("record {}: {e}", record.id)),
                }
            });
            for outcome in join_all(runs).await {
                Self::count(ctx, outcome, false);
            }
        }
        for batch in page.removed.chunks(width) {
            let runs = batch.iter().map(|id| async move {
                let document_id = record_document_id(account, id);
                let input = DeleteInput {
                    document_id: document_id.clone(),
                };
                let started = ctx
                    .start_child_workflow(
                        Deletion,
                        Checked::from(input),
                        child_options(deletion_workflow_id(&document_id)),
                    )
                    .await;
                match started {
                    Ok(child) => match child.result().await {
                        Ok(_) => Outcome::Ingested,
                        Err(e) => Outcome::Failed(format!("deleting record {id}: {e}")),
                    },
                    Err(e) => Outcome::Failed(format!("deleting record {id}: {e}")),
                }
            });
            for outcome in join_all(runs).await {
                Self::count(ctx, outcome, true);
            }
        }
    }

    fn count(ctx: &WorkflowContext<Self>, outcome: Outcome, deletion: bool) {
        ctx.state_mut(|s| match outcome {
            Outcome::Ingested if deletion => s.stats.deleted += 1,
            Outcome::Ingested => s.stats.records += 1,
            Outcome::Unchanged => s.stats.unchanged += 1,
            Outcome::Failed(reason) => {
                s.stats.failed += 1;
                s.stats.last_error = Some(reason);
            }
        });
    }
}

enum Outcome {
    Ingested,
    Unchanged,
    Failed(String),
}

/// A record's child: its own workflow id (so the same record is the same ingestion), left
/// to finish should the poller be closed while it runs.
fn child_options(workflow_id: String) -> ChildWorkflowOptions {
    ChildWorkflowOptions::builder()
        .workflow_id(workflow_id)
        .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
        .parent_close_policy(ParentClosePolicy::Abandon)
        .build()
}

#[workflow_methods]
impl PollingWorkflow {
    #[run]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: Checked<PollInput>,
    ) -> WorkflowResult<PollStats> {
        let input = match decoded(input) {
            Ok(input) => input,
            Err(message) => return Err(invalid_input(message).into()),
        };
        if let Some(problem) = input.account.problems().into_iter().next() {
            return Err(invalid_input(problem).into());
        }
        let account = input.account.clone();
        let interval = input.interval();
        let mut state = input.state.clone();
        ctx.state_mut(|s| {
            s.stats = input.stats.clone();
            s.stats.runs += 1;
            s.paused = input.paused;
        });
        ctx.upsert_search_attributes([
            SOURCE.value_set(format!("poll:{}", account.provider.as_str()))
        ]);
        for i in 0..input.polls_per_run() {
            // A continued run waits its interval first, like every poll after the first.
            if i > 0 || input.stats.polls > 0 || input.stats.last_error.is_some() {
                select! {
                    _ = ctx.timer(interval) => {}
                    _ = ctx.wait_condition(|s| s.poll_now || s.paused) => {}
                };
            }
            if ctx.state(|s| s.paused) {
                Self::set_status(ctx, PAUSED);
                ctx.wait_condition(|s| !s.paused).await?;
            }
            Self::set_status(ctx, POLLING);
            // A `poll_now` during this poll asks for another after it.
            ctx.state_mut(|s| s.poll_now = false);
            let started = unix_ms(ctx.workflow_time());
            ctx.state_mut(|s| s.stats.last_poll_started_ms = started);
            let result = Self::poll(ctx, &account, &mut state).await;
            let finished = unix_ms(ctx.workflow_time());
            ctx.state_mut(|s| match result {
                Ok(()) => {
                    s.stats.polls += 1;
                    s.stats.last_poll_finished_ms = finished;
                }
                Err(reason) => s.stats.last_error = Some(reason),
            });
            Self::set_status(ctx, WAITING);
            if ctx.continue_as_new_suggested() {
                break;
            }
        }
        let next = PollInput {
            account,
            interval_secs: interval.as_secs(),
            state,
            paused: ctx.state(|s| s.paused),
            stats: ctx.state(|s| s.stats.clone()),
            polls_per_run: input.polls_per_run,
        };
        let never = ctx.continue_as_new(next.into(), ContinueAsNewOptions::default())?;
        match never {}
    }

    /// Polls stop after the current one until `resume`.
    #[signal]
    pub fn pause(&mut self, _ctx: &mut SyncWorkflowContext<Self>) {
        self.paused = true;
    }

    #[signal]
    pub fn resume(&mut self, _ctx: &mut SyncWorkflowContext<Self>) {
        self.paused = false;
        self.poll_now = true;
    }

    /// Polls at once instead of at the end of the interval.
    #[signal]
    pub fn poll_now(&mut self, _ctx: &mut SyncWorkflowContext<Self>) {
        self.poll_now = true;
    }

    #[query]
    pub fn get_stats(&self, _ctx: &WorkflowContextView) -> PollStats {
        let mut stats = self.stats.clone();
        if self.paused && stats.status == WAITING {
            stats.status = PAUSED.to_owned();
        }
        stats
    }
}
