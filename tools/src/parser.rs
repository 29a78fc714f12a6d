//! `apex-tools parser`: the benchmark against the Python libraries, bounded mutation fuzzing
//! of every format parser, and the demo corpus.

use std::path::PathBuf;

use apex_common::settings::load_or_exit;
use apex_parser::{Parser, ParserSettings};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Measure MB/s and documents/s per format against the Python libraries.
    Bench(apex_parser::bench::BenchArgs),
    /// Mutate the generated corpus and parse every mutant; prints a table, exits 1 if a
    /// panic escaped or a parser panicked.
    Fuzz {
        /// Mutated inputs per sample format.
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write the demo corpus (mixed formats, made by the project) into a directory.
    Corpus { dir: PathBuf },
    /// Parse files in this process (no service): each one's format, chunks, pages (with
    /// their text source), metadata and warnings, then its text.
    Parse { files: Vec<PathBuf> },
}

pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Corpus { dir } => corpus(&dir),
        Command::Bench(args) => {
            let parser = Parser::new(load_or_exit::<ParserSettings>())?;
            tokio::task::spawn_blocking(move || apex_parser::bench::run(&parser, &args)).await?
        }
        Command::Fuzz { iterations, seed } => fuzz(iterations, seed).await,
        Command::Parse { files } => {
            let parser = Parser::new(load_or_exit::<ParserSettings>())?;
            tokio::task::spawn_blocking(move || parse(&parser, &files)).await?
        }
    }
}

fn parse(parser: &Parser, files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for path in files {
        let bytes = std::fs::read(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let hints = apex_parser::Hints {
            file_name: &name,
            ..Default::default()
        };
        match parser.parse(&bytes, hints) {
            Ok(doc) => {
                let pages: Vec<String> = doc
                    .structure
                    .iter()
                    .flat_map(|s| &s.pages)
                    .map(|p| format!("{}:{}", p.number, p.text_source))
                    .collect();
                println!(
                    "== {}: {}, {} chunks, pages [{}]\nmetadata {:?}\nwarnings {:?}",
                    path.display(),
                    doc.format,
                    doc.chunks.len(),
                    pages.join(" "),
                    doc.metadata,
                    doc.warnings
                );
                println!("{}", doc.text);
            }
            Err(e) => {
                failed += 1;
                eprintln!("== {}: {e}", path.display());
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} of {} file(s) refused", files.len());
    Ok(())
}

fn corpus(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let docs = apex_parser::corpus::demo();
    for (name, bytes) in &docs {
        std::fs::write(dir.join(name), bytes)?;
    }
    println!("{} documents written to {}", docs.len(), dir.display());
    Ok(())
}

async fn fuzz(iterations: usize, seed: u64) -> anyhow::Result<()> {
    let parser = Parser::new(load_or_exit::<ParserSettings>())?;
    let samples = apex_parser::corpus::samples();
    let started = std::time::Instant::now();
    let reports = tokio::task::spawn_blocking(move || {
        apex_parser::fuzz::run(&parser, &samples, iterations, seed)
    })
    .await?;
    println!("{}", apex_parser::fuzz::table(&reports));
    println!(
        "{:.1} s in all, seed {seed}",
        started.elapsed().as_secs_f64()
    );
    let mut bad = false;
    for r in &reports {
        for (size, reason) in r.contained_panics.iter().take(3) {
            println!("contained panic in {} ({size} bytes): {reason}", r.name);
            bad = true;
        }
        bad |= !r.escaped_panics.is_empty();
    }
    if bad {
        std::process::exit(1);
    }
    Ok(())
}
