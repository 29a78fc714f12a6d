//! The Apex Ingest extractor service. For now it serves gRPC health, reflection and
//! `/metrics` only; its RPCs (`apex.extractor.v1`) arrive with the extractor issue.

pub mod engine;
pub mod gazetteer;
pub mod patterns;

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
    apex_common::service::run_skeleton(settings.0, listener, metrics, shutdown).await
}
