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
    Bench(apex_extractor::bench::BenchArgs),
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
        Command::Bench(args) => {
            let engine = user_engine(&settings).await?;
            tokio::task::spawn_blocking(move || apex_extractor::bench::run(&engine, &args)).await?
        }
    }
}
