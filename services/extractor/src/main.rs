//! `apex-extractor`: the extractor gRPC service (`apex-extractor` or `apex-extractor serve`),
//! plus `call` against a running one. Its evaluation and benchmark are in `apex-tools
//! extractor`.

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_extractor::ExtractorSettings;
use clap::{Parser as _, Subcommand};

#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "Apex Ingest extractor: chunks in, entities, mentions and relations out"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Call a running extractor with a text file (or stdin) as one chunk and print the
    /// entities and relations.
    Call {
        /// Text file, or `-` for stdin.
        #[arg(default_value = "-")]
        file: String,
        #[arg(long, default_value = "http://127.0.0.1:50052")]
        addr: String,
        /// Metadata entries, `key=value` (repeatable).
        #[arg(long = "meta", value_parser = parse_meta)]
        metadata: Vec<(String, String)>,
    },
}

fn parse_meta(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

async fn call(file: &str, addr: &str, metadata: Vec<(String, String)>) -> anyhow::Result<()> {
    use apex_proto::extractor::v1::ExtractRequest;
    use apex_proto::extractor::v1::extractor_service_client::ExtractorServiceClient;
    use std::io::Read as _;
    let mut text = String::new();
    if file == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file)?;
    }
    let mut client = ExtractorServiceClient::connect(addr.to_owned()).await?;
    let reply = client
        .extract(ExtractRequest {
            chunks: vec![apex_proto::common::v1::Chunk {
                chunk_id: "c1".to_owned(),
                text,
                ..Default::default()
            }],
            metadata: metadata.into_iter().collect(),
            ..ExtractRequest::default()
        })
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let result = reply.result.unwrap_or_default();
    println!(
        "{:<18} {:<34} {:>8}  text",
        "type", "canonical key", "mentions"
    );
    for (i, e) in result.entities.iter().enumerate() {
        let mentions = result
            .mentions
            .iter()
            .filter(|m| m.entity_index as usize == i)
            .count();
        println!(
            "{:<18} {:<34} {mentions:>8}  {}",
            e.entity_type, e.canonical_key, e.display_name
        );
    }
    for r in result
        .relations
        .iter()
        .filter(|r| r.relation_type != "CO_OCCURS")
    {
        let name = |i: u32| {
            result
                .entities
                .get(i as usize)
                .map_or("?", |e| e.canonical_key.as_str())
        };
        println!(
            "{} -{}-> {}",
            name(r.from_entity_index),
            r.relation_type,
            name(r.to_entity_index)
        );
    }
    let co = result
        .relations
        .iter()
        .filter(|r| r.relation_type == "CO_OCCURS")
        .count();
    println!(
        "{} entities, {} mentions, {co} co-occurrence relations, {} empty chunks",
        result.entities.len(),
        result.mentions.len(),
        result.empty_chunks
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings: ExtractorSettings = load_or_exit();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let _telemetry = init_telemetry("apex-extractor", &settings.service.telemetry)?;
            let (listener, metrics) = apex_common::service::bind(&settings.service).await?;
            apex_extractor::run(settings, listener, metrics, Shutdown::on_signals()).await
        }
        Command::Call {
            file,
            addr,
            metadata,
        } => call(&file, &addr, metadata).await,
    }
}
