//! The gateway over real HTTP against the running mesh (`apex up`: the four services, the
//! worker, Temporal and the stores). Each test runs its own gateway in-process on a free
//! port, with its own rollout key and its own source, so tests do not see each other.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use apex_common::Shutdown;
use apex_e2e::fault::Proxy;
use apex_e2e::{Names, Stack};
use apex_gateway::GatewaySettings;
use apex_gateway::auth::Scope;
use apex_gateway::auth::keys::KeyStore;
use apex_gateway::rollout::bucket;
use apex_gateway::shared::{Claim, Holder, Shared};
use apex_proto::writer::v1::InspectDocumentRequest;
use apex_proto::writer::v1::writer_service_client::WriterServiceClient;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

mod auth;
mod fetches;
mod live;
mod paths;
mod refusals;
mod uploads;
mod webhooks;

const NOTE: &str = "Harbor Point Beverages booked load L-558201 with Keystone Interstate \
Freight from Toledo, Ohio to Nashville, Tennessee on March 9, 2026. The linehaul is USD 2,450.00 \
and the consignee is Great Lakes Industrial Supply.";

struct Gateway {
    url: String,
    rollout_key: String,
    http: reqwest::Client,
    shared: Shared,
    source: String,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    /// A gateway in this process in front of the stack's services, Temporal and Redis.
    async fn start(stack: &Stack, configure: impl FnOnce(&mut GatewaySettings)) -> Self {
        let names = Names::new();
        let mut settings = GatewaySettings {
            rollout_key: names.key("apex:test:rollout"),
            redis_url: stack.redis_url(),
            temporal_timeout_ms: 1_500,
            metrics_addr: String::new(),
            ..Default::default()
        };
        settings.temporal.address = stack.temporal_address();
        let service = |port: u16| format!("http://127.0.0.1:{port}");
        let ports = &stack.settings;
        settings.ingest.parser_addr = service(ports.parser_port);
        settings.ingest.extractor_addr = service(ports.extractor_port);
        settings.ingest.embedder_addr = service(ports.embedder_port);
        settings.ingest.writer_addr = service(ports.writer_port);
        settings.ingest.blob_url = stack.blob_dir().display().to_string();
        settings.auth.database_url = stack.postgres_url();
        // Only the webhook tests' gateways start stored webhook events: another test's
        // gateway (a dead service, a tiny limit) must not take them.
        settings.webhooks.dispatch = false;
        configure(&mut settings);
        // Every request of the test carries an admin key of its own.
        let keys = KeyStore::connect(&stack.postgres_url())
            .await
            .expect("the stack's postgres (apex up)");
        let key = keys
            .create("e2e-gateway", &[Scope::Admin], None)
            .await
            .expect("an admin key")
            .key;
        let shared = Shared::connect(
            &settings.redis_url,
            &settings.rollout_key,
            Duration::from_secs(600),
        )
        .await
        .expect("redis of the local stack (apex up)");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let rollout_key = settings.rollout_key.clone();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(apex_gateway::run(settings, listener, shutdown.clone()));
        let gateway = Self {
            url,
            rollout_key,
            http: reqwest::Client::builder()
                .default_headers(apex_common::api_key::headers(&key))
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            shared,
            source: names.source("test"),
            shutdown,
            task,
        };
        // The listener is bound: this waits in its backlog until the gateway serves.
        let live = gateway.get("/livez").await;
        assert_eq!(live.status(), StatusCode::OK);
        gateway
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.task
            .await
            .expect("join")
            .expect("the gateway ran cleanly");
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET")
    }

    fn form(&self, name: &str, mime: &str, bytes: Vec<u8>) -> Form {
        Form::new()
            .part(
                "file",
                Part::bytes(bytes)
                    .file_name(name.to_owned())
                    .mime_str(mime)
                    .expect("mime"),
            )
            .text("source", self.source.clone())
    }

    async fn post(&self, form: Form) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/documents", self.url))
            .multipart(form)
            .send()
            .await
            .expect("POST")
    }

    /// Uploads and expects 202; returns the answer.
    async fn accept(&self, form: Form) -> Value {
        let response = self.post(form).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body
    }

    /// Polls the status until the ingestion has ended (at most two minutes).
    async fn wait_done(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let response = self.get(&format!("/v1/documents/{id}")).await;
            if response.status() == StatusCode::OK {
                let body: Value = response.json().await.expect("json");
                if matches!(
                    body["status"].as_str(),
                    Some("completed" | "unchanged" | "failed")
                ) {
                    return body;
                }
                assert!(Instant::now() < deadline, "not done in time: {body}");
            } else {
                assert!(
                    Instant::now() < deadline,
                    "no status in time: {}",
                    response.status()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn set_rollout(&self, percent: u8) {
        self.shared.set_rollout(percent).await.expect("set rollout");
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.expect("metrics");
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// The (type, key) of every entity PostgreSQL links to the document.
pub(crate) async fn entities(stack: &Stack, document_id: &str) -> Vec<(String, String)> {
    let pool = sqlx::PgPool::connect(&stack.postgres_url())
        .await
        .expect("the stack's postgres");
    let id = uuid::Uuid::parse_str(document_id).expect("a document id");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT e.entity_type, e.canonical_key FROM document_entities d \
         JOIN entities e USING (entity_id) WHERE d.document_id = $1",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .expect("entities");
    pool.close().await;
    rows
}

async fn writer(stack: &Stack) -> WriterServiceClient<tonic::transport::Channel> {
    WriterServiceClient::connect(stack.writer_url())
        .await
        .expect("the stack's writer (apex up)")
}

fn retry_after(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// A server that accepts connections and never answers (a hung service).
async fn silent_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    (addr, held)
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A worker on a task queue of its own, in front of the stack's services, whose fetches
/// may reach `allow` (`ingest.fetch_allow`). Returns it and its queue.
fn allowing_worker(stack: &apex_e2e::Stack, allow: &str) -> (crate::worker::WorkerProc, String) {
    crate::worker::mesh_worker(
        stack,
        "fetching",
        &[("APEX_WORKER__INGEST__FETCH_ALLOW", allow)],
    )
}

/// Serves `body` as `text/plain` to every request on a free port; returns its URL.
async fn serve_once_per_request(body: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/documents/note.txt",
        listener.local_addr().expect("addr")
    );
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, task)
}
