//! `apex-parser`: the parser gRPC service (`apex-parser` or `apex-parser serve`), plus
//! `apex-parser fuzz` (bounded mutation fuzzing of every format parser).

use apex_common::{Shutdown, settings::load_or_exit, telemetry::init_telemetry};
use apex_parser::{Parser, ParserSettings};
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
    Corpus { dir: std::path::PathBuf },
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
        Command::Corpus { dir } => {
            std::fs::create_dir_all(&dir)?;
            let docs = apex_parser::corpus::demo();
            for (name, bytes) in &docs {
                std::fs::write(dir.join(name), bytes)?;
            }
            println!("{} documents written to {}", docs.len(), dir.display());
            Ok(())
        }
        Command::Bench(args) => {
            let parser = Parser::new(settings)?;
            tokio::task::spawn_blocking(move || apex_parser::bench::run(&parser, &args)).await?
        }
        Command::Fuzz { iterations, seed } => {
            let parser = Parser::new(settings)?;
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
    }
}
