//! The ingestion contract: what the gateway, the worker, the CLI and the load test share, so
//! that none of them depends on another deployable.
//!
//! - [`input`]: the ingestion input, document ids, document and blob references.
//! - [`status`]: what an ingestion reports ([`IngestStatus`], [`Status`] with its one
//!   [`Status::is_final`]), and the retry class of a service's answer.
//! - [`stages`]: the stage calls (fetch, check, parse, extract, embed, write, delete) as plain
//!   calls with a [`StageError`] that says whether trying again helps. The worker's activities
//!   wrap them; the gateway's legacy path calls them in sequence.
//! - [`steps`]: each step's time per attempt and attempts, the same on both paths.
//! - [`polling`]: polled APIs (Plaid, HubSpot, Stripe): the `PollingWorkflow` contract and
//!   one page's call, read and stored.
//! - [`live`]: the status the worker writes to Redis as a Temporal-path ingestion moves.
//! - [`rollout`]: the share of documents the gateways send through Temporal, in Redis.
//! - [`workflows`]: the workflows as a client sees them (names, inputs, outputs, queries,
//!   search attributes) and starting one. The worker implements them; a test there checks
//!   that the names and types agree.

pub mod checked;
pub mod deployment;
pub mod input;
pub mod keys;
pub mod live;
pub mod polling;
pub mod rollout;
pub mod settings;
pub mod stages;
pub mod status;
pub mod steps;
pub mod workflows;

pub use input::{
    Blob, DeleteInput, DocRef, IngestInput, deletion_workflow_id, document_id,
    ingestion_workflow_id,
};
pub use settings::IngestSettings;
pub use stages::{ServiceClients, StageError, Stages};
pub use status::{IngestStatus, Status, StepRecord};

/// The task queue of the ingestion workflows (and of the hello world).
pub use apex_common::temporal::TASK_QUEUE;

/// An error and all its causes on one line, so that the reason an activity gave (for
/// example "name must not be empty") reaches whoever started the workflow.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}
