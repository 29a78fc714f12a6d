//! The workflows as a client sees them: their type names, inputs, outputs and queries, the
//! search attributes they set, and starting one. The worker implements them with the SDK's
//! workflow macros; its tests check that each name and type here matches the implementation,
//! so a client built on this crate starts exactly what the worker runs without linking it.

use std::str::FromStr;

use anyhow::Context as _;
use apex_common::temporal::TemporalSettings;
use apex_common::tls::ClientTlsSettings;
use serde::{Deserialize, Serialize};
use temporalio_client::{
    Client, ClientOptions, ClientTlsOptions, Connection, ConnectionOptions, TlsOptions,
    WorkflowHandle, WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowStartOptions,
    errors::WorkflowStartError,
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
/// Dynamic configuration a single-node Temporal (the local stack's `start-dev`, the tests')
/// runs with, as `--dynamic-config-value` takes it. Eager activities: the server hands an
/// activity the workflow task schedules straight back to the worker that completed the task,
/// saving the matching round trip per step (on by default in Temporal Cloud; a self-hosted
/// cluster sets the same key).
pub const DEV_SERVER_DYNAMIC_CONFIG: [&str; 1] = ["system.enableActivityEagerExecution=true"];

/// SQLite settings of a single-node Temporal's database file (`--sqlite-pragma`). Without
/// them SQLite keeps a rollback journal and syncs the disk twice a transaction, and every
/// workflow task, activity and start is a transaction. In WAL mode with `synchronous=normal`
/// a commit is appended to the log and the disk is synced at checkpoints: what a killed
/// server process had committed is still there when it starts again; a power cut may lose
/// the last commits (not the database).
pub const DEV_SERVER_SQLITE_PRAGMAS: [&str; 2] = ["journal_mode=wal", "synchronous=normal"];

pub const SOURCE: SearchAttributeKey<String> = SearchAttributeKey::keyword("Source");
pub const PRIORITY: SearchAttributeKey<i64> = SearchAttributeKey::int("Priority");
pub const DOCUMENT_ID: SearchAttributeKey<String> = SearchAttributeKey::keyword("DocumentId");
pub const STATUS: SearchAttributeKey<String> = SearchAttributeKey::keyword("Status");

/// The memo key under which an ingestion keeps its [`IngestStatus`] as each step begins and
/// when it ends, so a status read is one `DescribeWorkflowExecution` (the server's record)
/// rather than a query the worker must answer. Its `status` may lag the `Status` search
/// attribute by one step; the counts are those of the steps done when it was written.
pub const STATUS_MEMO: &str = "status";

/// The patch under which an ingestion writes [`STATUS_MEMO`] and runs its first two steps
/// (the check, and the fetch of an uploaded blob) as local activities: in the worker, inside
/// the first workflow task, with no round trip through the server. Histories recorded
/// before it replay as they ran.
pub const LIGHT_STEPS_PATCH: &str = "status-memo-local-first-steps";

/// The patch under which parse, extract and embed also make their first attempt as local
/// activities (for documents within [`crate::steps::LOCAL_PARSE_MAX_BYTES`] and
/// [`crate::steps::LOCAL_MAX_CHUNKS`]; the write stays server-side, see the worker's
/// `write_step`); a first attempt that fails in a way a retry may mend
/// goes on as a server-side activity, whose retries the server (and the gateway's `waiting`)
/// sees. Under it the memo is written when the status changes and before the workflow waits
/// on the server, and the [`STATUS`] search attribute only when the ingestion starts and ends:
/// a document that meets no failure is two workflow tasks (the steps up to the write, and
/// the write's completion).
pub const LOCAL_SERVICE_STEPS_PATCH: &str = "local-service-steps";

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
    connect(&TemporalSettings::at(address, namespace), "apex-cli").await
}

/// A client as `settings` say: address, namespace, TLS and API key (no retries).
pub async fn connect(settings: &TemporalSettings, identity: &str) -> anyhow::Result<Client> {
    let conn = Connection::connect(connection_options(settings, identity)?)
        .await
        .with_context(|| format!("cannot reach temporal at {}", settings.address))?;
    Ok(Client::new(conn, client_options(&settings.namespace))?)
}

