//! `apex-extractor`: the extractor gRPC service.

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_extractor::ExtractorSettings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: ExtractorSettings = load_or_exit();
    let _telemetry = init_telemetry("apex-extractor", &settings.0.telemetry)?;
    let (listener, metrics) = apex_common::service::bind(&settings.0).await?;
    apex_extractor::run(settings, listener, metrics, Shutdown::on_signals()).await
}
