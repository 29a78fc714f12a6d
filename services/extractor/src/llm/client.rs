//! The chat-completions client: one call per chunk, retries with backoff on 429 and 5xx
//! honouring `Retry-After`, a deadline, and answers cached in Redis by chunk hash.

use std::time::{Duration, Instant};

use apex_common::rng::SplitMix64;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::answer::{Answer, answer_schema, validate_answer};
use super::{LlmSettings, PROMPT_VERSION, SYSTEM_PROMPT};
use crate::metrics::Metrics;

/// Why a chunk got no LLM answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("LLM API answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("LLM API unreachable: {0}")]
    Transport(String),
    #[error("LLM answer does not match the schema: {0}")]
    InvalidAnswer(String),
    #[error("LLM refused: {0}")]
    Refused(String),
    #[error("LLM answer was cut off (finish_reason {0})")]
    Truncated(String),
    #[error("Retry-After of {0} s is longer than llm.max_retry_after_secs")]
    RetryAfterTooLong(u64),
    #[error("the request deadline passed")]
    Deadline,
    #[error("chunk too long for the LLM ({0} characters)")]
    TooLong(usize),
}

impl LlmError {
    /// Worth another attempt: rate limits, server errors, timeouts, connection failures.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Http { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
            Self::Transport(_) => true,
            _ => false,
        }
    }

    /// Metric label.
    pub fn reason(&self) -> String {
        match self {
            Self::Http { status: 429, .. } => "http_429".to_owned(),
            Self::Http { status, .. } if *status >= 500 => "http_5xx".to_owned(),
            Self::Http { status, .. } => format!("http_{status}"),
            Self::Transport(_) => "transport".to_owned(),
            Self::InvalidAnswer(_) => "invalid_answer".to_owned(),
            Self::Refused(_) => "refused".to_owned(),
            Self::Truncated(_) => "truncated".to_owned(),
            Self::RetryAfterTooLong(_) => "retry_after_too_long".to_owned(),
            Self::Deadline => "deadline".to_owned(),
            Self::TooLong(_) => "too_long".to_owned(),
        }
    }
}

/// A failed call and how long the server asked us to wait.
#[derive(Debug)]
struct Failure {
    error: LlmError,
    retry_after: Option<Duration>,
}

pub use apex_common::retry::parse_retry_after;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Api,
}

/// The chat-completions client with its retry policy and cache.
#[derive(Debug)]
pub struct LlmClient {
    http: reqwest::Client,
    endpoint: String,
    api_key: Option<String>,
    pub(super) settings: LlmSettings,
    cache: Option<redis::Client>,
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    pub(super) metrics: Metrics,
    jitter: std::sync::Mutex<SplitMix64>,
}

/// Bound on any one cache operation: a slow cache must not slow extraction.
const CACHE_TIMEOUT: Duration = Duration::from_secs(2);

