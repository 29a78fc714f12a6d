//! `apex-vectord`: the local stack's vector database (Qdrant's gRPC API on qdrant-edge).
//!
//! `apex-vectord` (or `apex-vectord serve`) serves; `apex-vectord bench` prints throughput
//! and latency figures. Settings come from `APEX_VECTORD__…` (see `VectordSettings`).

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_vectord::{VectordSettings, bench::BenchArgs};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Qdrant's gRPC API on Qdrant's embedded engine, for local development"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC on `listen_addr` (the default command).
    Serve,
    /// Measure upsert throughput and search latency through qdrant-client.
    Bench(BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let settings: VectordSettings = load_or_exit();
            let _telemetry = init_telemetry("apex-vectord", &settings.telemetry)?;
            let listener = tokio::net::TcpListener::bind(&settings.listen_addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen_addr))?;
            apex_vectord::serve(settings, listener, Shutdown::on_signals()).await
        }
        Command::Bench(args) => apex_vectord::bench::run(args).await,
    }
}
