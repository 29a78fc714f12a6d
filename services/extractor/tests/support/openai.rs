//! A local stand-in for the OpenAI chat-completions API on 127.0.0.1, speaking its wire
//! format: `POST /v1/chat/completions` with a JSON body, answered with a `chat.completion`
//! object, or with an `{"error": {...}}` body and the status and headers OpenAI uses for
//! rate limits (429 + `retry-after`), server errors (5xx) and bad keys (401).
//!
//! Replies are scripted in order; when the script is empty the server answers with the
//! entities of `known` that occur in the chunk.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One scripted reply.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this string as the assistant message content.
    Content(String),
    /// 200 with `finish_reason: "length"` (a cut-off answer).
    CutOff,
    /// 200 with a refusal.
    Refusal,
    /// An OpenAI error body with this status, error type and code, plus `retry-after`.
    Error {
        status: u16,
        kind: &'static str,
        code: Option<&'static str>,
        retry_after: Option<String>,
    },
    /// Never answers (until the client gives up).
    Hang,
}

impl Reply {
    pub fn rate_limited(retry_after: &str) -> Self {
        Self::Error {
            status: 429,
            kind: "requests",
            code: Some("rate_limit_exceeded"),
            retry_after: Some(retry_after.to_owned()),
        }
    }

    pub fn server_error(status: u16) -> Self {
        Self::Error {
            status,
            kind: "server_error",
            code: None,
            retry_after: None,
        }
    }

    pub fn bad_key() -> Self {
        Self::Error {
            status: 401,
            kind: "invalid_request_error",
            code: Some("invalid_api_key"),
            retry_after: None,
        }
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub authorization: Option<String>,
    pub body: Value,
}

impl Received {
    /// The user message (the chunk text).
    pub fn user_text(&self) -> String {
        self.body["messages"][1]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

#[derive(Debug, Default)]
struct Inner {
    script: VecDeque<Reply>,
    received: Vec<Received>,
}

/// The running fake.
#[derive(Debug, Clone)]
pub struct FakeOpenAi {
    inner: Arc<Mutex<Inner>>,
    known: Arc<Vec<(&'static str, &'static str)>>,
    pub base_url: String,
}

fn completion(content: Option<&str>, refusal: Option<&str>, finish: &str, model: &str) -> Value {
    json!({
        "id": "chatcmpl-apex-test",
        "object": "chat.completion",
        "created": 1_784_000_000u64,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": refusal},
            "logprobs": null,
            "finish_reason": finish
        }],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        "system_fingerprint": "fp_apex"
    })
}

async fn chat(
    State(fake): State<FakeOpenAi>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let received = Received {
        at: Instant::now(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
    };
    let text = received.user_text();
    let reply = {
        let mut inner = fake.inner.lock().expect("lock");
        inner.received.push(received);
        inner.script.pop_front()
    };
    let model = body["model"].as_str().unwrap_or("unknown").to_owned();
    let reply = reply.unwrap_or_else(|| {
        let entities: Vec<Value> = fake
            .known
            .iter()
            .filter(|(_, name)| text.contains(name))
            .map(|(t, name)| json!({"type": t, "text": name}))
            .collect();
        Reply::Content(json!({"entities": entities, "relations": []}).to_string())
    });
    match reply {
        Reply::Content(content) => {
            Json(completion(Some(&content), None, "stop", &model)).into_response()
        }
        Reply::CutOff => {
            Json(completion(Some("{\"entities\": ["), None, "length", &model)).into_response()
        }
        Reply::Refusal => Json(completion(
            None,
            Some("I can't help with that."),
            "stop",
            &model,
        ))
        .into_response(),
        Reply::Error {
            status,
            kind,
            code,
            retry_after,
        } => {
            let message = match status {
                429 => "Rate limit reached for requests. Please try again later.".to_owned(),
                // Like a provider that echoes the key it was sent.
                401 => format!(
                    "Incorrect API key provided: {}.",
                    headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .trim_start_matches("Bearer ")
                ),
                _ => "The server had an error while processing your request.".to_owned(),
            };
            let mut response = (
                StatusCode::from_u16(status).expect("status"),
                Json(json!({"error": {"message": message, "type": kind, "param": null, "code": code}})),
            )
                .into_response();
            if let Some(after) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", after.parse().expect("header"));
            }
            response
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

impl FakeOpenAi {
    /// Starts on 127.0.0.1 port 0; `known` are the (type, text) pairs default answers use.
    pub async fn start(known: Vec<(&'static str, &'static str)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let fake = Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            known: Arc::new(known),
            base_url: format!("http://{addr}/v1"),
        };
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(chat))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    /// Queues replies, answered in order before the default ones.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().expect("lock").script.extend(replies);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("lock").received.clone()
    }
}
