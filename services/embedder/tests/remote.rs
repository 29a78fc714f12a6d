//! The remote provider against a local server speaking the OpenAI `/v1/embeddings` wire
//! format: batching to `max_batch`, answers put back in input order by `index`, retries on
//! 429 (honouring `Retry-After`), 500 and malformed bodies up to 5 attempts, no retry on a
//! bad key, and the errors a caller gets.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apex_common::Shutdown;
use apex_embedder::EmbedderSettings;
use apex_proto::embedder::v1::embedder_service_client::EmbedderServiceClient;
use apex_proto::embedder::v1::{EmbedRequest, InfoRequest};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

const DIM: usize = 4;

#[derive(Debug, Clone)]
enum Reply {
    Ok,
    Status(u16, Option<&'static str>),
    Malformed,
    WrongDimension,
}

#[derive(Debug, Default)]
struct Fake {
    script: VecDeque<Reply>,
    calls: Vec<(Instant, Value, Option<String>)>,
}

type Shared = Arc<Mutex<Fake>>;

/// A deterministic embedding of a text: its length and first bytes (not unit length, so
/// the client's normalisation shows).
fn vector_of(text: &str) -> Vec<f32> {
    let b = text.as_bytes();
    (0..DIM)
        .map(|i| 1.0 + b.get(i).copied().unwrap_or(0) as f32 + text.len() as f32)
        .collect()
}

async fn embeddings(
    State(fake): State<Shared>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let reply = {
        let mut f = fake.lock().expect("lock");
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        f.calls.push((Instant::now(), body.clone(), auth));
        f.script.pop_front().unwrap_or(Reply::Ok)
    };
    let inputs: Vec<String> = body["input"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    match reply {
        Reply::Ok | Reply::WrongDimension => {
            // Reversed on purpose: clients must order by `index`.
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .rev()
                .map(|(i, t)| {
                    let mut v = vector_of(t);
                    if matches!(reply, Reply::WrongDimension) {
                        v.push(0.0);
                    }
                    json!({"object": "embedding", "index": i, "embedding": v})
                })
                .collect();
            Json(json!({
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 8, "total_tokens": 8}
            }))
            .into_response()
        }
        Reply::Malformed => (StatusCode::OK, "{\"object\": \"list\", \"data\": [").into_response(),
        Reply::Status(code, retry_after) => {
            let (kind, message) = match code {
                429 => ("requests", "Rate limit reached for requests".to_owned()),
                // Like a provider that echoes the key it was sent.
                401 => (
                    "invalid_request_error",
                    format!(
                        "Incorrect API key provided: {}",
                        headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .trim_start_matches("Bearer ")
                    ),
                ),
                _ => (
                    "server_error",
                    "The server had an error while processing your request".to_owned(),
                ),
            };
            let mut r = (
                StatusCode::from_u16(code).expect("status"),
                Json(json!({"error": {"message": message, "type": kind, "param": null, "code": null}})),
            )
                .into_response();
            if let Some(after) = retry_after {
                r.headers_mut()
                    .insert("retry-after", after.parse().expect("header"));
            }
            r
        }
    }
}

struct Setup {
    fake: Shared,
    client: EmbedderServiceClient<Channel>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn setup(script: Vec<Reply>) -> Setup {
    let fake: Shared = Arc::new(Mutex::new(Fake {
        script: script.into(),
        calls: Vec::new(),
    }));
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/v1", http.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/v1/embeddings", axum::routing::post(embeddings))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(http, app).await });
    let dir = tempfile::tempdir().expect("dir");
    let key = dir.path().join("key");
    std::fs::write(&key, "sk-embed-test\n").expect("key");
    let mut settings = EmbedderSettings::default();
    settings.service.blob_url = dir.path().display().to_string();
    settings.cache_url = String::new();
    settings.remote.enabled = true;
    settings.remote.base_url = base;
    settings.remote.model = "text-embedding-test".to_owned();
    settings.remote.dimensions = DIM as u32;
    settings.remote.max_batch = 2;
    settings.remote.initial_backoff_ms = 5;
    settings.remote.max_backoff_ms = 20;
    settings.remote.api_key_file = key.display().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(apex_embedder::run(
        settings,
        listener,
        None,
        shutdown.clone(),
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    Setup {
        fake,
        client: EmbedderServiceClient::new(channel),
        shutdown,
        task,
        _dir: dir,
    }
}

impl Setup {
    fn calls(&self) -> Vec<(Instant, Value, Option<String>)> {
        self.fake.lock().expect("lock").calls.clone()
    }

    async fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, tonic::Status> {
        self.client
            .embed(EmbedRequest {
                texts: texts.iter().map(|t| (*t).to_owned()).collect(),
            })
            .await
            .map(|r| {
                r.into_inner()
                    .vectors
                    .into_iter()
                    .map(|v| v.values)
                    .collect()
            })
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("join").expect("clean stop");
    }
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_go_in_batches_and_come_back_in_order_and_unit_length() {
    let mut s = setup(vec![]).await;
    let info = s
        .client
        .info(InfoRequest {})
        .await
        .expect("info")
        .into_inner();
    assert_eq!(
        (info.model_id.as_str(), info.dimension),
        ("text-embedding-test", DIM as u32)
    );
    let texts = ["alpha", "bravo charlie", "delta", "echo foxtrot golf"];
    let got = s.embed(&texts).await.expect("embed");
    for (t, v) in texts.iter().zip(&got) {
        assert_eq!(v, &unit(vector_of(t)), "{t}");
    }
    let calls = s.calls();
    assert_eq!(calls.len(), 2, "max_batch 2: two calls for four texts");
    assert_eq!(calls[0].1["input"], json!(["alpha", "bravo charlie"]));
    assert_eq!(calls[0].1["model"], "text-embedding-test");
    assert_eq!(calls[0].1["dimensions"], DIM);
    assert_eq!(calls[0].2.as_deref(), Some("Bearer sk-embed-test"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_server_errors_and_malformed_bodies_are_retried() {
    let mut s = setup(vec![
        Reply::Status(429, Some("1")),
        Reply::Status(500, None),
        Reply::Malformed,
        Reply::WrongDimension,
    ])
    .await;
    let got = s.embed(&["hotel"]).await.expect("fifth attempt succeeds");
    assert_eq!(got[0], unit(vector_of("hotel")));
    let calls = s.calls();
    assert_eq!(calls.len(), 5);
    assert!(
        calls[1].0.duration_since(calls[0].0) >= Duration::from_secs(1),
        "waited for Retry-After: 1"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_after_five_attempts_or_at_once_for_a_bad_key() {
    let mut s = setup(vec![Reply::Status(503, None); 5]).await;
    let status = s.embed(&["india"]).await.expect_err("five 503s");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("HTTP 503"),
        "{}",
        status.message()
    );
    assert_eq!(s.calls().len(), 5, "up to 5 attempts");
    s.stop().await;

    let mut s = setup(vec![Reply::Status(401, None)]).await;
    let status = s.embed(&["juliet"]).await.expect_err("bad key");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("API key"), "{}", status.message());
    assert!(
        !status.message().contains("sk-embed-test") && status.message().contains("<redacted>"),
        "the key the provider echoed is kept out: {}",
        status.message()
    );
    assert_eq!(s.calls().len(), 1, "a bad key is not retried");
    s.stop().await;

    let mut s = setup(vec![Reply::Malformed; 5]).await;
    let status = s.embed(&["kilo"]).await.expect_err("malformed");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("malformed"),
        "{}",
        status.message()
    );
    s.stop().await;
}
