//! The Apex Ingest embedder service. For now it serves gRPC health, reflection and
//! `/metrics` only; its RPCs (`apex.embedder.v1`) arrive with the embedder issue.

pub mod bench;
pub mod model;
pub mod onnx;

use apex_common::{Settings, Shutdown, service::ServiceSettings};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Settings of the embedder (`APEX_EMBEDDER__…`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct EmbedderSettings(pub ServiceSettings);

impl Default for EmbedderSettings {
    fn default() -> Self {
        Self(ServiceSettings::with_ports(50053, 9103))
    }
}

impl Settings for EmbedderSettings {
    const ENV_PREFIX: &'static str = "APEX_EMBEDDER";

    fn validate(&self) -> Vec<String> {
        self.0.validate()
    }
}

/// Runs the embedder on `listener` until `shutdown`.
pub async fn run(
    settings: EmbedderSettings,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    apex_common::service::run_skeleton(settings.0, listener, metrics, shutdown).await
}
