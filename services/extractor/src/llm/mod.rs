//! The optional LLM engine: an OpenAI-compatible chat-completions client that asks for JSON
//! matching a schema (organisations, people, locations, facilities and typed relations),
//! validates the answer, retries with backoff on 429/5xx honouring `Retry-After`, caches
//! answers by chunk hash in Redis, and falls back to the default engine per chunk when
//! disabled or failing. Pattern entities and user gazetteer names always come from the
//! deterministic layer; the LLM replaces only the rule-based named layer.
//!
//! Here: the settings, the prompt and the engine over the default one; [`answer`] is the
//! answer's schema, its validation and its merge with the exact layer; [`client`] is the
//! HTTP client with its retries and Redis cache.

use std::sync::Arc;
use std::time::Instant;

use apex_proto::common::v1::Chunk;
use apex_proto::extractor::v1::ExtractionResult;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::engine::{Collector, Engine};

mod answer;
mod client;

pub use answer::{
    Answer, AnswerEntity, AnswerRelation, answer_schema, merge_answer, validate_answer,
};
pub use client::{LlmClient, LlmError, Source, parse_retry_after};

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
