//! `apex-embedder`: the embedder gRPC service (`apex-embedder` or `apex-embedder serve`),
//! plus `call` against a running one. Its benchmarks are in `apex-tools embedder`.

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
    /// Call a running embedder: one text per line of FILE (or stdin); prints the model,
    /// then per text its token flag and the first values.
    Call {
        #[arg(default_value = "-")]
        file: String,
        #[arg(long, default_value = "http://127.0.0.1:50053")]
        addr: String,
    },
}

async fn call(file: &str, addr: &str) -> anyhow::Result<()> {
    use apex_proto::embedder::v1::embedder_service_client::EmbedderServiceClient;
    use apex_proto::embedder::v1::{EmbedRequest, InfoRequest};
    use std::io::Read as _;
    let mut text = String::new();
    if file == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file)?;
    }
    let texts: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut client = EmbedderServiceClient::connect(addr.to_owned()).await?;
    let status = |s: tonic::Status| anyhow::anyhow!("{:?}: {}", s.code(), s.message());
    let info = client
        .info(InfoRequest {})
        .await
        .map_err(status)?
        .into_inner();
    println!(
        "{} ({} dimensions, {} tokens, normalised {})",
        info.model_id, info.dimension, info.max_tokens, info.normalized
    );
    let reply = client
        .embed(EmbedRequest {
            texts: texts.clone(),
        })
        .await
        .map_err(status)?
        .into_inner();
    for (t, v) in texts.iter().zip(&reply.vectors) {
        let head: Vec<String> = v
            .values
            .iter()
            .take(4)
            .map(|x| format!("{x:+.4}"))
            .collect();
        println!(
            "[{}] {}{} …  {}",
            head.join(", "),
            if v.truncated { "(truncated) " } else { "" },
            v.values.len(),
            t.chars().take(60).collect::<String>()
        );
    }
    println!(
        "{} vectors, {} from the cache",
        reply.vectors.len(),
        reply.cache_hits
    );
    Ok(())
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
        Command::Call { file, addr } => call(&file, &addr).await,
    }
}
