//! Waking steps that sit out their backoff after their dependency came back. A waiting step's
//! next attempt may be up to the backoff's cap (30 s) away when the dependency returns; when
//! another step of the same dependency succeeds on this worker, the others this worker saw
//! waiting ([`Waiting::succeeded`](super::waiting::Waiting::succeeded)) are reset through
//! Temporal's `ResetActivity`: the backoff is dropped and the next attempt starts at a random
//! moment within [`JITTER`], so the backlog drains at once without arriving all in one instant
//! (the worker's activity slots bound how many run together).
//!
//! Only steps whose failures are retried until the deadline are woken: a reset also sets the
//! attempt count back to one, which would give a counted step more attempts than it has. A
//! server without `ResetActivity` (it is experimental in Temporal) answers an error; the
//! steps then keep their backoff, and the worker says so once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use temporalio_client::Client;
use temporalio_client::grpc::WorkflowService as _;
use temporalio_common::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    ResetActivityRequest, reset_activity_request,
};

use super::waiting::StepRef;

/// The woken attempts start within this long of the reset.
pub const JITTER: Duration = Duration::from_secs(3);

/// Resets waiting steps through the worker's current Temporal connection (cheap to clone).
#[derive(Clone, Default)]
pub struct Waker {
    client: Arc<Mutex<Option<(Client, String)>>>,
    unsupported: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker").finish_non_exhaustive()
    }
}

impl Waker {
    /// The connection to reset through, in `namespace` (replaced on every reconnect).
    pub fn connect(&self, client: Client, namespace: String) {
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some((client, namespace));
    }

    /// Resets `steps` (waiting for `dependency`) in the background.
    pub fn wake(&self, dependency: &'static str, steps: Vec<StepRef>) {
        if steps.is_empty() {
            return;
        }
        let Some((client, namespace)) = self
            .client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return;
        };
        let unsupported = self.unsupported.clone();
        tokio::spawn(async move {
            let (mut woken, mut failed) = (0usize, 0usize);
            let mut last_error = None;
            for s in steps {
                let request = reset_request(&namespace, s);
                match client
                    .clone()
                    .reset_activity(tonic::Request::new(request))
                    .await
                {
                    Ok(_) => woken += 1,
                    Err(e) => {
                        failed += 1;
                        last_error = Some(e);
                    }
                }
            }
            match last_error {
                Some(e) if woken == 0 && e.code() == tonic::Code::Unimplemented => {
                    if !unsupported.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(
                            error = %e.message(),
                            "this Temporal server cannot reset activities: steps waiting for a dependency that came back wait out their backoff (at most 30 s)"
                        );
                    }
                }
                // A step that ended or ran meanwhile is not found: nothing to wake.
                _ => tracing::info!(
                    dependency,
                    woken,
                    not_woken = failed,
                    last_error = last_error.as_ref().map(|e| e.message().to_owned()),
                    "the dependency answers again: woke the steps waiting for it"
                ),
            }
        });
    }
}

/// `ResetActivity` of one step: its backoff dropped, started within [`JITTER`], not paused.
fn reset_request(namespace: &str, s: StepRef) -> ResetActivityRequest {
    ResetActivityRequest {
        namespace: namespace.to_owned(),
        execution: Some(WorkflowExecution {
            workflow_id: s.workflow_id,
            run_id: s.run_id,
        }),
        identity: "apex-worker (dependency back)".to_owned(),
        activity: Some(reset_activity_request::Activity::Id(s.activity_id)),
        reset_heartbeat: false,
        keep_paused: false,
        jitter: JITTER.try_into().ok(),
        restore_original_options: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_names_the_activity_of_the_run_and_spreads_the_restart() {
        let r = reset_request(
            "default",
            StepRef {
                workflow_id: "ingest-1".into(),
                run_id: "r1".into(),
                activity_id: "4".into(),
            },
        );
        assert_eq!(r.namespace, "default");
        let e = r.execution.expect("execution");
        assert_eq!(
            (e.workflow_id.as_str(), e.run_id.as_str()),
            ("ingest-1", "r1")
        );
        assert_eq!(
            r.activity,
            Some(reset_activity_request::Activity::Id("4".into()))
        );
        assert!(!r.keep_paused && !r.reset_heartbeat && !r.restore_original_options);
        assert_eq!(r.jitter.map(|d| d.seconds), Some(3));
    }
}
