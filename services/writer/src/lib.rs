//! The Apex Ingest writer service. For now it serves gRPC health, reflection and
//! `/metrics` only; its RPCs (`apex.writer.v1`) arrive with the writer issue.

use apex_common::{Settings, Shutdown, service::ServiceSettings};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Settings of the writer (`APEX_WRITER__…`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct WriterSettings(pub ServiceSettings);

impl Default for WriterSettings {
    fn default() -> Self {
        Self(ServiceSettings::with_ports(50054, 9104))
    }
}

impl Settings for WriterSettings {
    const ENV_PREFIX: &'static str = "APEX_WRITER";

    fn validate(&self) -> Vec<String> {
        self.0.validate()
    }
}

/// Runs the writer on `listener` until `shutdown`.
pub async fn run(
    settings: WriterSettings,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    apex_common::service::run_skeleton(settings.0, listener, metrics, shutdown).await
}
