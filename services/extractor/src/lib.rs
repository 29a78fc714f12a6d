//! The Apex Ingest extractor service: entities, mentions and relations from chunks
//! (`apex.extractor.v1`). The default engine is deterministic and network-free: pattern
//! entities, a location gazetteer, organisations and people by rule, and co-occurrence
//! relations. User gazetteers, EDI party relations and the optional LLM engine are still to come.

pub mod engine;
pub mod gazetteer;
pub mod named;
pub mod patterns;
mod service;

pub use service::{ARTIFACT_CONTENT_TYPE, ExtractorGrpc};

use apex_common::{Settings, Shutdown, service::ServiceSettings};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Settings of the extractor (`APEX_EXTRACTOR__…`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ExtractorSettings(pub ServiceSettings);

impl Default for ExtractorSettings {
    fn default() -> Self {
        Self(ServiceSettings::with_ports(50052, 9102))
    }
}

impl Settings for ExtractorSettings {
    const ENV_PREFIX: &'static str = "APEX_EXTRACTOR";

    fn validate(&self) -> Vec<String> {
        self.0.validate()
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
