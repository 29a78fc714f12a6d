//! Hello world: `GreetingWorkflow` and its `greet` activity, the smoke test of the whole
//! Temporal path (client → server → worker → activity → result).

// The workflow macros generate marker types without `Debug`.
#![allow(missing_debug_implementations)]

use std::time::Duration;

use apex_ingestion::checked::Checked;

use temporalio_common::RetryPolicy;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, ApplicationFailure, WorkflowContext, WorkflowContextView, WorkflowResult,
    activities::{ActivityContext, ActivityError},
};

pub use apex_ingestion::workflows::{
    GREET_MAX_ATTEMPTS, GreetingInput, GreetingStatus, VALIDATION_ERROR,
};

#[workflow]
#[derive(Default)]
pub struct GreetingWorkflow {
    status: GreetingStatus,
}

#[workflow_methods]
impl GreetingWorkflow {
    #[run]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: Checked<GreetingInput>,
    ) -> WorkflowResult<String> {
        let input = match crate::ingest::workflow::decoded(input) {
            Ok(input) => input,
            Err(message) => {
                ctx.state_mut(|s| {
                    s.status.status = "failed".to_owned();
                    s.status.error = Some(message.clone());
                });
                return Err(crate::ingest::workflow::invalid_input(message).into());
            }
        };
        ctx.state_mut(|s| {
            s.status.status = "running".to_owned();
            s.status.name = input.name.clone();
        });
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_millis(200))
                    .backoff_coefficient(2.0)
                    .maximum_interval(Duration::from_secs(5))
                    .maximum_attempts(GREET_MAX_ATTEMPTS)
                    .non_retryable_error_types([VALIDATION_ERROR])
                    .build(),
            )
            .build();
        match ctx
            .execute_activity(GreetingActivities::greet, input, options)
            .await
        {
            Ok(greeting) => {
                ctx.state_mut(|s| {
                    s.status.status = "completed".to_owned();
                    s.status.greeting = Some(greeting.clone());
                });
                Ok(greeting)
            }
            Err(e) => {
                let message = crate::error_chain(&e);
                ctx.state_mut(|s| {
                    s.status.status = "failed".to_owned();
                    s.status.error = Some(message);
                });
                Err(e.into())
            }
        }
    }

    #[query]
    pub fn get_status(&self, _ctx: &WorkflowContextView) -> GreetingStatus {
        let mut status = self.status.clone();
        if status.status.is_empty() {
            status.status = "pending".to_owned();
        }
        status
    }
}

/// The activities of the hello-world workflow.
#[derive(Debug, Clone, Copy)]
pub struct GreetingActivities;

#[activities]
impl GreetingActivities {
    /// Greets `name`; an empty name is a non-retryable validation failure.
    #[activity]
    pub async fn greet(
        ctx: ActivityContext,
        input: GreetingInput,
    ) -> Result<String, ActivityError> {
        let name = input.name.trim();
        if name.is_empty() {
            return Err(ActivityError::application(
                ApplicationFailure::builder("name must not be empty")
                    .type_name(VALIDATION_ERROR.to_owned())
                    .non_retryable(true)
                    .build(),
            ));
        }
        let attempt = ctx.info().attempt;
        if attempt <= input.fail_first_attempts {
            tracing::warn!(attempt, "greet failing on purpose to show a retry");
            return Err(ActivityError::application(ApplicationFailure::new(
                format!(
                    "transient failure on attempt {attempt} (asked for {})",
                    input.fail_first_attempts
                ),
            )));
        }
        if input.delay_ms > 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(input.delay_ms)) => {}
                _ = ctx.cancelled() => return Err(ActivityError::cancelled()),
            }
        }
        tracing::info!(name, attempt, "greeted");
        Ok(format!("Hello, {name}!"))
    }
}

/// A client-side handle on a running or finished [`GreetingWorkflow`].
pub type GreetingHandle = temporalio_client::WorkflowHandle<
    temporalio_client::Client,
    <GreetingWorkflow as temporalio_common::HasWorkflowDefinition>::Run,
>;
