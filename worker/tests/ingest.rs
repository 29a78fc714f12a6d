//! Document ingestion end to end: a real Temporal dev server, a real `apex-worker` process,
//! the parser, extractor, embedder (the real model) and writer in this process on
//! ephemeral ports, and the local stack's real PostgreSQL, FalkorDB, vector server and
//! Redis.

mod support;

use std::time::{Duration, Instant};

use apex_proto::writer::v1::{InspectDocumentRequest, InspectDocumentResponse, Store};
use apex_worker::ingest::status::{COMPLETED, FAILED, IngestStatus, PARSED, UNCHANGED};
use apex_worker::ingest::workflow::INVALID_INPUT;
use apex_worker::ingest::{
    DeleteInput, DocumentDeletionWorkflow, IngestInput, IngestionHandle, deletion_workflow_id,
    ingestion_workflow_id, start_ingestion,
};
use futures::TryStreamExt as _;
use support::services::Services;
use support::{DevServer, WorkerProc, record_history, unique_queue};
use temporalio_client::{
    Client, WorkflowDescribeOptions, WorkflowFetchHistoryOptions, WorkflowGetResultOptions,
    WorkflowListOptions, WorkflowQueryOptions, WorkflowStartOptions,
};
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;

type IngestHandle = IngestionHandle;

struct Env {
    server: DevServer,
    worker: Option<WorkerProc>,
    client: Client,
    queue: String,
    services: Services,
    files: tempfile::TempDir,
}

/// Environments start one at a time: a dev server picks its ports by binding and releasing
/// them, so a listener another test opens meanwhile (a service, a proxy, a worker's metrics
/// port) could take one of them.
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn env() -> Env {
    env_with(&[]).await
}

