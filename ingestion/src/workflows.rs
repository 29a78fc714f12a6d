//! The workflows as a client sees them: their type names, inputs, outputs and queries, the
//! search attributes they set, and starting one. The worker implements them with the SDK's
//! workflow macros; its tests check that each name and type here matches the implementation,
//! so a client built on this crate starts exactly what the worker runs without linking it.

use std::str::FromStr;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, WorkflowHandle, WorkflowIdConflictPolicy,
    WorkflowIdReusePolicy, WorkflowStartOptions, errors::WorkflowStartError,
};
use temporalio_common::search_attributes::SearchAttributeKey;
use temporalio_common::{HasWorkflowDefinition, QueryDefinition, WorkflowDefinition};

use crate::checked::Checked;
use crate::input::{DeleteInput, IngestInput, ingestion_workflow_id};
use crate::stages::Deleted;
use crate::status::IngestStatus;

/// The search attributes the workflows set, as the Temporal server must register them
/// (`name=Type`, the form `temporal server start-dev --search-attribute` takes).
pub const SEARCH_ATTRIBUTES: [&str; 4] = [
    "Source=Keyword",
    "Priority=Int",
    "DocumentId=Keyword",
    "Status=Keyword",
];
pub const SOURCE: SearchAttributeKey<String> = SearchAttributeKey::keyword("Source");
pub const PRIORITY: SearchAttributeKey<i64> = SearchAttributeKey::int("Priority");
pub const DOCUMENT_ID: SearchAttributeKey<String> = SearchAttributeKey::keyword("DocumentId");
pub const STATUS: SearchAttributeKey<String> = SearchAttributeKey::keyword("Status");

/// Declares a workflow (a marker type with its name, input and output) and its status query.
macro_rules! workflow_contract {
    ($(#[$doc:meta])* $workflow:ident = $name:literal, $input:ty => $output:ty;
     $(#[$qdoc:meta])* $query:ident -> $status:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $workflow;

        impl WorkflowDefinition for $workflow {
            type Input = $input;
            type Output = $output;
            fn name(&self) -> &str {
                $name
            }
        }

        impl HasWorkflowDefinition for $workflow {
            type Run = Self;
        }

        $(#[$qdoc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $query;

        impl QueryDefinition for $query {
            type Workflow = $workflow;
            type Input = ();
            type Output = $status;
            fn name(&self) -> &str {
                "get_status"
            }
        }
    };
}

workflow_contract! {
    /// `DocumentIngestionWorkflow`: fetch → check → parse → extract ∥ embed → write.
    Ingestion = "DocumentIngestionWorkflow", Checked<IngestInput> => IngestStatus;
    /// Its `get_status` query: where the ingestion is, with timings and counts.
    IngestionStatus -> IngestStatus
}

workflow_contract! {
    /// `DocumentDeletionWorkflow`: the document's rows, graph, vectors and state removed.
    Deletion = "DocumentDeletionWorkflow", Checked<DeleteInput> => Deleted;
    /// Its `get_status` query: `pending`, `deleted` or `failed`.
    DeletionStatus -> String
}

workflow_contract! {
    /// `GreetingWorkflow`, the hello world (`apex hello`).
    Greeting = "GreetingWorkflow", Checked<GreetingInput> => String;
    /// Its `get_status` query.
    GreetingStatusQuery -> GreetingStatus
}

/// Failure type of a greeting for an empty name; never retried.
pub const VALIDATION_ERROR: &str = "ValidationError";

/// How many attempts the `greet` activity gets before the workflow fails.
pub const GREET_MAX_ATTEMPTS: u32 = 5;

/// Input of [`Greeting`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct GreetingInput {
    pub name: String,
    /// Demonstrates retries: the activity fails transiently on its first N attempts.
    pub fail_first_attempts: u32,
    /// Demonstrates a long activity: it takes this long before answering.
    pub delay_ms: u64,
}

impl GreetingInput {
    /// A plain greeting of `name`.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// What the greeting's `get_status` answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GreetingStatus {
    /// `pending`, `running`, `completed` or `failed`.
    pub status: String,
    pub name: String,
    pub greeting: Option<String>,
    pub error: Option<String>,
}

/// A handle on a document's ingestion.
pub type IngestionHandle = WorkflowHandle<Client, Ingestion>;

/// Starts the ingestion of `input` on `task_queue` under `ingest-<document id>`.
///
/// Policy for a second start: while an ingestion of the same document runs, a new start
/// attaches to it (the handle of the running one is returned, nothing new starts); once it
/// has closed, a new start runs a new ingestion, which ends `unchanged` when the content
/// has not changed.
pub async fn start_ingestion(
    client: &Client,
    task_queue: &str,
    input: IngestInput,
) -> Result<IngestionHandle, WorkflowStartError> {
    let id = ingestion_workflow_id(&input.resolved_document_id());
    client
        .start_workflow(
            Ingestion,
            input.into(),
            WorkflowStartOptions::new(task_queue, id)
                .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
                .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
                .build(),
        )
        .await
}

/// A client for `namespace` at `address`, for starters, tests and the CLI (no retries).
pub async fn client(address: &str, namespace: &str) -> anyhow::Result<Client> {
    let url = url::Url::from_str(address)?;
    let conn = Connection::connect(
        ConnectionOptions::new(url)
            .identity("apex-cli".to_owned())
            .build(),
    )
    .await
    .with_context(|| format!("cannot reach temporal at {address}"))?;
    Ok(Client::new(conn, client_options(namespace))?)
}

/// Client options every Temporal client of the mesh uses: the OpenTelemetry plugin, which
/// carries the caller's trace in the `_tracer-data` header (W3C `traceparent`, `tracestate`
/// and `baggage` as a JSON map, the format of the Go, Python and TypeScript SDKs), so the
/// workflow, its activities and the services they call join the trace of whoever started
/// it. A worker built from such a client gets the plugin's worker half.
pub fn client_options(namespace: &str) -> ClientOptions {
    ClientOptions::new(namespace.to_owned())
        .plugin(temporalio_sdk::opentelemetry::OpenTelemetryPlugin::builder().build())
        .build()
}
