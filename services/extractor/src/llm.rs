//! The optional LLM engine: an OpenAI-compatible chat-completions client that asks for JSON
//! matching a schema (organisations, people, locations, facilities and typed relations),
//! validates the answer, retries with backoff on 429/5xx honouring `Retry-After`, caches
//! answers by chunk hash in Redis, and falls back to the default engine per chunk when
//! disabled or failing. Pattern entities and user gazetteer names always come from the
//! deterministic layer; the LLM replaces only the rule-based named layer.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apex_common::rng::SplitMix64;
use apex_proto::common::v1::Chunk;
use apex_proto::extractor::v1::ExtractionResult;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::engine::{Collector, Engine, Found, push_unless_overlapping};
use crate::gazetteer::Gazetteer;
use crate::metrics::Metrics;
use crate::named;

/// Entity types the LLM is asked for.
pub const LLM_ENTITY_TYPES: &[&str] = &["ORGANIZATION", "PERSON", "LOCATION", "FACILITY"];
/// Relation types the LLM may state.
pub const LLM_RELATION_TYPES: &[&str] = &[
    "SHIPS_TO",
    "SHIPPED_BY",
    "DELIVERED_TO",
    "CARRIED_BY",
    "BILLED_TO",
    "WORKS_FOR",
    "LOCATED_IN",
    "REFERENCES",
];

/// Bumped whenever the prompt or schema changes (it is part of the cache key).
const PROMPT_VERSION: &str = "v1";

const SYSTEM_PROMPT: &str = "You extract named entities from logistics, email and finance \
text. Return every organisation, person, location (country, state, city) and facility \
(warehouse, terminal, distribution centre) named in the text, each with its exact text as it \
appears. Return relations only when the text states them: SHIPS_TO (shipper to consignee), \
SHIPPED_BY, DELIVERED_TO, CARRIED_BY, BILLED_TO (from a shipment or load identifier to a \
party), WORKS_FOR (person to organisation), LOCATED_IN (facility or organisation to \
location), REFERENCES (between identifiers). Relation ends are exact texts from the input. \
Do not invent anything that is not in the text.";

/// The LLM engine's settings (`APEX_EXTRACTOR__LLM__…`). The API key is read from the
/// environment variable named by `api_key_env`, never from a file in git.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LlmSettings {
    pub enabled: bool,
    /// Base URL of an OpenAI-compatible API (`…/v1`); `/chat/completions` is appended.
    pub base_url: String,
    pub model: String,
    /// Environment variable holding the API key (sent as a bearer token when set).
    pub api_key_env: String,
    /// Or a file holding it (a mounted secret); the file wins when both are set.
    pub api_key_file: String,
    /// Per-call HTTP timeout.
    pub call_timeout_secs: u64,
    /// Attempts per chunk (the first call and its retries).
    pub max_attempts: u32,
    /// Exponential backoff between retries (with jitter), unless `Retry-After` says more.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// A `Retry-After` longer than this ends the retries (the chunk falls back).
    pub max_retry_after_secs: u64,
    /// Chunks in flight at once per request.
    pub concurrency: usize,
    /// Redis URL of the answer cache; empty = no cache.
    pub cache_url: String,
    pub cache_ttl_secs: u64,
    /// Chunks longer than this (in characters) go to the default engine.
    pub max_chunk_chars: usize,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            base_url: "https://api.openai.com/v1".to_owned(),
            model: "gpt-4o-mini".to_owned(),
            api_key_env: "OPENAI_API_KEY".to_owned(),
            api_key_file: String::new(),
            call_timeout_secs: 30,
            max_attempts: 4,
            initial_backoff_ms: 500,
            max_backoff_ms: 20_000,
            max_retry_after_secs: 60,
            concurrency: 4,
            cache_url: "redis://127.0.0.1:6379".to_owned(),
            cache_ttl_secs: 7 * 24 * 3600,
            max_chunk_chars: 20_000,
        }
    }
}

impl LlmSettings {
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !self.enabled {
            return p;
        }
        if url::Url::parse(&self.base_url).is_err() {
            p.push(format!("llm.base_url {:?} is not a URL", self.base_url));
        }
        if self.model.trim().is_empty() {
            p.push("llm.model must not be empty".to_owned());
        }
        if self.max_attempts == 0 {
            p.push("llm.max_attempts must be at least 1".to_owned());
        }
        if self.call_timeout_secs == 0 {
            p.push("llm.call_timeout_secs must be at least 1".to_owned());
        }
        if self.concurrency == 0 {
            p.push("llm.concurrency must be at least 1".to_owned());
        }
        if !self.cache_url.is_empty() && !self.cache_url.starts_with("redis") {
            p.push("llm.cache_url must be a redis:// URL or empty".to_owned());
        }
        p
    }
}

/// One entity in the LLM's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerEntity {
    #[serde(rename = "type")]
    pub entity_type: String,
    pub text: String,
}