/// An environment whose worker also gets `extra` settings.
async fn env_with(extra: &[(&str, &str)]) -> Env {
    let _one_at_a_time = STARTING.lock().await;
    let server = DevServer::start();
    let client = server.client().await;
    let queue = unique_queue("ingest");
    let services = Services::start().await;
    let vars = services.worker_env();
    let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.extend_from_slice(extra);
    let worker = WorkerProc::spawn_with(&server.address(), &queue, &vars);
    worker.wait_for_line("worker polling", Duration::from_secs(60));
    Env {
        server,
        worker: Some(worker),
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

    /// Stops the embedder; returns where it listened.
    async fn stop_embedder(&mut self) -> std::net::SocketAddr {
        let embedder = self.services.embedder.take().expect("embedder");
        let addr = embedder.addr;
        embedder.stop().await;
        addr
    }

    /// Brings the embedder back where it was.
    async fn restart_embedder(&mut self, addr: std::net::SocketAddr) {
        self.services.embedder =
            Some(Services::embedder(&self.services.blob_url(), Some(addr)).await);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fixture_format_is_ingested_into_every_store() {
    let env = env().await;
    for (name, bytes) in fixtures() {
        let input = env.input(name, &bytes);
        let id = input.resolved_document_id();
        let s = env.ingest(input).await;
        assert_eq!(s.status, COMPLETED, "{name}: {s:?}");
        assert_eq!(s.version, 1, "{name}");
        assert!(s.chunk_count > 0, "{name}: {s:?}");
        assert_eq!(s.vector_count, s.chunk_count, "{name}");
        // The metadata names a customer, so every document has at least that entity.
        assert!(s.entity_count > 0, "{name}: {s:?}");
        let steps: Vec<&str> = s.steps.iter().map(|r| r.step.as_str()).collect();
        for step in ["fetch", "check", "parse", "extract", "embed", "write"] {
            assert!(steps.contains(&step), "{name}: no {step} in {steps:?}");
        }
        assert_stored(&env.inspect(&id).await, &s);
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_document_fails_after_one_parse_attempt_with_the_parsers_reason() {
    let env = env().await;
    let input = env.input("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog");
    let id = input.resolved_document_id();
    let handle = env.start(input).await;
    let err = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect_err("a broken PDF fails");
    let text = apex_worker::error_chain(&err);
    assert!(
        text.contains("parse failed") && text.contains("parser:"),
        "{text}"
    );
    let events: Vec<Attributes> = handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .expect("history")
        .into_iter()
        .filter_map(|e| e.attributes)
        .collect();
    let parse_attempts = scheduled(&events, "parse_document");
    assert_eq!(parse_attempts, 1, "scheduled once");
    record_history(&handle, "ingestion-failed-invalid-document").await;
    let s = status(&handle).await;
    assert_eq!(s.status, FAILED);
    assert!(
        s.error.as_deref().is_some_and(|e| e.contains("parser:")),
        "{s:?}"
    );
    let r = env.inspect(&id).await;
    assert!(
        r.stores.iter().all(|v| !v.present),
        "nothing written: {r:?}"
    );

    // Bad workflow input is refused at once, naming what is missing.
    let mut missing = env.input("x.txt", b"x");
    missing.location.clear();
    let err = env
        .start(missing)
        .await
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect_err("no location");
    let text = apex_worker::error_chain(&err);
    assert!(text.contains("location is required"), "{text}");
    assert!(
        text.contains(INVALID_INPUT) || text.contains("location"),
        "{text}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reingesting_unchanged_content_changes_nothing_and_changed_content_is_version_2() {
    let env = env().await;
    let first = env.input("note.txt", TEXT.as_bytes());
    let id = first.resolved_document_id();
    let handle = env.start(first.clone()).await;
    let v1 = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("v1");
    record_history(&handle, "ingestion-completed").await;
    assert_eq!((v1.status.as_str(), v1.version), (COMPLETED, 1));
    let before = env.inspect(&id).await;

    let handle = env.start(first.clone()).await;
    let again = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("unchanged");
    record_history(&handle, "ingestion-unchanged").await;
    assert_eq!((again.status.as_str(), again.version), (UNCHANGED, 1));
    let steps: Vec<&str> = again.steps.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(
        steps,
        ["fetch", "check"],
        "no service beyond the check was called"
    );
    assert_eq!(before, env.inspect(&id).await, "no store write");

    // New content at the same location: the next version replaces the first everywhere.
    std::fs::write(
        &first.location,
        "A different memo. Invoice INV-2026-0042 from Estes Express Lines, due 2026-04-01.",
    )
    .expect("rewrite");
    let v2 = env.ingest(first).await;
    assert_eq!((v2.status.as_str(), v2.version), (COMPLETED, 2));
    let r = env.inspect(&id).await;
    assert_stored(&r, &v2);
    assert_eq!(
        view(&r, Store::Vectors).version,
        2,
        "no point of version 1 is left"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_waits_for_a_stopped_embedder_and_completes_when_it_is_back() {
    let mut env = env().await;
    let addr = env.stop_embedder().await;
    let input = env.input("note.txt", TEXT.as_bytes());
    let id = input.resolved_document_id();
    let handle = env.start(input).await;
    // Parsing is done and the embedding is being retried: the status says so, and the
    // server shows the embedding activity past its first attempt.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&handle).await;
        let retrying = handle
            .describe(WorkflowDescribeOptions::default())
            .await
            .expect("describe")
            .raw()
            .pending_activities
            .iter()
            .any(|p| {
                p.attempt > 1
                    && p.activity_type
                        .as_ref()
                        .is_some_and(|t| t.name.ends_with("generate_embeddings"))
            });
        if retrying {
            assert_eq!(s.status, PARSED, "{s:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the embedding was never retried: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.restart_embedder(addr).await;
    let s = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("completes once the embedder is back");
    assert_eq!(s.status, COMPLETED);
    record_history(&handle, "ingestion-embedder-retried").await;
    let embed = s
        .steps
        .iter()
        .find(|r| r.step == "embed")
        .expect("embed step");
    assert!(embed.attempts > 1, "the embedding was retried: {embed:?}");
    assert_stored(&env.inspect(&id).await, &s);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_removes_the_document_and_search_attributes_find_ingestions() {
    let env = env().await;
    let input = env.input("note.txt", TEXT.as_bytes());
    let id = input.resolved_document_id();
    let s = env.ingest(input).await;
    assert_eq!(s.status, COMPLETED);

    // Visibility is eventually consistent: poll until the completed ingestion is listed.
    // `Status` needs backticks: the server's query parser takes a bare `Status` for its own
    // execution-status column and answers "invalid search attribute: status".
    let query = format!(r#"Source="upload" AND `Status`="completed" AND DocumentId="{id}""#);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found: Vec<temporalio_client::WorkflowExecution> = env
            .client
            .list_workflows(query.as_str(), WorkflowListOptions::default())
            .try_collect()
            .await
            .expect("list");
        if found.iter().any(|w| w.id() == ingestion_workflow_id(&id)) {
            break;
        }
        assert!(Instant::now() < deadline, "never listed by {query}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let deletion = env
        .client
        .start_workflow(
            DocumentDeletionWorkflow::run,
            DeleteInput {
                document_id: id.clone(),
            },
            WorkflowStartOptions::new(env.queue.as_str(), deletion_workflow_id(&id)).build(),
        )
        .await
        .expect("start deletion");
    let deleted = deletion
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("deleted");
    record_history(&deletion, "deletion").await;
    assert!(deleted.existed);
    let r = env.inspect(&id).await;
    assert!(r.stores.iter().all(|v| !v.present), "{r:?}");
    assert!(r.consistent);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failing_in_the_writer_fails_the_workflow_naming_it_and_a_rerun_succeeds() {
    let env = env().await;
    let mut input = env.input("note.txt", TEXT.as_bytes());
    input.max_write_attempts = 2;
    let id = input.resolved_document_id();
    env.services.graph_proxy.refuse();
    let err = env.ingest_err(input.clone()).await;
    assert!(
        err.contains("write failed") && err.contains("store graph failed"),
        "{err}"
    );
    let r = env.inspect(&id).await;
    assert!(
        r.stores.iter().all(|v| !v.present),
        "compensated everywhere: {r:?}"
    );
    env.services.graph_proxy.restore();
    let s = env.ingest(input).await;
    assert_eq!((s.status.as_str(), s.version), (COMPLETED, 1));
    assert_stored(&env.inspect(&id).await, &s);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_while_one_runs_attaches_to_it() {
    let mut env = env().await;
    // Hold the run at the embedding step so both starts meet a running ingestion.
    let addr = env.stop_embedder().await;
    let input = env.input("note.txt", TEXT.as_bytes());
    let first = env.start(input.clone()).await;
    let second = env.start(input).await;
    assert_eq!(
        first.run_id(),
        second.run_id(),
        "attached, not started again"
    );
    env.restart_embedder(addr).await;
    let s = second
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("completes");
    assert_eq!(s.status, COMPLETED);
    env.stop().await;
}

/// The worker's `apex_ingest_warnings_total` for `kind`, from its `/metrics`.
async fn warnings_counted(env: &Env, kind: &str) -> u64 {
    let port = env.worker.as_ref().expect("worker").metrics_port;
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    body.lines()
        .filter(|l| {
            l.starts_with("apex_ingest_warnings_total{") && l.contains(&format!("kind=\"{kind}\""))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .map(|v| v as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_outcomes_complete_with_warnings_and_are_counted() {
    let env = env().await;
    let mut plain = env.input(
        "plain.txt",
        b"nothing here but plain lower case words about the weather and a walk",
    );
    plain.metadata.clear();
    let s = env.ingest(plain).await;
    assert_eq!(s.status, COMPLETED, "{s:?}");
    assert_eq!(s.entity_count, 0, "{s:?}");
    assert!(
        s.warnings.iter().any(|w| w.contains("no entities")),
        "{s:?}"
    );
    assert_eq!(warnings_counted(&env, "no_entities").await, 1);

    let mut empty = env.input("empty.json", b"{}");
    empty.metadata.clear();
    let s = env.ingest(empty).await;
    assert_eq!(s.status, COMPLETED, "{s:?}");
    assert_eq!(s.chunk_count, 0, "{s:?}");
    assert!(s.warnings.iter().any(|w| w.contains("no chunks")), "{s:?}");
    assert_eq!(warnings_counted(&env, "no_chunks").await, 1);
    env.stop().await;
}

/// A one-route HTTP/1.1 server on 127.0.0.1: `GET /doc.txt` answers `body`, anything else
/// 404. Serves until the test ends.
async fn http_server(body: &'static [u8]) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let found = request.starts_with(b"GET /doc.txt ");
                let (status, body): (&str, &[u8]) = if found {
                    ("200 OK", body)
                } else {
                    ("404 Not Found", b"no such document")
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(body).await;
            });
        }
    });
    addr
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_fetched_over_http_and_oversized_or_missing_ones_fail_at_once() {
    let env = env_with(&[("APEX_WORKER__INGEST__FETCH_MAX_BYTES", "2000")]).await;
    let server = http_server(TEXT.as_bytes()).await;

    let mut input = env.input("unused.txt", b"");
    input.location = format!("http://{server}/doc.txt");
    let id = input.resolved_document_id();
    let s = env.ingest(input).await;
    assert_eq!(s.status, COMPLETED, "{s:?}");
    assert_stored(&env.inspect(&id).await, &s);

    for (location, reason) in [
        (format!("http://{server}/missing.txt"), "HTTP 404"),
        (
            env.input("big.txt", &[b'a'; 5000]).location,
            "over the fetch limit of 2000 bytes",
        ),
        (
            env.files.path().join("absent.txt").display().to_string(),
            "not found",
        ),
    ] {
        let mut input = env.input("x.txt", b"x");
        input.location = location.clone();
        let handle = env.start(input).await;
        let err = handle
            .get_result(WorkflowGetResultOptions::default())
            .await
            .expect_err("the fetch fails");
        let text = apex_worker::error_chain(&err);
        assert!(
            text.contains("fetch failed") && text.contains(reason),
            "{location}: {text}"
        );
        let events = handle
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .into_events()
            .await
            .expect("history")
            .into_iter()
            .filter_map(|e| e.attributes)
            .collect::<Vec<_>>();
        let started = events
            .iter()
            .filter(
                |a| matches!(a, Attributes::ActivityTaskStartedEventAttributes(s) if s.attempt > 1),
            )
            .count();
        assert_eq!(started, 0, "{location}: not retried");
        assert_eq!(
            scheduled(&events, "parse_document"),
            0,
            "{location}: nothing parsed"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_parse_heartbeats_while_it_waits_for_the_parser() {
    // A parser that accepts connections and never answers: the parse call waits, and the
    // activity heartbeats while it does (at once, then every third of its 30 s heartbeat
    // timeout; the SDK forwards them to the server at most every 24 s), so the server sees
    // a live activity rather than waiting out the 10 min start-to-close timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = format!("http://{}", silent.local_addr().expect("addr"));
    let env = env_with(&[("APEX_WORKER__INGEST__PARSER_ADDR", silent_addr.as_str())]).await;
    let handle = env.start(env.input("note.txt", TEXT.as_bytes())).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let description = handle
            .describe(WorkflowDescribeOptions::default())
            .await
            .expect("describe");
        let heartbeat = description.raw().pending_activities.iter().find_map(|p| {
            p.activity_type
                .as_ref()
                .filter(|t| t.name.ends_with("parse_document"))
                .and(p.last_heartbeat_time.as_ref())
        });
        if heartbeat.is_some() {
            assert_eq!(status(&handle).await.status, "fetched");
            break;
        }
        assert!(Instant::now() < deadline, "the parse never heartbeated");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    handle
        .terminate(temporalio_client::WorkflowTerminateOptions::default())
        .await
        .expect("terminate");
    drop(silent);
    env.stop().await;
}
