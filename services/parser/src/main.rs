//! `apex-parser`: the parser gRPC service.

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_parser::ParserSettings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: ParserSettings = load_or_exit();
    let _telemetry = init_telemetry("apex-parser", &settings.service.telemetry)?;
    let (listener, metrics) = apex_common::service::bind(&settings.service).await?;
    apex_parser::run(settings, listener, metrics, Shutdown::on_signals()).await
}
