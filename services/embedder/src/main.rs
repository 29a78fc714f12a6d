//! `apex-embedder`: the embedder gRPC service (`apex-embedder` or `apex-embedder serve`),
//! plus `bench` (chunks/s against ONNX Runtime on the same cores).

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_embedder::EmbedderSettings;
use clap::{Parser as _, Subcommand};

#[derive(Debug, clap::Parser)]
#[command(version, about = "Apex Ingest embedder: texts in, vectors out")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Chunks/s of the in-process model against ONNX Runtime on the same cores.
    Bench(apex_embedder::bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings: EmbedderSettings = load_or_exit();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let _telemetry = init_telemetry("apex-embedder", &settings.service.telemetry)?;
            let (listener, metrics) = apex_common::service::bind(&settings.service).await?;
            apex_embedder::run(settings, listener, metrics, Shutdown::on_signals()).await
        }
        Command::Bench(args) => {
            let model = apex_embedder::model::MiniLm::load(
                &apex_embedder::model::default_model_dir(),
                256,
            )?;
            tokio::task::spawn_blocking(move || apex_embedder::bench::run(&model, &args)).await?
        }
    }
}
