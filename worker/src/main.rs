//! `apex-worker`: polls the `apex-ingest` task queue until SIGINT/SIGTERM.

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_worker::WorkerSettings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: WorkerSettings = load_or_exit();
    let _telemetry = init_telemetry("apex-worker", &settings.telemetry)?;
    let shutdown = Shutdown::on_signals();
    apex_worker::run(settings, shutdown).await
}