/// One relation in the LLM's answer (ends are texts from the chunk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRelation {
    pub from: String,
    #[serde(rename = "type")]
    pub relation_type: String,
    pub to: String,
}

/// The validated JSON the LLM returns for one chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub entities: Vec<AnswerEntity>,
    pub relations: Vec<AnswerRelation>,
}

/// The JSON schema sent as `response_format`.
pub fn answer_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["entities", "relations"],
        "properties": {
            "entities": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["type", "text"],
                    "properties": {
                        "type": {"type": "string", "enum": LLM_ENTITY_TYPES},
                        "text": {"type": "string"}
                    }
                }
            },
            "relations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["from", "type", "to"],
                    "properties": {
                        "from": {"type": "string"},
                        "type": {"type": "string", "enum": LLM_RELATION_TYPES},
                        "to": {"type": "string"}
                    }
                }
            }
        }
    })
}

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

/// Checks an answer's JSON against the schema (types from the allowed sets).
pub fn validate_answer(content: &str) -> Result<Answer, LlmError> {
    let answer: Answer =
        serde_json::from_str(content).map_err(|e| LlmError::InvalidAnswer(e.to_string()))?;
    for e in &answer.entities {
        if !LLM_ENTITY_TYPES.contains(&e.entity_type.as_str()) {
            return Err(LlmError::InvalidAnswer(format!(
                "entity type {:?} is not one of {LLM_ENTITY_TYPES:?}",
                e.entity_type
            )));
        }
    }
    for r in &answer.relations {
        if !LLM_RELATION_TYPES.contains(&r.relation_type.as_str()) {
            return Err(LlmError::InvalidAnswer(format!(
                "relation type {:?} is not one of {LLM_RELATION_TYPES:?}",
                r.relation_type
            )));
        }
    }
    Ok(answer)
}

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
    settings: LlmSettings,
    cache: Option<redis::Client>,
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    metrics: Metrics,
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

/// Occurrences of `needle` in `text` on word boundaries (exact case first, then ASCII
/// case-insensitive), as byte ranges.
fn occurrences(text: &str, needle: &str) -> Vec<(usize, usize)> {
    let needle = needle.trim();
    if needle.is_empty() {
        return Vec::new();
    }
    let boundary = |i: usize| {
        let before = text[..i].chars().next_back();
        !before.is_some_and(char::is_alphanumeric)
    };
    let boundary_after = |i: usize| !text[i..].chars().next().is_some_and(char::is_alphanumeric);
    let scan = |hay: &str, pat: &str| -> Vec<(usize, usize)> {
        hay.match_indices(pat)
            .map(|(i, m)| (i, i + m.len()))
            .filter(|(s, e)| boundary(*s) && boundary_after(*e))
            .collect()
    };
    let exact = scan(text, needle);
    if !exact.is_empty() || !needle.is_ascii() {
        return exact;
    }
    // ASCII lower-casing keeps byte offsets.
    scan(&text.to_ascii_lowercase(), &needle.to_ascii_lowercase())
}

/// The canonical key of an LLM entity (the same key the rule layer would give).
fn llm_key(entity_type: &str, text: &str) -> String {
    match entity_type {
        "ORGANIZATION" => named::org_key(text),
        "LOCATION" => Gazetteer::location_key(text)
            .unwrap_or_else(|| format!("place:{}", named::key(text).replace(' ', "-"))),
        _ => named::key(text),
    }
}

/// Merges an answer into a chunk's exact-layer entities: LLM entities where they do not
/// overlap, and relations whose ends name entities of the chunk. Returns the entities,
/// the relations (indexes into them) and how many LLM entities were not in the text.
pub fn merge_answer(
    text: &str,
    mut found: Vec<Found>,
    answer: &Answer,
) -> (Vec<Found>, Vec<(usize, usize, String)>, usize) {
    let mut dropped = 0;
    let mut seen = HashSet::new();
    for e in &answer.entities {
        if !seen.insert((e.entity_type.as_str(), e.text.trim())) {
            continue;
        }
        let spans = occurrences(text, &e.text);
        if spans.is_empty() {
            dropped += 1;
            continue;
        }
        let key = llm_key(&e.entity_type, e.text.trim());
        if key.is_empty() || key == "place:" {
            dropped += 1;
            continue;
        }
        for (start, end) in spans {
            push_unless_overlapping(
                &mut found,
                Found {
                    entity_type: e.entity_type.clone(),
                    canonical_key: key.clone(),
                    display_name: e.text.trim().to_owned(),
                    byte_start: start,
                    byte_end: end,
                    confidence: 0.85,
                },
            );
        }
    }
    let index_of = |name: &str| {
        let name = name.trim();
        found.iter().position(|f| {
            text[f.byte_start..f.byte_end].eq_ignore_ascii_case(name)
                || f.display_name.eq_ignore_ascii_case(name)
        })
    };
    let relations = answer
        .relations
        .iter()
        .filter_map(|r| {
            Some((
                index_of(&r.from)?,
                index_of(&r.to)?,
                r.relation_type.clone(),
            ))
        })
        .collect();
    (found, relations, dropped)
}

