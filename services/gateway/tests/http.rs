//! The gateway over real HTTP against the running mesh (`apex up`: the four services, the
//! worker, Temporal and the stores). Each test runs its own gateway in-process on a free
//! port, with its own rollout key and its own source, so tests do not see each other.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use apex_common::Shutdown;
use apex_common::fault::Proxy;
use apex_gateway::GatewaySettings;
use apex_gateway::rollout::bucket;
use apex_gateway::shared::{Claim, Holder, Shared};
use apex_proto::writer::v1::InspectDocumentRequest;
use apex_proto::writer::v1::writer_service_client::WriterServiceClient;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

const NOTE: &str = "Harbor Point Beverages booked load L-558201 with Keystone Interstate \
Freight from Toledo, Ohio to Nashville, Tennessee on March 9, 2026. The linehaul is USD 2,450.00 \
and the consignee is Great Lakes Industrial Supply.";

/// The local stack's state directory (as `apex up` uses it), whose blob store the
/// services read.
fn stack_blobs() -> PathBuf {
    let state = std::env::var("APEX_STACK__STATE_DIR").map_or_else(
        |_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .find(|d| d.join("deploy/local/bootstrap").is_file())
                .expect("checkout root")
                .join(".apex")
        },
        PathBuf::from,
    );
    state.join("blobs")
}

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
    async fn start(configure: impl FnOnce(&mut GatewaySettings)) -> Self {
        let mut settings = GatewaySettings {
            rollout_key: format!("apex:test:rollout:{}", uuid::Uuid::new_v4()),
            temporal_timeout_ms: 1_500,
            metrics_addr: String::new(),
            ..Default::default()
        };
        settings.ingest.blob_url = stack_blobs().display().to_string();
        configure(&mut settings);
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
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            shared,
            source: format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
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

async fn writer() -> WriterServiceClient<tonic::transport::Channel> {
    WriterServiceClient::connect(GatewaySettings::default().ingest.writer_addr)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_completes_on_temporal_and_is_searchable() {
    let g = Gateway::start(|_| {}).await;
    g.set_rollout(100).await;
    let accepted = g
        .accept(g.form("load-note.txt", "text/plain", NOTE.as_bytes().to_vec()))
        .await;
    let id = accepted["document_id"].as_str().expect("id").to_owned();
    assert_eq!(accepted["path"], "temporal");
    assert_eq!(accepted["version"], 1);
    assert_eq!(accepted["status_url"], format!("/v1/documents/{id}"));
    assert!(accepted["fallback"].is_null());
    let done = g.wait_done(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["path"], "temporal");
    assert!(done["chunk_count"].as_u64() >= Some(1), "{done}");
    assert!(done["entity_count"].as_u64() >= Some(3), "{done}");

    let found: Value = g
        .get(&format!(
            "/v1/search?q=load+from+Toledo+to+Nashville&limit=3&source={}",
            g.source
        ))
        .await
        .json()
        .await
        .expect("json");
    let hit = &found["hits"][0];
    assert_eq!(hit["document_id"], id.as_str(), "{found}");
    assert!(hit["text"].as_str().is_some_and(|t| t.contains("Toledo")));
    assert!(hit["score"].as_f64() > Some(0.2), "{hit}");
    let names: Vec<&str> = hit["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"Toledo"), "{names:?}");

    // The same bytes again: accepted as unchanged at version 1.
    let again = g
        .accept(g.form("load-note.txt", "text/plain", NOTE.as_bytes().to_vec()))
        .await;
    assert_eq!(again["version"], 1);
    assert_eq!(g.wait_done(&id).await["status"], "unchanged");

    // Deleted: gone from search and from the stores.
    let deleted = g
        .http
        .delete(format!("{}/v1/documents/{id}", g.url))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(deleted.status(), StatusCode::OK);
    let deleted: Value = deleted.json().await.expect("json");
    assert_eq!(deleted["deleted"], true, "{deleted}");
    let r = writer()
        .await
        .inspect_document(InspectDocumentRequest {
            document_id: id.clone(),
        })
        .await
        .expect("inspect")
        .into_inner();
    assert_eq!(r.version, 0);
    let status: Value = g
        .get(&format!("/v1/documents/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(status["status"], "deleted", "{status}");
    let again = g
        .http
        .delete(format!("{}/v1/documents/{id}", g.url))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    // A document nobody ingested is not found.
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        g.get(&format!("/v1/documents/{unknown}")).await.status(),
        StatusCode::NOT_FOUND
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_get_a_clear_4xx_and_nothing_is_written() {
    let blobs = tempfile::tempdir().expect("dir");
    let g = Gateway::start(|s| {
        s.max_upload_bytes = 1024;
        s.ingest.blob_url = blobs.path().display().to_string();
    })
    .await;
    let id = uuid::Uuid::new_v4().to_string();
    let with_id = |form: Form| form.text("document_id", id.clone());
    let cases: Vec<(Form, StatusCode, &str, &str)> = vec![
        (
            with_id(g.form("empty.txt", "text/plain", Vec::new())),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "empty",
        ),
        (
            with_id(g.form("big.txt", "text/plain", vec![b'a'; 4096])),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "1024 bytes",
        ),
        (
            with_id(g.form("photo.png", "image/png", vec![0x89, b'P', b'N', b'G'])),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            "photo.png",
        ),
        (
            with_id(Form::new().text("source", "x")),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "no `file` field",
        ),
        (
            with_id(g.form("a.txt", "text/plain", b"text".to_vec())).text("metadata", "[1,2]"),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "metadata must be a JSON object",
        ),
        (
            with_id(g.form("a.txt", "text/plain", b"text".to_vec())).text("priority", "high"),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "priority must be an integer",
        ),
        (
            g.form("a.txt", "text/plain", b"text".to_vec())
                .text("document_id", "not-a-uuid"),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "not a UUID",
        ),
    ];
    for (form, status, code, says) in cases {
        let response = g.post(form).await;
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.expect("json error body");
        assert_eq!(error_code(&body), code, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message}");
        assert!(body["error"]["details"].is_object(), "{body}");
    }
    // Neither multipart nor JSON, and JSON without a location.
    let plain = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("POST");
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let json = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .json(&serde_json::json!({"source": "x", "document_id": id}))
        .send()
        .await
        .expect("POST");
    assert_eq!(json.status(), StatusCode::BAD_REQUEST);
    let body: Value = json.json().await.expect("json");
    assert_eq!(body["error"]["details"]["field"], "url");
    let unknown_field = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .json(&serde_json::json!({"url": "http://127.0.0.1:1/x", "colour": "red"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(unknown_field.status(), StatusCode::BAD_REQUEST);
    for (key, says) in [
        ("file:///etc/passwd", "allow_local_files is off"),
        ("/etc/passwd", "allow_local_files is off"),
        ("ftp://example.com/a.pdf", "not an object-store key"),
    ] {
        let response = g
            .http
            .post(format!("{}/v1/documents", g.url))
            .json(&serde_json::json!({"key": key, "document_id": id}))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{key}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["details"]["field"], "key", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{body}"
        );
    }

    // Nothing was stored, routed or written.
    let stored: Vec<_> = walk(blobs.path());
    assert!(
        stored.is_empty(),
        "blobs written for refused uploads: {stored:?}"
    );
    assert_eq!(g.metric("apex_gateway_rollout_decisions_total").await, 0.0);
    assert!(g.shared.record(&id).await.expect("redis").is_none());
    assert_eq!(
        g.get(&format!("/v1/documents/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    // Bad reads are refused too.
    for (path, field) in [
        ("/v1/documents/123", "id"),
        ("/v1/search", "q"),
        ("/v1/search?q=x&limit=0", "limit"),
        ("/v1/search?q=x&limit=1000", "limit"),
    ] {
        let response = g.get(path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["details"]["field"], field, "{path}: {body}");
    }
    assert_eq!(g.get("/v2/nothing").await.status(), StatusCode::NOT_FOUND);
    g.stop().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_in_flight_uploads_get_429_with_retry_after() {
    // An embedder that accepts connections and never answers: the first ingestion stays in
    // flight on the legacy path until the gateway stops.
    let (silent_addr, held) = silent_server().await;
    let g = Gateway::start(|s| {
        s.max_in_flight = 1;
        s.retry_after_secs = 3;
        s.ingest.embedder_addr = format!("http://{silent_addr}");
        s.shutdown_grace_secs = 1;
    })
    .await;
    g.set_rollout(0).await;
    let first = g
        .accept(g.form("first.txt", "text/plain", NOTE.as_bytes().to_vec()))
        .await;
    assert_eq!(first["path"], "legacy");
    let second = g
        .post(g.form("second.txt", "text/plain", b"another note".to_vec()))
        .await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&second), Some("3"));
    let body: Value = second.json().await.expect("json");
    assert_eq!(error_code(&body), "resource_exhausted");
    assert_eq!(body["error"]["details"]["max_in_flight"], 1);
    assert_eq!(g.metric("apex_gateway_rejected_busy_total").await, 1.0);
    assert_eq!(g.metric("apex_gateway_in_flight").await, 1.0);
    // The first is still being worked on (waiting for the embedder), not lost.
    let status: Value = g
        .get(&format!(
            "/v1/documents/{}",
            first["document_id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(status["path"], "legacy");
    assert_ne!(status["status"], "failed", "{status}");
    // Stopping the gateway waits out its grace, then records the ingestion it had to stop
    // as failed, with the reason, instead of leaving it "in progress" for ever.
    let shared = g.shared.clone();
    let id = first["document_id"].as_str().expect("id").to_owned();
    g.stop().await;
    let record = shared.record(&id).await.expect("redis").expect("record");
    let stopped = record.status.expect("status");
    assert_eq!(stopped.status, "failed");
    assert!(
        stopped.error.as_deref().is_some_and(
            |e| e.contains("the gateway stopped before this legacy ingestion finished")
        ),
        "{stopped:?}"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_routes_by_percentage_deterministically_and_changes_at_runtime() {
    let g = Gateway::start(|_| {}).await;
    // Ids on both sides of 50: the rollout keys on the document id alone.
    let mut below = Vec::new();
    let mut above = Vec::new();
    while below.len() < 2 || above.len() < 2 {
        let id = uuid::Uuid::new_v4().to_string();
        if bucket(&id) < 50 {
            below.push(id);
        } else {
            above.push(id);
        }
    }
    let upload = |id: &str, n: usize| {
        g.form(
            &format!("r{n}.txt"),
            "text/plain",
            format!("rollout note {n} {id}").into_bytes(),
        )
        .text("document_id", id.to_owned())
    };
    let mut ids = Vec::new();
    for (percent, id, expected) in [
        (0u8, &below[0], "legacy"),
        (0, &above[0], "legacy"),
        (100, &below[0], "temporal"),
        (100, &above[0], "temporal"),
        (50, &below[1], "temporal"),
        (50, &above[1], "legacy"),
        // Same document, same percentage, same path (determinism).
        (50, &below[1], "temporal"),
        (50, &above[1], "legacy"),
    ] {
        g.set_rollout(percent).await;
        let rollout: Value = g.get("/v1/rollout").await.json().await.expect("json");
        assert_eq!(rollout["temporal_percent"], percent);
        let n = ids.len();
        let accepted = g.accept(upload(id, n)).await;
        assert_eq!(
            accepted["path"],
            expected,
            "{percent}% {id} (bucket {})",
            bucket(id)
        );
        // Let each ingestion end before the next upload of the same document.
        let done = g.wait_done(id).await;
        assert_ne!(done["status"], "failed", "{done}");
        ids.push(id.clone());
    }
    assert_eq!(
        g.metric("apex_gateway_rollout_decisions_total{path=\"temporal\"}")
            .await,
        4.0
    );
    assert_eq!(
        g.metric("apex_gateway_rollout_decisions_total{path=\"legacy\"}")
            .await,
        4.0
    );
    // The rollout view compares the paths' outcomes (legacy ones are counted before their
    // final status is visible; the Temporal ones when this gateway sees the workflow close).
    let rollout: Value = g.get("/v1/rollout").await.json().await.expect("json");
    assert_eq!(rollout["decisions"]["legacy"], 4, "{rollout}");
    assert_eq!(rollout["outcomes"]["legacy"]["completed"], 4, "{rollout}");
    assert_eq!(rollout["outcomes"]["legacy"]["failed"], 0, "{rollout}");
    assert_eq!(
        rollout["outcomes"]["legacy"]["error_rate"], 0.0,
        "{rollout}"
    );
    // A second replica reading the same key routes the same documents the same way.
    let key = g.rollout_key.clone();
    let replica = Gateway::start(|s| s.rollout_key = key).await;
    let rollout: Value = replica.get("/v1/rollout").await.json().await.expect("json");
    assert_eq!(rollout["temporal_percent"], 50);
    for (id, expected) in [(&below[1], "temporal"), (&above[1], "legacy")] {
        let accepted = replica.accept(upload(id, 99)).await;
        assert_eq!(accepted["path"], expected, "replica, {id}");
        replica.wait_done(id).await;
    }
    replica.stop().await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_temporal_unreachable_the_gateway_falls_back_and_says_so() {
    let temporal = Proxy::start("127.0.0.1:7233".parse().expect("addr"))
        .await
        .expect("proxy");
    let g = Gateway::start(|s| {
        s.temporal.address = format!("http://{}", temporal.host_port());
    })
    .await;
    g.set_rollout(100).await;
    let first = g
        .accept(g.form(
            "before.txt",
            "text/plain",
            b"before the outage: load L-1 to Denver".to_vec(),
        ))
        .await;
    assert_eq!(first["path"], "temporal");
    assert_eq!(
        g.wait_done(first["document_id"].as_str().expect("id"))
            .await["status"],
        "completed"
    );

    temporal.refuse();
    let during = g
        .accept(g.form("during.txt", "text/plain", NOTE.as_bytes().to_vec()))
        .await;
    assert_eq!(during["path"], "legacy", "{during}");
    let reason = during["fallback"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("temporal"), "{during}");
    let id = during["document_id"].as_str().expect("id");
    let done = g.wait_done(id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["path"], "legacy");
    assert!(done["fallback"]["reason"].is_string(), "{done}");
    assert_eq!(g.metric("apex_gateway_fallbacks_total").await, 1.0);
    let ready: Value = g.get("/readyz").await.json().await.expect("json");
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["checks"]["temporal"]["ok"], false, "{ready}");
    g.stop().await;

    // Without the fallback the upload is refused as unavailable, and nothing runs.
    let strict = Gateway::start(|s| {
        s.temporal.address = format!("http://{}", temporal.host_port());
        s.fallback_to_legacy = false;
    })
    .await;
    strict.set_rollout(100).await;
    let refused = strict
        .post(strict.form("strict.txt", "text/plain", b"no fallback".to_vec()))
        .await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(error_code(&body), "unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("fallback_to_legacy is off")),
        "{body}"
    );
    strict.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_paths_leave_identical_store_state_for_the_same_document() {
    let g = Gateway::start(|_| {}).await;
    let id = uuid::Uuid::new_v4().to_string();
    let upload = || {
        g.form("same.txt", "text/plain", NOTE.as_bytes().to_vec())
            .text("document_id", id.clone())
            .text("metadata", r#"{"customer":"harbor-point"}"#)
    };
    let mut views = Vec::new();
    for (percent, path) in [(100u8, "temporal"), (0, "legacy")] {
        g.set_rollout(percent).await;
        let accepted = g.accept(upload()).await;
        assert_eq!(accepted["path"], path);
        assert_eq!(accepted["version"], 1);
        let done = g.wait_done(&id).await;
        assert_eq!(done["status"], "completed", "{done}");
        let view = writer()
            .await
            .inspect_document(InspectDocumentRequest {
                document_id: id.clone(),
            })
            .await
            .expect("inspect")
            .into_inner();
        assert!(view.consistent, "{view:?}");
        let deleted: Value = g
            .http
            .delete(format!("{}/v1/documents/{id}", g.url))
            .send()
            .await
            .expect("DELETE")
            .json()
            .await
            .expect("json");
        assert_eq!(deleted["deleted"], true, "{deleted}");
        views.push(view);
    }
    assert_eq!(views[0], views[1], "temporal vs legacy");
    assert_eq!(views[0].version, 1);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_describes_itself_and_reports_health_and_metrics() {
    let g = Gateway::start(|_| {}).await;
    let doc: Value = g.get("/openapi.json").await.json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    for route in [
        "/v1/documents",
        "/v1/documents/{id}",
        "/v1/search",
        "/v1/rollout",
        "/livez",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(doc["paths"][route].is_object(), "{route} is not described");
    }
    let ready = g.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["checks"]["redis"]["ok"], true);
    assert_eq!(ready["checks"]["writer"]["ok"], true);
    let metrics = g.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("apex_gateway_requests_total{route=\"/readyz\",status=\"200\"} 1"),
        "{metrics}"
    );
    g.stop().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_given_by_url_is_fetched_and_ingested_on_either_path() {
    let (url, server) = serve_once_per_request(NOTE).await;
    let g = Gateway::start(|s| s.allow_local_files = true).await;
    for (percent, path) in [(100u8, "temporal"), (0, "legacy")] {
        g.set_rollout(percent).await;
        let external_id = format!("{url}#{path}");
        let response = g
            .http
            .post(format!("{}/v1/documents", g.url))
            .json(&serde_json::json!({
                "url": url,
                "source": g.source,
                "priority": 5,
                "external_id": external_id,
                "metadata": {"customer": "harbor-point"},
            }))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let accepted: Value = response.json().await.expect("json");
        assert_eq!(accepted["path"], path, "{accepted}");
        // The bytes are not known before the fetch.
        assert!(accepted["content_sha256"].is_null(), "{accepted}");
        let id = accepted["document_id"].as_str().expect("id");
        let done = g.wait_done(id).await;
        assert_eq!(done["status"], "completed", "{done}");
        assert!(done["chunk_count"].as_u64() >= Some(1), "{done}");
    }
    // An object-store key: a file on this machine, read by the ingestion itself.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("dock-note.md");
    std::fs::write(
        &file,
        "# Dock 4\n\nThe reefer from Memphis arrived two hours late.\n",
    )
    .expect("write");
    let accepted: Value = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .json(&serde_json::json!({"key": format!("file://{}", file.display()), "source": g.source}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    let done = g
        .wait_done(accepted["document_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    // An http URL nobody serves fails the ingestion with the reason, on the legacy path at once.
    let response = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .json(&serde_json::json!({"url": "http://127.0.0.1:9/none.txt", "source": g.source}))
        .send()
        .await
        .expect("POST");
    let accepted: Value = response.json().await.expect("json");
    let done = g
        .wait_done(accepted["document_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("fetch failed")),
        "{done}"
    );
    // Not an http URL.
    let refused = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .json(&serde_json::json!({"url": "ftp://example.com/a.pdf"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    g.stop().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_has_one_ingestion_at_a_time_uploads_attach_or_wait() {
    // The embedder never answers, so the first ingestion stays in flight.
    let (silent_addr, held) = silent_server().await;
    let g = Gateway::start(|s| {
        s.ingest.embedder_addr = format!("http://{silent_addr}");
        s.shutdown_grace_secs = 1;
        s.retry_after_secs = 5;
    })
    .await;
    g.set_rollout(0).await;
    let id = uuid::Uuid::new_v4().to_string();
    let first = g
        .accept(
            g.form("one.txt", "text/plain", NOTE.as_bytes().to_vec())
                .text("document_id", id.clone()),
        )
        .await;
    assert_eq!(first["attached"], false);
    // The same bytes again, the id spelt in capitals: the same document, attached.
    let same = g
        .accept(
            g.form("one.txt", "text/plain", NOTE.as_bytes().to_vec())
                .text("document_id", id.to_uppercase()),
        )
        .await;
    assert_eq!(same["document_id"], id.as_str());
    assert_eq!(same["attached"], true, "{same}");
    assert_eq!(same["path"], "legacy");
    // Other bytes for the same document wait for the first: 409 with Retry-After.
    let other = g
        .post(
            g.form("one.txt", "text/plain", b"a different note".to_vec())
                .text("document_id", id.clone()),
        )
        .await;
    assert_eq!(other.status(), StatusCode::CONFLICT);
    assert_eq!(retry_after(&other), Some("5"));
    let body: Value = other.json().await.expect("json");
    assert_eq!(error_code(&body), "already_exists");
    assert_eq!(body["error"]["details"]["path"], "legacy", "{body}");
    // So does a deletion.
    let delete = g
        .http
        .delete(format!("{}/v1/documents/{id}", g.url))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(delete.status(), StatusCode::CONFLICT);
    let shared = g.shared.clone();
    g.stop().await;
    held.abort();
    // The stopped ingestion gave the document back: a new gateway takes new bytes for it.
    assert!(shared.claimed(&id).await.expect("redis").is_none());
    let again = Gateway::start(|_| {}).await;
    again.set_rollout(0).await;
    let accepted = again
        .accept(
            again
                .form("one.txt", "text/plain", b"a different note".to_vec())
                .text("document_id", id.clone()),
        )
        .await;
    assert_eq!(accepted["attached"], false);
    assert_eq!(again.wait_done(&id).await["status"], "completed");

    // A claim whose holder vanished before starting (a dropped request, a killed gateway)
    // is taken over once it is older than the start window; a fresh one is respected.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    for (path, age_ms, taken) in [
        ("temporal", 120_000u64, true),
        ("legacy", 120_000, true),
        ("temporal", 0, false),
    ] {
        let ghost_id = uuid::Uuid::new_v4().to_string();
        let ghost = Claim {
            token: format!("ghost-{path}"),
            sha256: String::new(),
            holder: Holder::parse(path).expect("a holder"),
            at_ms: now - age_ms,
        };
        assert!(
            again
                .shared
                .claim(&ghost_id, &ghost, Duration::from_secs(600))
                .await
                .expect("claim")
                .is_none()
        );
        let response = again
            .post(
                again
                    .form(
                        "ghost.txt",
                        "text/plain",
                        format!("ghost {ghost_id}").into_bytes(),
                    )
                    .text("document_id", ghost_id.clone()),
            )
            .await;
        if taken {
            assert_eq!(response.status(), StatusCode::ACCEPTED, "{path}");
            assert_eq!(again.wait_done(&ghost_id).await["status"], "completed");
        } else {
            assert_eq!(response.status(), StatusCode::CONFLICT, "{path}");
        }
    }
    again.stop().await;
}
