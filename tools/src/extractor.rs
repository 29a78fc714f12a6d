//! `apex-tools extractor`: precision, recall and F1 per entity type over a labelled set, and
//! chunks per second.

use apex_common::settings::load_or_exit;
use apex_extractor::ExtractorSettings;
use apex_extractor::bench::{BenchArgs, default_tokenizer};
use apex_extractor::engine::Engine;
use apex_parser::{Hints, Parser, ParserSettings};
use apex_proto::common::v1::Chunk;
use apex_proto::parser::v1::ParseOptions;

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
    Bench(BenchArgs),
}

pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    let settings: ExtractorSettings = load_or_exit();
    let engine = user_engine(&settings).await?;
    match command {
        Command::Eval { dir, errors } => eval(&engine, dir, errors),
        Command::Bench(args) => {
            let chunks = chunks(&args)?;
            tokio::task::spawn_blocking(move || apex_extractor::bench::run(&engine, &chunks, &args))
                .await?
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

/// The evaluation documents (or `--dir`) as one text, cut by the parser into `--chunk-tokens`
/// chunks as the pipeline cuts them, so that nearly every chunk is a full one.
fn chunks(args: &BenchArgs) -> anyhow::Result<Vec<Chunk>> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(apex_extractor::eval::default_dir);
    let docs = apex_extractor::eval::load_dir(&dir)?;
    let parser = Parser::new(ParserSettings {
        tokenizer_path: args.tokenizer.clone().unwrap_or_else(default_tokenizer),
        ..ParserSettings::default()
    })?;
    let options = ParseOptions {
        max_chunk_tokens: args.chunk_tokens,
        ..ParseOptions::default()
    };
    let corpus = docs
        .iter()
        .map(|d| d.text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n");
    let chunks = parser
        .parse(
            corpus.as_bytes(),
            Hints {
                file_name: "corpus.txt",
                mime_type: "text/plain",
                options: Some(&options),
                ..Hints::default()
            },
        )?
        .chunks;
    anyhow::ensure!(!chunks.is_empty(), "no text to chunk in {}", dir.display());
    let bytes: usize = chunks.iter().map(|c| c.text.len()).sum();
    println!(
        "{} chunks of up to {} tokens (mean {:.0}) from {} documents in {} (mean {} bytes per chunk)",
        chunks.len(),
        args.chunk_tokens,
        chunks
            .iter()
            .map(|c| f64::from(c.token_count) + 2.0)
            .sum::<f64>()
            / chunks.len() as f64,
        docs.len(),
        dir.display(),
        bytes / chunks.len()
    );
    Ok(chunks)
}
