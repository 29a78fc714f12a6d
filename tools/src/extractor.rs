//! `apex-tools extractor`: precision, recall and F1 per entity type over a labelled set, and
//! chunks per second.

use apex_common::settings::load_or_exit;
use apex_extractor::ExtractorSettings;
use apex_extractor::engine::Engine;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Precision, recall and F1 per entity type of the default engine (with the user
    /// gazetteer when one is configured) over the labelled evaluation set.
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

pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    let settings: ExtractorSettings = load_or_exit();
    let engine = user_engine(&settings).await?;
    match command {
        Command::Eval { dir, errors } => eval(&engine, dir, errors),
        Command::Bench(args) => {
            tokio::task::spawn_blocking(move || apex_extractor::bench::run(&engine, &args)).await?
        }
    }
}

/// The engine the service would run: the default layers plus the user gazetteer.
async fn user_engine(settings: &ExtractorSettings) -> anyhow::Result<Engine> {
    let entries = if settings.gazetteer.is_configured() {
        apex_extractor::user_gazetteer::load(&settings.gazetteer).await?
    } else {
        Vec::new()
    };
    Ok(Engine::new(entries))
}

fn eval(engine: &Engine, dir: Option<std::path::PathBuf>, errors: bool) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(apex_extractor::eval::default_dir);
    let docs = apex_extractor::eval::load_dir(&dir)?;
    let labels: usize = docs.iter().map(|d| d.labels.len()).sum();
    println!(
        "{} documents, {labels} labelled spans ({})",
        docs.len(),
        dir.display()
    );
    let report = apex_extractor::eval::evaluate(engine, &docs);
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
