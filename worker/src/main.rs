//! `apex-worker`: polls the `apex-ingest` task queue until SIGINT/SIGTERM.

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry_with};
use apex_worker::WorkerSettings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: WorkerSettings = load_or_exit();
    // Workflow spans draw their ids from the workflow's replay-safe randomness, so a
    // replayed workflow's spans point at the ones exported the first time.
    let _telemetry = init_telemetry_with(
        "apex-worker",
        &settings.telemetry,
        temporalio_sdk::opentelemetry::WorkflowIdGenerator::default(),
    )?;
    let shutdown = Shutdown::on_signals();
    apex_worker::run(settings, shutdown).await
}
