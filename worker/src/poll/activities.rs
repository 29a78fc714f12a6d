//! `poll_page`: one call to a polled API ([`Poller::page`]), heartbeating while it waits.
//! A rate limit is retried after the API's `Retry-After`; an outage with capped backoff; a
//! refusal (credentials, a missing secret, a bad account) is final for this poll, which the
//! workflow records before it waits for the next.

// The activity macros generate marker types without `Debug`.
#![allow(missing_debug_implementations)]

use std::sync::Arc;

use apex_ingestion::polling::{PageRequest, PollError, PolledPage, Poller};
use apex_ingestion::steps::retry_delay;
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::ingest::activities::{jitter, with_heartbeats};
use crate::settings::IngestSettings;

/// Failure type of a page the API rate-limited (retried after its `Retry-After`).
pub const RATE_LIMITED: &str = "RateLimited";

/// The polling activities (cheap to clone).
#[derive(Clone)]
pub struct PollActivities {
    poller: Poller,
}

impl PollActivities {
    pub fn new(settings: &IngestSettings) -> anyhow::Result<Self> {
        Ok(Self {
            poller: Poller::new(settings)?,
        })
    }
}

/// A [`PollError`] as Temporal takes it: rate limits and outages retryable with the wait
/// before the next attempt, refusals final with the API's code as the failure type.
fn failure(e: PollError, attempt: u32) -> ActivityError {
    let (type_name, message, delay) = match e {
        PollError::RateLimited {
            retry_after,
            ref message,
        } => (
            RATE_LIMITED.to_owned(),
            message.clone(),
            Some(retry_after.max(std::time::Duration::from_millis(100))),
        ),
        PollError::Transient(ref m) => (
            "Transient".to_owned(),
            m.clone(),
            Some(retry_delay(attempt, jitter())),
        ),
        PollError::Refused {
            ref code,
            ref message,
        } => (code.clone(), message.clone(), None),
    };
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(type_name)
            .non_retryable(delay.is_none())
            .maybe_next_retry_delay(delay)
            .build(),
    )
}

#[activities]
impl PollActivities {
    /// Reads one page of an account from its cursor and stores its records.
    #[activity]
    pub async fn poll_page(
        self: Arc<Self>,
        ctx: ActivityContext,
        req: PageRequest,
    ) -> Result<PolledPage, ActivityError> {
        let account = req.account.name.clone();
        let provider = req.account.provider.as_str();
        let result = with_heartbeats(&ctx, self.poller.page(req)).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(PollError::RateLimited { .. }) => "rate_limited",
            Err(PollError::Transient(_)) => "transient",
            Err(PollError::Refused { .. }) => "refused",
        };
        crate::metrics::poll_page(&account, provider, outcome);
        crate::metrics::attempt(
            &ctx,
            "poll_page",
            match outcome {
                "ok" => "ok",
                "refused" => "final",
                _ => "retryable",
            },
        );
        match result {
            Ok(page) => {
                crate::metrics::polled(&account, provider, &page);
                Ok(page)
            }
            Err(e) => {
                tracing::warn!(%account, provider, attempt = ctx.info().attempt, error = %e, "poll page failed");
                Err(failure(e, ctx.info().attempt))
            }
        }
    }
}