impl LlmClient {
    pub fn new(settings: LlmSettings, metrics: Metrics) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.call_timeout_secs))
            .build()?;
        let endpoint = format!(
            "{}/chat/completions",
            settings.base_url.trim_end_matches('/')
        );
        let api_key = apex_common::settings::read_secret(
            "llm.api_key_file",
            &settings.api_key_env,
            &settings.api_key_file,
        )?;
        let cache = if settings.cache_url.is_empty() {
            None
        } else {
            Some(redis::Client::open(settings.cache_url.as_str())?)
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(Self {
            http,
            endpoint,
            api_key,
            settings,
            cache,
            connection: Mutex::new(None),
            metrics,
            jitter: std::sync::Mutex::new(SplitMix64::new(seed)),
        })
    }

    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    /// The cache key of a chunk: model, prompt version and text, hashed.
    pub fn cache_key(&self, text: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.settings.model.as_bytes());
        h.update([0]);
        h.update(PROMPT_VERSION.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        format!("apex:extractor:llm:{}", hex::encode(h.finalize()))
    }

    async fn cache_connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        let client = self.cache.as_ref()?;
        let mut slot = self.connection.lock().await;
        if slot.is_none() {
            match tokio::time::timeout(CACHE_TIMEOUT, client.get_multiplexed_async_connection())
                .await
            {
                Ok(Ok(c)) => *slot = Some(c),
                Ok(Err(e)) => tracing::warn!(error = %e, "LLM cache unreachable"),
                Err(_) => tracing::warn!("LLM cache connection timed out"),
            }
        }
        slot.clone()
    }

    async fn cache_failed(&self) {
        self.metrics.llm_cache.with_label_values(&["error"]).inc();
        *self.connection.lock().await = None;
    }

    async fn cache_get(&self, key: &str) -> Option<Answer> {
        let mut conn = self.cache_connection().await?;
        let got: Result<Result<Option<String>, _>, _> = tokio::time::timeout(
            CACHE_TIMEOUT,
            redis::cmd("GET").arg(key).query_async(&mut conn),
        )
        .await;
        match got {
            Ok(Ok(Some(json))) => match validate_answer(&json) {
                Ok(a) => {
                    self.metrics.llm_cache.with_label_values(&["hit"]).inc();
                    Some(a)
                }
                Err(_) => {
                    self.metrics.llm_cache.with_label_values(&["miss"]).inc();
                    None
                }
            },
            Ok(Ok(None)) => {
                self.metrics.llm_cache.with_label_values(&["miss"]).inc();
                None
            }
            Ok(Err(e)) => {
                let e: redis::RedisError = e;
                tracing::warn!(error = %e, "LLM cache read failed");
                self.cache_failed().await;
                None
            }
            Err(_) => {
                self.cache_failed().await;
                None
            }
        }
    }

    async fn cache_put(&self, key: &str, answer: &Answer) {
        let Some(mut conn) = self.cache_connection().await else {
            return;
        };
        let Ok(json) = serde_json::to_string(answer) else {
            return;
        };
        let set: Result<Result<(), redis::RedisError>, _> = tokio::time::timeout(
            CACHE_TIMEOUT,
            redis::cmd("SET")
                .arg(key)
                .arg(json)
                .arg("EX")
                .arg(self.settings.cache_ttl_secs.max(1))
                .query_async(&mut conn),
        )
        .await;
        if !matches!(set, Ok(Ok(()))) {
            tracing::warn!("LLM cache write failed");
            self.cache_failed().await;
        }
    }

    fn request_body(&self, text: &str) -> serde_json::Value {
        json!({
            "model": self.settings.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": text}
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "apex_entities", "strict": true, "schema": answer_schema()}
            }
        })
    }

    /// One call to the API.
    async fn call(&self, text: &str) -> Result<Answer, Failure> {
        let started = Instant::now();
        let body = serde_json::to_vec(&self.request_body(text)).unwrap_or_default();
        let mut request = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let outcome = request.send().await;
        self.metrics
            .llm_call_seconds
            .observe(started.elapsed().as_secs_f64());
        let fail = |error: LlmError, retry_after: Option<Duration>| {
            self.metrics
                .llm_calls
                .with_label_values(&[&error.reason()])
                .inc();
            Failure { error, retry_after }
        };
        let response = outcome.map_err(|e| fail(LlmError::Transport(e.to_string()), None))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let body = response
            .bytes()
            .await
            .map_err(|e| fail(LlmError::Transport(e.to_string()), None))?;
        if status != 200 {
            // OpenAI error bodies are {"error": {"message", "type", "code"}}.
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            // A provider may echo the key it was sent.
            let message = apex_common::settings::redact_secret(&message, self.api_key.as_deref());
            return Err(fail(LlmError::Http { status, message }, retry_after));
        }
        let completion: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            fail(
                LlmError::InvalidAnswer(format!("not a chat completion: {e}")),
                None,
            )
        })?;
        let choice = &completion["choices"][0];
        if let Some(refusal) = choice["message"]["refusal"].as_str() {
            return Err(fail(LlmError::Refused(refusal.to_owned()), None));
        }
        let finish = choice["finish_reason"].as_str().unwrap_or("");
        if finish != "stop" {
            return Err(fail(LlmError::Truncated(finish.to_owned()), None));
        }
        let content = choice["message"]["content"].as_str().ok_or_else(|| {
            fail(
                LlmError::InvalidAnswer("choices[0].message.content is missing".to_owned()),
                None,
            )
        })?;
        let answer = validate_answer(content).map_err(|e| fail(e, None))?;
        self.metrics.llm_calls.with_label_values(&["ok"]).inc();
        Ok(answer)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let jitter = self.jitter.lock().map_or(1.0, |mut j| j.next_f32());
        apex_common::retry::backoff(
            Duration::from_millis(self.settings.initial_backoff_ms),
            Duration::from_millis(self.settings.max_backoff_ms),
            attempt,
            jitter,
        )
    }

    /// The answer for one chunk: from the cache, or from the API with retries.
    pub async fn answer(
        &self,
        text: &str,
        deadline: Instant,
    ) -> Result<(Answer, Source), LlmError> {
        let chars = text.chars().count();
        if chars > self.settings.max_chunk_chars {
            return Err(LlmError::TooLong(chars));
        }
        let key = self.cache_key(text);
        if let Some(answer) = self.cache_get(&key).await {
            return Ok((answer, Source::Cache));
        }
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(LlmError::Deadline);
            }
            let call = tokio::time::timeout(remaining, self.call(text)).await;
            let failure = match call {
                Err(_) => return Err(LlmError::Deadline),
                Ok(Ok(answer)) => {
                    self.cache_put(&key, &answer).await;
                    return Ok((answer, Source::Api));
                }
                Ok(Err(f)) => f,
            };
            attempt += 1;
            if !failure.error.retryable() || attempt >= self.settings.max_attempts {
                return Err(failure.error);
            }
            let wait = match failure.retry_after {
                Some(after) if after.as_secs() > self.settings.max_retry_after_secs => {
                    return Err(LlmError::RetryAfterTooLong(after.as_secs()));
                }
                Some(after) => after,
                None => self.backoff(attempt - 1),
            };
            if Instant::now() + wait >= deadline {
                return Err(LlmError::Deadline);
            }
            tracing::info!(attempt, wait_ms = wait.as_millis() as u64, error = %failure.error, "retrying LLM call");
            tokio::time::sleep(wait).await;
        }
    }
}
