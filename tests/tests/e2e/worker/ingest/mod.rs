//! Document ingestion end to end: a real Temporal dev server, a real `apex-worker` process,
//! the parser, extractor, embedder (the real model) and writer in this process on
//! ephemeral ports, and the local stack's real PostgreSQL, FalkorDB, vector server and
//! Redis.

use std::time::{Duration, Instant, SystemTime};

use super::services::Services;
use super::{DevServer, WorkerProc, history, record_history, unique_queue};
use apex_common::tls::local::LocalPki;
use apex_e2e::Stack;
use apex_proto::writer::v1::{InspectDocumentRequest, InspectDocumentResponse, Store};
use apex_worker::ingest::status::{COMPLETED, FAILED, IngestStatus, PARSED, UNCHANGED};
use apex_worker::ingest::workflow::INVALID_INPUT;
use apex_worker::ingest::{
    DeleteInput, DocumentDeletionWorkflow, IngestInput, IngestionHandle, deletion_workflow_id,
    ingestion_workflow_id, start_ingestion,
};
use futures::TryStreamExt as _;
use temporalio_client::{
    Client, WorkflowDescribeOptions, WorkflowFetchHistoryOptions, WorkflowGetResultOptions,
    WorkflowListOptions, WorkflowQueryOptions, WorkflowStartOptions,
};
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;

mod failures;
mod fetches;
mod light;
mod outcomes;
mod replay;
mod tls;

type IngestHandle = IngestionHandle;

struct Env {
    server: DevServer,
    worker: Option<WorkerProc>,
    /// What the worker was started with (for a second worker like it).
    worker_env: Vec<(String, String)>,
    client: Client,
    queue: String,
    services: Services,
    files: tempfile::TempDir,
}

/// Environments start one at a time: a dev server picks its ports by binding and releasing
/// them, so a listener another test opens meanwhile (a service, a proxy, a worker's metrics
/// port) could take one of them.
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn env(stack: &Stack) -> Env {
    env_with(stack, &[]).await
}

/// An environment whose worker also gets `extra` settings.
async fn env_with(stack: &Stack, extra: &[(&str, &str)]) -> Env {
    env_of(stack, extra, None).await
}

/// An environment whose services demand mutual TLS with `tls`'s certificates when given.
async fn env_of(stack: &Stack, extra: &[(&str, &str)], tls: Option<LocalPki>) -> Env {
    let _one_at_a_time = STARTING.lock().await;
    let server = DevServer::start();
    let client = server.client().await;
    let queue = unique_queue("ingest");
    let services = Services::start_with(stack, tls).await;
    let vars = services.worker_env();
    let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.extend_from_slice(extra);
    let worker = WorkerProc::spawn_with(&server.address(), &queue, &vars);
    worker.wait_for_line("worker polling", Duration::from_secs(60));
    let worker_env = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Env {
        server,
        worker: Some(worker),
        worker_env,
        client,
        queue,
        services,
        files: tempfile::tempdir().expect("files"),
    }
}

impl Env {
    async fn stop(mut self) {
        drop(self.worker.take());
        self.services.stop().await;
        drop(self.server);
    }

    /// Writes `bytes` to a file and returns an ingestion input for it.
    fn input(&self, name: &str, bytes: &[u8]) -> IngestInput {
        let path = self.files.path().join(name);
        std::fs::write(&path, bytes).expect("write fixture");
        IngestInput {
            source: "upload".into(),
            external_id: format!("{name}-{}", uuid::Uuid::new_v4().simple()),
            priority: 5,
            location: path.display().to_string(),
            file_name: name.into(),
            metadata: [("customer".to_owned(), "Lone Star Grocers".to_owned())].into(),
            ..Default::default()
        }
    }

    async fn start(&self, input: IngestInput) -> IngestHandle {
        start_ingestion(&self.client, &self.queue, input)
            .await
            .expect("start ingestion")
    }

    async fn ingest(&self, input: IngestInput) -> IngestStatus {
        self.start(input)
            .await
            .get_result(WorkflowGetResultOptions::default())
            .await
            .expect("ingestion result")
    }

