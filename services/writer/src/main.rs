//! `apex-writer`: the writer gRPC service.

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_writer::WriterSettings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: WriterSettings = load_or_exit();
    let _telemetry = init_telemetry("apex-writer", &settings.service.telemetry)?;
    let (listener, metrics) = apex_common::service::bind(&settings.service).await?;
    apex_writer::run(settings, listener, metrics, Shutdown::on_signals()).await
}
