//! The Apex Ingest extractor service: entities, mentions and relations from chunks
//! (`apex.extractor.v1`). The default engine is deterministic and network-free: pattern
//! entities, user gazetteers, a location gazetteer, organisations and people by rule,
//! typed relations from EDI records and webhook metadata, and co-occurrence relations.
//! The optional LLM engine (an OpenAI-compatible API) replaces the rule-based named layer
//! and falls back to it per chunk.

#[cfg(feature = "devtools")]
pub mod bench;
pub mod edi;
pub mod engine;
#[cfg(feature = "devtools")]
pub mod eval;
pub mod gazetteer;
pub mod llm;
pub mod metrics;
pub mod named;
pub mod patterns;
mod service;
pub mod tables;
pub mod user_gazetteer;

pub use service::{ARTIFACT_CONTENT_TYPE, ExtractorGrpc};

use apex_common::{Settings, Shutdown, service::ServiceSettings};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

pub use llm::LlmSettings;
pub use user_gazetteer::GazetteerSettings;

/// Settings of the extractor (`APEX_EXTRACTOR__…`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ExtractorSettings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    /// Most chunks in one request (inline or in a parsed artifact).
    pub max_chunks: usize,
    /// Longest chunk accepted, in characters.
    pub max_chunk_chars: usize,
    /// Most metadata entries, and the longest key or value, in characters.
    pub max_metadata_entries: usize,
    pub max_metadata_value_chars: usize,
    /// Extraction deadline per request (a shorter client `grpc-timeout` wins).
    pub extract_timeout_secs: u64,
    pub gazetteer: GazetteerSettings,
    pub llm: LlmSettings,
}

impl Default for ExtractorSettings {
    fn default() -> Self {
        Self {
            service: ServiceSettings::with_ports(apex_common::ports::EXTRACTOR),
            max_chunks: 20_000,
            max_chunk_chars: 100_000,
            max_metadata_entries: 256,
            max_metadata_value_chars: 4096,
            extract_timeout_secs: 50,
            gazetteer: GazetteerSettings::default(),
            llm: LlmSettings::default(),
        }
    }
}

impl Settings for ExtractorSettings {
    const ENV_PREFIX: &'static str = "APEX_EXTRACTOR";

    fn validate(&self) -> Vec<String> {
        let mut p = self.service.validate();
        if self.max_chunks == 0 {
            p.push("max_chunks must be at least 1".to_owned());
        }
        if self.max_chunk_chars < 64 {
            p.push("max_chunk_chars must be at least 64".to_owned());
        }
        if self.extract_timeout_secs == 0 {
            p.push("extract_timeout_secs must be at least 1".to_owned());
        }
        p.extend(self.gazetteer.validate());
        p.extend(self.llm.validate());
        p
    }
}

/// Runs the extractor on `listener` until `shutdown`.
pub async fn run(
    settings: ExtractorSettings,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    service::serve(settings, listener, metrics, shutdown).await
}
