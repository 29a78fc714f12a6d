//! `DocumentDeletionWorkflow`: one `delete_document` activity (every store, under the
//! writer's idempotency), with the status in a search attribute.

// The workflow macros generate marker types without `Debug`.
#![allow(missing_debug_implementations)]

use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ApplicationFailure, WorkflowContext, WorkflowContextView, WorkflowResult};

use super::{
    DEFAULT_DEADLINE, DOCUMENT_ID, INVALID_INPUT, STATUS, WRITE_HEARTBEAT, WRITE_TIMEOUT, options,
    reason,
};
use super::{decoded, invalid_input};
use crate::ingest::DeleteInput;
use crate::ingest::activities::{Deleted, IngestActivities};
use crate::ingest::status::{DELETED, FAILED, PENDING};
use apex_ingestion::checked::Checked;

#[workflow]
#[derive(Default)]
pub struct DocumentDeletionWorkflow {
    status: String,
}

#[workflow_methods]
impl DocumentDeletionWorkflow {
    #[run]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: Checked<DeleteInput>,
    ) -> WorkflowResult<Deleted> {
        let input = match decoded(input) {
            Ok(input) => input,
            Err(message) => {
                ctx.state_mut(|s| s.status = FAILED.to_owned());
                return Err(invalid_input(message).into());
            }
        };
        let document_id = input.document_id.trim().to_owned();
        ctx.upsert_search_attributes([
            DOCUMENT_ID.value_set(document_id.clone()),
            STATUS.value_set(PENDING.to_owned()),
        ]);
        ctx.state_mut(|s| s.status = PENDING.to_owned());
        if document_id.is_empty() {
            ctx.upsert_search_attributes([STATUS.value_set(FAILED.to_owned())]);
            return Err(ApplicationFailure::builder("document_id is required")
                .type_name(INVALID_INPUT.to_owned())
                .non_retryable(true)
                .build()
                .into());
        }
        let result = ctx
            .execute_activity(
                IngestActivities::delete_document,
                document_id,
                options(WRITE_TIMEOUT, Some(WRITE_HEARTBEAT), 0, DEFAULT_DEADLINE),
            )
            .await;
        match result {
            Ok(deleted) => {
                ctx.state_mut(|s| s.status = DELETED.to_owned());
                ctx.upsert_search_attributes([STATUS.value_set(DELETED.to_owned())]);
                Ok(deleted)
            }
            Err(e) => {
                let message = format!("delete failed: {}", reason(&e));
                ctx.state_mut(|s| s.status = FAILED.to_owned());
                ctx.upsert_search_attributes([STATUS.value_set(FAILED.to_owned())]);
                Err(ApplicationFailure::builder(message)
                    .type_name("DeletionFailed".to_owned())
                    .non_retryable(true)
                    .build()
                    .into())
            }
        }
    }

    #[query]
    pub fn get_status(&self, _ctx: &WorkflowContextView) -> String {
        if self.status.is_empty() {
            PENDING.to_owned()
        } else {
            self.status.clone()
        }
    }
}
