//! `apex-extractor`: the extractor gRPC service (`apex-extractor` or `apex-extractor serve`),
//! plus `eval` (precision, recall and F1 per type over the labelled set) and `bench`
//! (chunks per second).

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_extractor::ExtractorSettings;
use apex_extractor::engine::Engine;
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
    /// Precision, recall and F1 per entity type of the default engine over the labelled
    /// evaluation set.
    Eval {
        /// Directory of labelled `*.txt` documents (default: the shipped set).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Also list every false positive and false negative.
        #[arg(long)]
        errors: bool,
    },
    /// Chunks per second of the default engine on 256-token chunks.
    #[cfg(feature = "bench")]
    Bench(apex_extractor::bench::BenchArgs),
    /// Chunks per second (built with `--features bench`: `make bench-extractor`).
    #[cfg(not(feature = "bench"))]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
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

async fn user_engine(settings: &ExtractorSettings) -> anyhow::Result<Engine> {
    let entries = if settings.gazetteer.is_configured() {
        apex_extractor::user_gazetteer::load(&settings.gazetteer).await?
    } else {
        Vec::new()
    };
    Ok(Engine::new(entries))
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
        Command::Eval { dir, errors } => {
            let dir = dir.unwrap_or_else(apex_extractor::eval::default_dir);
            let docs = apex_extractor::eval::load_dir(&dir)?;
            let engine = user_engine(&settings).await?;
            let labels: usize = docs.iter().map(|d| d.labels.len()).sum();
            println!(
                "{} documents, {labels} labelled spans ({})",
                docs.len(),
                dir.display()
            );
            let report = apex_extractor::eval::evaluate(&engine, &docs);
            print!("{}", report.table());
            if errors {
                for m in &report.misses {
                    println!(
                        "{:<15} {:<18} {:<28} {:?}",
                        m.kind, m.entity_type, m.document, m.text
                    );
                }
            }
            Ok(())
        }
        Command::Call {
            file,
            addr,
            metadata,
        } => call(&file, &addr, metadata).await,
        #[cfg(feature = "bench")]
        Command::Bench(args) => {
            let engine = user_engine(&settings).await?;
            tokio::task::spawn_blocking(move || apex_extractor::bench::run(&engine, &args)).await?
        }
        #[cfg(not(feature = "bench"))]
        Command::Bench { .. } => anyhow::bail!(
            "this apex-extractor was built without the benchmark: run `make bench-extractor` \
             (cargo run --release -p apex-extractor --features bench -- bench)"
        ),
    }
}
