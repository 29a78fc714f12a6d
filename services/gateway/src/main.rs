//! `apex-gateway`: the HTTP gateway. Settings from `APEX_GATEWAY__…` (see
//! `docs/operations.md`); stops on SIGINT/SIGTERM after in-progress requests.

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_gateway::GatewaySettings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: GatewaySettings = load_or_exit();
    let _telemetry = init_telemetry("apex-gateway", &settings.telemetry)?;
    let listener = tokio::net::TcpListener::bind(&settings.listen_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen_addr))?;
    apex_gateway::run(settings, listener, Shutdown::on_signals()).await
}
