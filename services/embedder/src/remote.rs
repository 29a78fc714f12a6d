//! The remote provider: an OpenAI-compatible `POST /v1/embeddings` client. Texts are sent in
//! batches of at most `max_batch` inputs; 429, 5xx, transport errors and malformed bodies are
//! retried with exponential backoff (or the server's `Retry-After`) for up to `max_attempts`
//! calls; answers are checked (one embedding per input, by index, of the configured
//! dimension) and normalised to unit length.

use std::time::Duration;

use apex_common::ServiceError;
use apex_common::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Settings of the remote provider (`APEX_EMBEDDER__REMOTE__…`). When enabled it replaces the
/// local model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RemoteSettings {
    pub enabled: bool,
    /// Base URL of the API (`…/v1`); `/embeddings` is appended.
    pub base_url: String,
    pub model: String,
    /// Vector dimension asked for and checked (required when enabled).
    pub dimensions: u32,
    /// The provider's input limit in tokens (reported by `Info`).
    pub max_tokens: u32,
    /// Environment variable with the API key, or a file holding it (the file wins).
    pub api_key_env: String,
    pub api_key_file: String,
    /// Inputs per call (OpenAI accepts up to 2048).
    pub max_batch: usize,
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// A `Retry-After` longer than this ends the retries.
    pub max_retry_after_secs: u64,
    pub call_timeout_secs: u64,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            base_url: "https://api.openai.com/v1".to_owned(),
            model: "text-embedding-3-small".to_owned(),
            dimensions: 1536,
            max_tokens: 8191,
            api_key_env: "OPENAI_API_KEY".to_owned(),
            api_key_file: String::new(),
            max_batch: 256,
            max_attempts: 5,
            initial_backoff_ms: 500,
            max_backoff_ms: 20_000,
            max_retry_after_secs: 60,
            call_timeout_secs: 60,
        }
    }
}

impl RemoteSettings {
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !self.enabled {
            return p;
        }
        if url::Url::parse(&self.base_url).is_err() {
            p.push(format!("remote.base_url {:?} is not a URL", self.base_url));
        }
        if self.model.trim().is_empty() {
            p.push("remote.model must not be empty".to_owned());
        }
        if self.dimensions == 0 {
            p.push(
                "remote.dimensions must be set (the vector size the collection expects)".to_owned(),
            );
        }
        if self.max_batch == 0 || self.max_attempts == 0 || self.call_timeout_secs == 0 {
            p.push("remote.max_batch, remote.max_attempts and remote.call_timeout_secs must be at least 1".to_owned());
        }
        p
    }
}

/// The embeddings client.
#[derive(Debug)]
pub struct RemoteClient {
    http: reqwest::Client,
    endpoint: String,
    api_key: Option<String>,
    settings: RemoteSettings,
    jitter: std::sync::Mutex<SplitMix64>,
}

/// One failed call: the error and whether (and when) to try again.
struct Failure {
    error: ServiceError,
    retryable: bool,
    retry_after: Option<Duration>,
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

impl RemoteClient {
    pub fn new(settings: RemoteSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.call_timeout_secs))
            .build()?;
        let api_key = apex_common::settings::read_secret(
            "remote.api_key_file",
            &settings.api_key_env,
            &settings.api_key_file,
        )?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(Self {
            http,
            endpoint: format!("{}/embeddings", settings.base_url.trim_end_matches('/')),
            api_key,
            settings,
            jitter: std::sync::Mutex::new(SplitMix64::new(seed)),
        })
    }

    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    async fn call(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, Failure> {
        let body = json!({
            "model": self.settings.model,
            "input": inputs,
            "dimensions": self.settings.dimensions,
            "encoding_format": "float",
        });
        let mut request = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let transport = |e: reqwest::Error| Failure {
            error: ServiceError::Unavailable(format!("embedding provider unreachable: {e}")),
            retryable: true,
            retry_after: None,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| apex_common::retry::parse_retry_after(v, std::time::SystemTime::now()));
        let bytes = response.bytes().await.map_err(transport)?;
        if status != 200 {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
            let message = apex_common::settings::redact_secret(&message, self.api_key.as_deref());
            let text = format!("embedding provider answered HTTP {status}: {message}");
            let (error, retryable) = match status {
                429 => (ServiceError::ResourceExhausted(text), true),
                408 | 409 | 500..=599 => (ServiceError::Unavailable(text), true),
                401 | 403 => (ServiceError::FailedPrecondition(text), false),
                _ => (ServiceError::invalid_field("texts", text), false),
            };
            return Err(Failure {
                error,
                retryable,
                retry_after,
            });
        }
        let malformed = |why: String| Failure {
            error: ServiceError::Unavailable(format!(
                "embedding provider sent a malformed body: {why}"
            )),
            retryable: true,
            retry_after: None,
        };
        #[derive(Deserialize)]
        struct Item {
            index: usize,
            embedding: Vec<f32>,
        }
        #[derive(Deserialize)]
        struct Body {
            data: Vec<Item>,
        }
        let parsed: Body = serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
        let mut out: Vec<Option<Vec<f32>>> = vec![None; inputs.len()];
        for item in parsed.data {
            if item.embedding.len() != self.settings.dimensions as usize {
                return Err(malformed(format!(
                    "an embedding of {} values, not {}",
                    item.embedding.len(),
                    self.settings.dimensions
                )));
            }
            match out.get_mut(item.index) {
                Some(slot @ None) => *slot = Some(normalised(item.embedding)),
                _ => {
                    return Err(malformed(format!(
                        "index {} repeated or out of range",
                        item.index
                    )));
                }
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| malformed(format!("no embedding for input {i}"))))
            .collect()
    }

    async fn call_with_retries(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, ServiceError> {
        let mut attempt = 0;
        loop {
            let failure = match self.call(inputs).await {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            attempt += 1;
            if !failure.retryable || attempt >= self.settings.max_attempts {
                return Err(failure.error);
            }
            let wait = match failure.retry_after {
                Some(after) if after.as_secs() > self.settings.max_retry_after_secs => {
                    return Err(failure.error);
                }
                Some(after) => after,
                None => {
                    let jitter = self.jitter.lock().map_or(1.0, |mut j| j.next_f32());
                    apex_common::retry::backoff(
                        Duration::from_millis(self.settings.initial_backoff_ms),
                        Duration::from_millis(self.settings.max_backoff_ms),
                        attempt - 1,
                        jitter,
                    )
                }
            };
            tracing::info!(attempt, wait_ms = wait.as_millis() as u64, error = %failure.error, "retrying embedding call");
            tokio::time::sleep(wait).await;
        }
    }

    /// Embeds texts in batches of `max_batch`, in order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ServiceError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.settings.max_batch.max(1)) {
            out.extend(self.call_with_retries(batch).await?);
        }
        Ok(out)
    }
}