/// The connection `settings` describe. TLS is on for an `https://` address or an API key:
/// the configured CA (or the system's roots), a client certificate when one is set, the
/// configured server name. The files are read here; an unreadable one is an error naming
/// it. The API key is sent as a bearer token and appears in no error.
pub fn connection_options(
    settings: &TemporalSettings,
    identity: &str,
) -> anyhow::Result<ConnectionOptions> {
    let url = url::Url::from_str(&settings.address)
        .with_context(|| format!("temporal address `{}`", settings.address))?;
    let tls = if settings.uses_tls() {
        let material = apex_common::tls::ClientTls::load(&ClientTlsSettings {
            reload_secs: 0,
            ..settings.tls.clone()
        })
        .context("temporal.tls")?
        .material();
        let client = material.identity.clone().map(|(cert, key)| {
            ClientTlsOptions::builder()
                .client_cert(cert)
                .client_private_key(key)
                .build()
        });
        let domain = Some(settings.tls.server_name.trim())
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        Some(
            TlsOptions::builder()
                .maybe_server_root_ca_cert(material.ca.clone())
                .maybe_domain(domain)
                .maybe_client_tls_options(client)
                .build(),
        )
    } else {
        None
    };
    let api_key = Some(settings.api_key.clone()).filter(|k| !k.is_empty());
    Ok(ConnectionOptions::new(url)
        .identity(identity.to_owned())
        .maybe_tls_options(tls)
        .maybe_api_key(api_key)
        .build())
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

#[cfg(test)]
mod connection_tests {
    use super::*;
    use apex_common::tls::local::LocalPki;

    #[test]
    fn plaintext_by_default_tls_and_the_api_key_when_asked() {
        let plain = connection_options(&TemporalSettings::default(), "t").expect("plain");
        assert!(plain.tls_options.is_none() && plain.api_key.is_none());

        let dir = tempfile::tempdir().expect("dir");
        let pki = LocalPki::generate(dir.path()).expect("pki");
        let settings = TemporalSettings {
            address: "https://apex-ns.a1b2c.tmprl.cloud:7233".into(),
            api_key: "tc-secret-0123".into(),
            tls: ClientTlsSettings {
                server_name: "frontend.internal".into(),
                ..pki.client_settings()
            },
            ..TemporalSettings::default()
        };
        let opts = connection_options(&settings, "t").expect("tls");
        let tls = opts.tls_options.as_ref().expect("tls on");
        assert_eq!(
            tls.server_root_ca_cert.as_deref(),
            Some(std::fs::read(pki.ca()).expect("ca").as_slice())
        );
        assert_eq!(tls.domain.as_deref(), Some("frontend.internal"));
        assert!(tls.client_tls_options.is_some(), "mutual TLS");
        assert_eq!(opts.api_key.as_deref(), Some("tc-secret-0123"));
        assert!(!format!("{settings:?}").contains("tc-secret-0123"));

        // The system's roots, no client certificate: Temporal Cloud with an API key.
        let cloud = TemporalSettings {
            address: "https://apex-ns.a1b2c.tmprl.cloud:7233".into(),
            api_key: "tc-secret-0123".into(),
            ..TemporalSettings::default()
        };
        let opts = connection_options(&cloud, "t").expect("cloud");
        let tls = opts.tls_options.as_ref().expect("tls on");
        assert!(tls.server_root_ca_cert.is_none() && tls.client_tls_options.is_none());
    }

    #[test]
    fn an_unreadable_tls_file_or_a_key_over_plaintext_is_refused() {
        let settings = TemporalSettings {
            address: "https://127.0.0.1:7233".into(),
            tls: ClientTlsSettings {
                ca: "/nonexistent/ca.pem".into(),
                ..ClientTlsSettings::default()
            },
            ..TemporalSettings::default()
        };
        let err = format!(
            "{:#}",
            connection_options(&settings, "t").expect_err("missing CA")
        );
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");

        let in_the_clear = TemporalSettings {
            api_key: "k".into(),
            ..TemporalSettings::default()
        };
        let problems = in_the_clear.validate("temporal");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("temporal.api_key needs TLS")),
            "{problems:?}"
        );
    }
}
