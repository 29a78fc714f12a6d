//! The Apex Ingest parser service. For now it serves gRPC health, reflection and
//! `/metrics` only; its RPCs (`apex.parser.v1`) arrive with the parser issue.

use apex_common::{Settings, Shutdown, service::ServiceSettings};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Settings of the parser (`APEX_PARSER__…`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ParserSettings(pub ServiceSettings);

impl Default for ParserSettings {
    fn default() -> Self {
        Self(ServiceSettings::with_ports(50051, 9101))
    }
}

impl Settings for ParserSettings {
    const ENV_PREFIX: &'static str = "APEX_PARSER";

    fn validate(&self) -> Vec<String> {
        self.0.validate()
    }
}

/// Runs the parser on `listener` until `shutdown`.
pub async fn run(
    settings: ParserSettings,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    apex_common::service::run_skeleton(settings.0, listener, metrics, shutdown).await
}
