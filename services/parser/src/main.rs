//! `apex-parser`: the parser gRPC service (`apex-parser` or `apex-parser serve`). Its
//! benchmark, fuzzer and demo corpus are in `apex-tools parser`.

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_parser::ParserSettings;
use clap::{Parser as _, Subcommand};

#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "Apex Ingest parser: documents in, text, structure and chunks out"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC (the default).
    Serve,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings: ParserSettings = load_or_exit();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let _telemetry = init_telemetry("apex-parser", &settings.service.telemetry)?;
            // Panics inside parsers are contained and answered as INTERNAL; log them as
            // events instead of raw stderr text.
            std::panic::set_hook(Box::new(|info| {
                tracing::error!(panic = %info, "parser panic contained");
            }));
            let (listener, metrics) = apex_common::service::bind(&settings.service).await?;
            apex_parser::run(settings, listener, metrics, Shutdown::on_signals()).await
        }
    }
}