    /// Stops the worker (SIGTERM: it drains and flushes its spans) and starts another
    /// like it on the same task queue, which has none of its cached workflows.
    fn replace_worker(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.sigterm();
            w.wait_exit(Duration::from_secs(60));
        }
        let vars: Vec<(&str, &str)> = self
            .worker_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let worker = WorkerProc::spawn_with(&self.server.address(), &self.queue, &vars);
        worker.wait_for_line("worker polling", Duration::from_secs(60));
        self.worker = Some(worker);
    }

    /// Stops the embedder; returns where it listened.
    async fn stop_embedder(&mut self) -> std::net::SocketAddr {
        let embedder = self.services.embedder.take().expect("embedder");
        let addr = embedder.addr;
        embedder.stop().await;
        addr
    }

    /// Brings the embedder back where it was.
    async fn restart_embedder(&mut self, addr: std::net::SocketAddr) {
        self.services.embedder = Some(
            Services::embedder(
                &self.services.blob_url(),
                Some(addr),
                self.services.tls.as_ref(),
            )
            .await,
        );
    }

    /// Runs an ingestion that must fail; returns the whole error chain.
    async fn ingest_err(&self, input: IngestInput) -> String {
        let err = self
            .start(input)
            .await
            .get_result(WorkflowGetResultOptions::default())
            .await
            .expect_err("the ingestion fails");
        apex_worker::error_chain(&err)
    }

    async fn inspect(&self, document_id: &str) -> InspectDocumentResponse {
        self.services
            .writer_client()
            .await
            .inspect_document(InspectDocumentRequest {
                document_id: document_id.to_owned(),
            })
            .await
            .expect("inspect")
            .into_inner()
    }
}

async fn status(handle: &IngestHandle) -> IngestStatus {
    handle
        .query(
            apex_ingestion::workflows::IngestionStatus,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .expect("query")
}

fn view(r: &InspectDocumentResponse, store: Store) -> apex_proto::writer::v1::StoreView {
    r.stores
        .iter()
        .find(|v| v.store == store as i32)
        .cloned()
        .expect("store view")
}

/// The stores hold exactly what the workflow reports.
fn assert_stored(r: &InspectDocumentResponse, s: &IngestStatus) {
    assert!(r.consistent, "{r:?}");
    assert_eq!(r.version, s.version);
    assert_eq!(r.content_sha256, s.content_sha256);
    let pg = view(r, Store::Postgres);
    assert_eq!(pg.chunk_count, s.chunk_count);
    assert_eq!(pg.entity_count, s.entity_count);
    assert_eq!(view(r, Store::Vectors).vector_count, s.vector_count);
    assert_eq!(view(r, Store::Graph).chunk_count, s.chunk_count);
}

const TEXT: &str = "Shipment SH-1001 left Laredo, TX on 2026-03-02. PRO# 48213377 \
carried by Old Dominion Freight Line for Lone Star Grocers LLC, delivered in Dallas, TX \
on 2026-03-05. Questions: dispatch@lonestargrocers.com or +1 214 555 0199.";

/// One of the parser's generated fixtures (PDF, DOCX, XLSX, email with attachments).
fn corpus(name: &str) -> Vec<u8> {
    apex_parser::corpus::samples()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b)
        .expect("corpus sample")
}

fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("note.txt", TEXT.as_bytes().to_vec()),
        (
            "loads.csv",
            b"load_id,origin,destination,carrier,amount\nL-100,Laredo TX,Dallas TX,ODFL,1250.00\nL-101,Memphis TN,Atlanta GA,Estes Express Lines,980.50\n".to_vec(),
        ),
        (
            "page.html",
            format!("<html><head><title>Delivery</title></head><body><h1>Delivery report</h1><p>{TEXT}</p></body></html>").into_bytes(),
        ),
        (
            "readme.md",
            format!("# Delivery\n\n{TEXT}\n\n## Notes\n\n- signed by Maria Lopez\n").into_bytes(),
        ),
        (
            "event.json",
            br#"{"shipment_id": "SH-2002", "carrier_scac": "ODFL", "status": "delivered", "city": "Dallas", "state": "TX"}"#.to_vec(),
        ),
        ("sample.pdf", corpus("sample.pdf")),
        ("sample.docx", corpus("sample.docx")),
        ("sample.xlsx", corpus("sample.xlsx")),
        ("sample.eml", corpus("sample.eml")),
        (
            "status.edi",
            b"ISA*00*          *00*          *02*ODFL           *ZZ*LONESTAR       *260305*1200*U*00401*000000001*0*P*>~GS*QM*ODFL*LONESTAR*20260305*1200*1*X*004010~ST*214*0001~B10*48213377*SH-1001*ODFL~L11*PO-7781*PO~N1*SH*LONE STAR GROCERS LLC~N4*DALLAS*TX*75201*US~LX*1~AT7*D1*NS***20260305*1130~MS1*DALLAS*TX*US~SE*9*0001~GE*1*1~IEA*1*000000001~".to_vec(),
        ),
    ]
}

fn scheduled(events: &[Attributes], activity: &str) -> usize {
    events
        .iter()
        .filter(|a| {
            matches!(a, Attributes::ActivityTaskScheduledEventAttributes(s)
                if s.activity_type.as_ref().is_some_and(|t| t.name.ends_with(activity)))
        })
        .count()
}
