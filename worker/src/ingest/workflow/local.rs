//! A service step's first attempt in the worker ([`LOCAL_SERVICE_STEPS_PATCH`]).
//!
//! Every server-side activity is a round trip through Temporal's history: scheduled with one
//! workflow task, started and completed by the worker, and a new workflow task to go on. A
//! local activity runs in the worker within the workflow task and is recorded as a marker
//! when the task completes, so a document whose steps all answer the first time is one
//! workflow task. What a local attempt gives up is the server's view of it (no heartbeats,
//! no pending activity in a describe): so only the first attempt is local, and one that
//! fails in a way a retry may mend goes on as a server-side activity, retried and
//! heartbeating as before, the memo written first so the status says where it waits.
//! A lost worker is noticed by the workflow task's timeout (10 s), after which another
//! worker replays the run and makes the attempt again.
//!
//! [`LOCAL_SERVICE_STEPS_PATCH`]: apex_ingestion::workflows::LOCAL_SERVICE_STEPS_PATCH

use std::time::Duration;

use temporalio_common::ActivityDefinition;
use temporalio_common::data_converters::TemporalDeserializable;
use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_sdk::WorkflowContext;
use temporalio_sdk::{ActivityExecutionError, LocalActivityOptions};

use super::{DocumentIngestionWorkflow, retry, service_step};

/// A step's output and how many attempts it took, the local one included.
pub(super) struct Ran<T> {
    pub out: T,
    /// Attempts made before the one that produced `out` and that `out` does not count:
    /// 1 when the local attempt failed and a server-side one answered, else 0.
    pub earlier: u32,
}

/// One attempt, in the worker, within `start_to_close` (and the ingestion's `left`).
fn local_once(start_to_close: Duration, left: Duration) -> LocalActivityOptions {
    LocalActivityOptions::builder()
        .schedule_to_close_timeout(left)
        .start_to_close_timeout(start_to_close.min(left))
        .retry_policy(retry(1))
        .build()
}

/// Whether a failed activity said that no retry can mend it (bad input, a fault its
/// service counted out). A server-side activity's failure wraps the application failure; a
/// local activity's is the application failure itself: the first one in the chain decides.
fn is_final(err: &ActivityExecutionError) -> bool {
    let mut failure = err.failure();
    while let Some(f) = failure {
        if let Some(FailureInfo::ApplicationFailureInfo(info)) = &f.failure_info {
            return info.non_retryable;
        }
        failure = f.cause.as_deref();
    }
    false
}

impl DocumentIngestionWorkflow {
    /// Runs the service step that `activity` names on `input` (`left`: the time to the
    /// ingestion's deadline): first once as a local activity when this run makes local
    /// attempts and the step is `small` enough, then, if that attempt failed but a retry
    /// may mend it, as a server-side activity with the service steps' options (otherwise
    /// server-side from the start). The memo (and the live status, marked as waiting on the
    /// server) is written before a server-side attempt, so a status read while it waits or
    /// retries says which step it is at and what the server knows of the attempt.
    pub(super) async fn local_first<AD>(
        ctx: &WorkflowContext<Self>,
        activity: impl Fn() -> AD,
        input: AD::Input,
        small: bool,
        left: Duration,
    ) -> Result<Ran<AD::Output>, ActivityExecutionError>
    where
        AD: ActivityDefinition,
        AD::Input: Clone,
        AD::Output: TemporalDeserializable,
    {
        let mut earlier = 0;
        let (local, timeout) = ctx.state(|s| (s.local, s.local_attempt));
        if small && local {
            let options = local_once(timeout, left);
            match ctx
                .execute_local_activity(activity(), input.clone(), options)
                .await
            {
                Ok(out) => return Ok(Ran { out, earlier }),
                Err(e) if is_final(&e) => return Err(e),
                Err(_) => earlier = 1,
            }
        }
        ctx.state_mut(|s| s.on_server += 1);
        Self::publish(ctx);
        Self::publish_live(ctx);
        let out = ctx
            .execute_activity(activity(), input, service_step(left))
            .await;
        ctx.state_mut(|s| s.on_server -= 1);
        Ok(Ran { out: out?, earlier })
    }
}
