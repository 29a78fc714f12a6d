//! `apex-embedder`: the embedder gRPC service.

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_embedder::EmbedderSettings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: EmbedderSettings = load_or_exit();
    let _telemetry = init_telemetry("apex-embedder", &settings.0.telemetry)?;
    let (listener, metrics) = apex_common::service::bind(&settings.0).await?;
    apex_embedder::run(settings, listener, metrics, Shutdown::on_signals()).await
}