/// The LLM engine over the default engine (which supplies the exact layer and fallbacks).
#[derive(Debug)]
pub struct LlmEngine {
    pub client: Arc<LlmClient>,
}

impl LlmEngine {
    /// Extracts from `chunks`: the LLM's named entities and relations per chunk over the
    /// exact layer, the default engine for chunks the LLM could not answer by `deadline`.
    pub async fn extract(
        &self,
        engine: Arc<Engine>,
        chunks: Vec<Chunk>,
        deadline: Instant,
    ) -> ExtractionResult {
        let metrics = self.client.metrics.clone();
        let client = self.client.clone();
        let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
        let calls = texts.into_iter().map(move |text| {
            let client = client.clone();
            async move {
                if text.trim().is_empty() {
                    return None;
                }
                Some(client.answer(&text, deadline).await.map(|(a, _)| a))
            }
        });
        let answers: Vec<Option<Result<Answer, LlmError>>> = futures::stream::iter(calls)
            .buffered(self.client.settings.concurrency.max(1))
            .collect()
            .await;
        let work = move || {
            let mut collector = Collector::default();
            let (mut llm_chunks, mut fallback_chunks) = (0u32, 0u32);
            for (chunk, answer) in chunks.iter().zip(answers) {
                let text = chunk.text.as_str();
                match answer {
                    None => collector.empty_chunk(),
                    Some(Ok(answer)) => {
                        let (found, relations, dropped) =
                            merge_answer(text, engine.find_exact(text), &answer);
                        metrics.llm_dropped_entities.inc_by(dropped as u64);
                        collector.add_chunk(&chunk.chunk_id, text, found, &relations);
                        llm_chunks += 1;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(chunk_id = %chunk.chunk_id, error = %e, "LLM failed; default engine used");
                        metrics
                            .llm_fallbacks
                            .with_label_values(&[&e.reason()])
                            .inc();
                        collector.add_chunk(&chunk.chunk_id, text, engine.find(text), &[]);
                        fallback_chunks += 1;
                    }
                }
            }
            let mut result = collector.finish();
            result.llm_chunks = llm_chunks;
            result.fallback_chunks = fallback_chunks;
            result
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_validated_against_the_schema() {
        let ok =
            validate_answer(r#"{"entities":[{"type":"PERSON","text":"Ana Ruiz"}],"relations":[]}"#)
                .expect("valid");
        assert_eq!(ok.entities[0].text, "Ana Ruiz");
        for bad in [
            "not json",
            r#"{"entities":[]}"#,
            r#"{"entities":[{"type":"WEAPON","text":"x"}],"relations":[]}"#,
            r#"{"entities":[],"relations":[{"from":"a","type":"LOVES","to":"b"}]}"#,
            r#"{"entities":[{"type":"PERSON","text":"x","extra":1}],"relations":[]}"#,
        ] {
            assert!(
                matches!(validate_answer(bad), Err(LlmError::InvalidAnswer(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn merged_answers_keep_the_exact_layer_and_drop_invented_names() {
        let text = "Load LD-4471 for Lone Star Grocers, driver Ana Ruiz, from Laredo.";
        let engine = Engine::default();
        let answer = Answer {
            entities: vec![
                AnswerEntity {
                    entity_type: "ORGANIZATION".into(),
                    text: "Lone Star Grocers".into(),
                },
                AnswerEntity {
                    entity_type: "PERSON".into(),
                    text: "ana ruiz".into(),
                },
                AnswerEntity {
                    entity_type: "LOCATION".into(),
                    text: "Laredo".into(),
                },
                AnswerEntity {
                    entity_type: "ORGANIZATION".into(),
                    text: "Imaginary Corp".into(),
                },
                // Overlaps the pattern layer's load number: the pattern wins.
                AnswerEntity {
                    entity_type: "FACILITY".into(),
                    text: "LD-4471".into(),
                },
            ],
            relations: vec![
                AnswerRelation {
                    from: "LD-4471".into(),
                    relation_type: "DELIVERED_TO".into(),
                    to: "Lone Star Grocers".into(),
                },
                AnswerRelation {
                    from: "Nobody".into(),
                    relation_type: "WORKS_FOR".into(),
                    to: "Lone Star Grocers".into(),
                },
            ],
        };
        let (found, relations, dropped) = merge_answer(text, engine.find_exact(text), &answer);
        let got: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.entity_type.as_str(), f.canonical_key.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("LOAD_NUMBER", "LD-4471"),
                ("ORGANIZATION", "lone star grocers"),
                ("PERSON", "ana ruiz"),
                ("LOCATION", "city:laredo-us"),
            ]
        );
        assert_eq!(dropped, 1);
        assert_eq!(relations, [(0, 1, "DELIVERED_TO".to_owned())]);
    }
}
